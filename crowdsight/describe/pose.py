"""Which pixels of a person crop are the person: BlazePose's segmentation mask.

Clothing colours read from a box also read the wall, floor and passers-by behind the person,
most of all in the legs band, where the background shows between the legs. BlazePose GHUM (the
``blazepose`` model, from the pinned mediapipe wheel) segments the person in a crop; the colour
statistics of `crowdsight.describe.features` weight each pixel by it.

Kept per crop: the mask, the pose flag (is there a person at all) and three image rows, those
of the shoulders, hips and ankles (each the mean of its left and right point), which bound the
upper-body and lower-body clothing. The model's other landmarks (face, hands, feet) are never
read. Nothing here identifies anyone: a silhouette and three rows feed one colour histogram
and are dropped.

Example:
    >>> masker = PersonMasker()                               # doctest: +SKIP
    >>> body = masker([crop_rgb])[0]                          # doctest: +SKIP
    >>> body.mask.shape == crop_rgb.shape[:2]                 # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crowdsight.core.errors import ModelError
from crowdsight.core.types import FloatArray, ImageRGB

#: Logits are clipped before the sigmoid (the graph returns values past ±1000 far from the person).
_LOGIT_CLIP = 30.0
#: Graph outputs read and the input side (the installed manifest's ``extra`` has the same,
#: written by the converter; these defaults serve a file given directly).
_OUTPUTS = {"landmarks": "Identity", "flag": "Identity_1", "segmentation": "Identity_2"}
_INPUT_SIZE = 256
#: BlazePose landmark indices (left, right) of the shoulders, hips and ankles.
_SHOULDERS, _HIPS, _ANKLES = (11, 12), (23, 24), (27, 28)
#: Values per landmark in the graph's flat output (x, y, z, visibility, presence).
_LANDMARK_VALUES = 5
#: The rows are given only when the pose flag reaches this (set a priori: even odds).
MIN_POSE_FLAG = 0.5


@dataclass(frozen=True)
class PersonMask:
    """One crop's person mask.

    Attributes:
        mask: H×W person probability in [0, 1], aligned with the crop.
        flag: The model's probability that the crop shows a person at all.
        rows: (shoulders, hips, ankles) image rows in crop pixels, when ``flag`` reaches
            `MIN_POSE_FLAG`; else None. Rows may lie outside the crop (a cut-off person).
    """

    mask: FloatArray
    flag: float
    rows: tuple[float, float, float] | None = None


def _square(crop: ImageRGB) -> tuple[ImageRGB, int, int]:
    """The crop centred on a black square; returns (square, x offset, y offset)."""
    h, w = crop.shape[:2]
    s = max(h, w)
    out = np.zeros((s, s, 3), np.uint8)
    x0, y0 = (s - w) // 2, (s - h) // 2
    out[y0 : y0 + h, x0 : x0 + w] = crop
    return out, x0, y0


class PersonMasker:
    """BlazePose GHUM (full) on OpenCV DNN's classic engine, for person masks of crops.

    Args:
        tflite: The model file (default: ``pose_landmark_full.tflite`` of the installed
            ``blazepose`` model).
    """

    def __init__(self, tflite: Path | None = None) -> None:
        outputs, size = _OUTPUTS, _INPUT_SIZE
        if tflite is None:
            from crowdsight.models.manifest import installed_model

            try:
                model = installed_model("blazepose")
                tflite = model.file("pose_landmark_full.tflite")
            except ModelError as exc:
                raise ModelError(
                    f"{exc} (the clothing heads read colours through BlazePose's person mask: "
                    "run `crowdsight models install blazepose`)"
                ) from exc
            outputs = {**outputs, **dict(model.extra.get("outputs", {}))}
            size = int(model.extra.get("input_size", size))
        from crowdsight.models.runtime import load_runtime

        self._runtime = load_runtime(tflite)  # TFLite: OpenCV DNN's classic engine
        self._names = [o.name for o in self._runtime.outputs]
        self._outputs = [outputs["segmentation"], outputs["flag"], outputs["landmarks"]]
        missing = set(self._outputs) - set(self._names)
        if missing:
            raise ModelError(
                f"{tflite.name} lacks the outputs {sorted(missing)}; reinstall blazepose"
            )
        self.source = tflite
        self._size = size

    def one(self, crop: ImageRGB) -> PersonMask:
        """The mask of one RGB crop (any size; it is centred on a square and resized)."""
        h, w = crop.shape[:2]
        if h == 0 or w == 0:
            raise ValueError("empty crop")
        square, x0, y0 = _square(crop)
        blob = cv2.dnn.blobFromImage(square, 1 / 255.0, (self._size, self._size))  # RGB already
        got = dict(zip(self._names, self._runtime.run({"input": blob}), strict=True))
        seg, flag_out, landmarks = (got[name] for name in self._outputs)
        logits = np.clip(
            np.asarray(seg, np.float32).reshape(self._size, self._size), -_LOGIT_CLIP, _LOGIT_CLIP
        )
        prob = 1.0 / (1.0 + np.exp(-logits))
        s = square.shape[0]
        full = cv2.resize(
            prob, (s, s), interpolation=cv2.INTER_AREA if s < self._size else cv2.INTER_LINEAR
        )
        mask = np.ascontiguousarray(full[y0 : y0 + h, x0 : x0 + w], np.float32)
        flag = float(np.asarray(flag_out).reshape(-1)[0])
        rows: tuple[float, float, float] | None = None
        if flag >= MIN_POSE_FLAG:
            ys = np.asarray(landmarks, np.float32).reshape(-1, _LANDMARK_VALUES)[:, 1]
            to_crop = s / self._size
            shoulders, hips, ankles = (
                float(ys[list(pair)].mean() * to_crop - y0) for pair in (_SHOULDERS, _HIPS, _ANKLES)
            )
            rows = (shoulders, hips, ankles)
        return PersonMask(mask=mask, flag=flag, rows=rows)

    def __call__(self, crops: Sequence[ImageRGB]) -> list[PersonMask]:
        """`one` for each crop."""
        return [self.one(c) for c in crops]
