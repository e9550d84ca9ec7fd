"""Face boxes for redaction with MediaPipe's BlazeFace (short- and full-range) on OpenCV DNN.

The TFLite file and its anchor options are named by the installed model manifest
(``crowdsight models install``); the network runs through `crowdsight.models.runtime`.

Only boxes come out: no landmarks are kept, nothing describes *whose* face it is. The boxes
exist to be blurred.

BlazeFace is a single-shot detector: every anchor (a fixed grid of centres over the square
input) predicts a logit and a box (centre offset, width, height, 6 keypoints) in input
pixels. Decoding and NMS are done here in numpy, following MediaPipe's
``ssd_anchors_calculator`` / ``tensors_to_detections_calculator``.

Example:
    >>> det = FaceDetector()                             # doctest: +SKIP
    >>> boxes = det.detect(image_rgb)                     # doctest: +SKIP
    >>> boxes.xyxy.shape                                  # doctest: +SKIP
    (3, 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.core.errors import ModelError
from crowdsight.core.types import FloatArray, ImageRGB
from crowdsight.models.manifest import installed_model
from crowdsight.models.runtime import load_runtime

FaceRange = Literal["short", "full"]
_RAW_SCORE_LIMIT = 80.0  # MediaPipe clips logits at ±100; 80 keeps float32 sigmoid finite


def ssd_anchors(
    input_size: int, strides: list[int], offset: float = 0.5, interpolated_ratio: float = 1.0
) -> FloatArray:
    """Anchor centres (A×2, normalised x, y) of a BlazeFace model.

    Consecutive layers with the same stride share one feature map; each of its cells gets two
    anchors per layer when ``interpolated_ratio == 1`` (MediaPipe adds the interpolated-scale
    anchor), else one.

    Example:
        >>> ssd_anchors(128, [8, 16, 16, 16]).shape
        (896, 2)
    """
    anchors: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        last = layer
        repeats = 0
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
            repeats += 2 if interpolated_ratio == 1.0 else 1
        fm = input_size // strides[layer]
        for y in range(fm):
            for x in range(fm):
                anchors.extend([((x + offset) / fm, (y + offset) / fm)] * repeats)
        layer = last
    return np.asarray(anchors, np.float32)


@dataclass(frozen=True)
class FaceBoxes:
    """Face boxes in image pixels.

    Attributes:
        xyxy: N×4 float32 boxes (x0, y0, x1, y1).
        confidence: N float32 scores in [0, 1].
    """

    xyxy: FloatArray
    confidence: FloatArray

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])


def _nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; indices of kept boxes, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.intp)


class FaceDetector:
    """BlazeFace on OpenCV's DNN module (classic engine, CPU).

    Args:
        model_range: ``"full"`` (192 px input, faces up to ~5 m, best for CCTV) or ``"short"``
            (128 px, faces within ~2 m, e.g. a kiosk camera).
        min_score: Score threshold. For redaction a false positive only blurs a little extra,
            so the default is lower than MediaPipe's 0.5.
        iou_threshold: NMS overlap above which the weaker box is dropped.
        tile_px: Images larger than this (either side) are also scanned in square tiles of
            this size, because the whole image shrunk to 192 px loses faces under ~25 px.
            Tiling trades run time (one pass per tile) for small-face recall.
        model_file: Override the installed TFLite file (anchor options still come from the
            installed manifest's entry for ``model_range``).
    """

    def __init__(
        self,
        model_range: FaceRange = "full",
        *,
        min_score: float = 0.4,
        iou_threshold: float = 0.3,
        tile_px: int = 512,
        model_file: Path | None = None,
    ) -> None:
        model = installed_model("blazeface")
        installed = model.file(".tflite", contains=f"{model_range}_range")
        opts = model.extra.get("ssd_options", {}).get(installed.name)
        if opts is None:
            raise ModelError(
                f"the blazeface manifest has no anchor options for {installed.name}; run "
                "`crowdsight models install --force blazeface`"
            )
        # TFLite: runs on OpenCV DNN (classic engine), whatever the configured backend.
        self.runtime = load_runtime(model_file or installed)
        self.input_size = int(opts["input_size"])
        self._anchors = ssd_anchors(
            self.input_size,
            [int(s) for s in opts["strides"]],
            float(opts["anchor_offset"]),
            float(opts["interpolated_scale_aspect_ratio"]),
        )
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.tile_px = tile_px

    def _run_square(self, square: ImageRGB) -> tuple[FloatArray, FloatArray]:
        """Boxes (normalised xyxy) and scores on one square RGB patch."""
        s = self.input_size
        x = cv2.resize(square, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = x / 127.5 - 1.0
        outs = self.runtime.run({"input": np.ascontiguousarray(x.transpose(2, 0, 1)[None])})
        by_width = {int(o.shape[-1]): o for o in outs}
        logits = np.clip(by_width[1].reshape(-1), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)
        scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        raw = by_width[16].reshape(-1, 16)[:, :4] / s
        cx = raw[:, 0] + self._anchors[:, 0]
        cy = raw[:, 1] + self._anchors[:, 1]
        boxes = np.stack(
            [cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1
        ).astype(np.float32)
        keep = (scores >= self.min_score) & (raw[:, 2] > 0) & (raw[:, 3] > 0)
        return boxes[keep], scores[keep]

    def _windows(self, w: int, h: int) -> list[tuple[int, int, int]]:
        """Square windows (x0, y0, side): the whole image, plus overlapping tiles if large."""
        wins = [(0, 0, max(w, h))]
        t = self.tile_px
        if max(w, h) > t:
            step = t // 2
            ys = sorted({min(y, max(h - t, 0)) for y in range(0, max(h - step, 1), step)})
            xs = sorted({min(x, max(w - t, 0)) for x in range(0, max(w - step, 1), step)})
            wins += [(x, y, t) for y in ys for x in xs]
        return wins

    def detect(self, image: ImageRGB) -> FaceBoxes:
        """Face boxes in an RGB image (letterboxed squares, so aspect is kept)."""
        h, w = image.shape[:2]
        all_boxes: list[FloatArray] = []
        all_scores: list[FloatArray] = []
        for x0, y0, side in self._windows(w, h):
            patch = np.zeros((side, side, 3), np.uint8)
            crop = image[y0 : y0 + side, x0 : x0 + side]
            patch[: crop.shape[0], : crop.shape[1]] = crop
            boxes, scores = self._run_square(patch)
            all_boxes.append(boxes * side + np.array([x0, y0, x0, y0], np.float32))
            all_scores.append(scores)
        boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), np.float32)
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
        if len(scores) == 0:
            return FaceBoxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        keep = _nms(boxes, scores, self.iou_threshold)
        boxes = boxes[keep]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return FaceBoxes(boxes.astype(np.float32), scores[keep].astype(np.float32))
