"""The bundled multi-class detector: NanoDet-m (COCO) for people, vehicles and carried bags.

The network (converted by `crowdsight.models.converters.nanodet`) predicts, for every cell
of three feature maps (strides 8, 16, 32 on a 416×416 input), 80 sigmoid class scores and,
for each side of the box (left, top, right, bottom), a discrete distribution over 0..10
stride units (Generalized Focal Loss, Li et al. 2020). The distance to each side is the
distribution's mean; the box is the cell centre ``((x + 0.5)·s, (y + 0.5)·s)`` pushed out by
those distances. Scores are filtered, then NMS runs per class.

Only the classes crowdsight reports are kept (`KEPT_CLASSES`: people, two- and four-wheeled
vehicles, carried bags and umbrellas); the rest of COCO (tables, dogs, phones...) is
dropped inside the detector, so no downstream stage sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ModelError
from crowdsight.core.types import Detections, FloatArray, Frame, ImageRGB
from crowdsight.models.manifest import installed_model
from crowdsight.models.runtime import load_runtime
from crowdsight.perception.base import classwise_nms, make_detections
from crowdsight.perception.slicing import SliceSettings, sliced_detect
from crowdsight.perception.yolo import COCO_CLASSES

NANODET_MODEL = "nanodet"

#: Tracker score thresholds (new-track activation, high/low split) on NanoDet's score scale.
#: ByteTrack's 0.7 / 0.6 suit the SSD, but NanoDet's sigmoid scores run lower (median 0.61 of
#: its boxes on Mall), so with them the tracker kept only boxes covering 0.44 of Mall's heads
#: while the detector covered 0.72. Chosen on Mall training frames 1–400 at 2 fps
#: (`benchmarks/tracker_mall.py --detector nanodet`, sweep of 7 pairs): 0.5 / 0.35 took head
#: coverage by confirmed tracks 0.34 → 0.51 with mean track duration 4.4 → 4.5 s; lower
#: activation thresholds added ids faster than coverage.
TRACK_THRESHOLDS = (0.5, 0.35)

#: COCO classes crowdsight keeps: people, vehicles, carried bags (and umbrellas, which hide
#: people from above and matter to crowd counts in the rain).
KEPT_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "bus",
    "truck",
    "backpack",
    "handbag",
    "suitcase",
    "umbrella",
)
VEHICLE_CLASSES = frozenset({"bicycle", "car", "motorcycle", "bus", "truck"})
BAG_CLASSES = frozenset({"backpack", "handbag", "suitcase"})

Resize = Literal["stretch", "letterbox"]


def gfl_decode(
    scores: FloatArray,
    dists: FloatArray,
    stride: int,
    grid_wh: tuple[int, int],
    *,
    conf_threshold: float,
    center_offset: float = 0.5,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int_]]:
    """Boxes of one stride: (xyxy in network pixels, score, class) above the threshold.

    Args:
        scores: cells × classes sigmoid scores (row-major cells: ``y * w + x``).
        dists: cells × (4 × bins) logits of the l, t, r, b distance distributions.
        stride: Pixels per cell.
        grid_wh: Feature map width and height in cells.
        conf_threshold: Keep (cell, class) pairs scoring above this.
        center_offset: Cell-centre offset in cells (0.5: NanoDet v0.x).

    Example:
        >>> s = np.zeros((4, 2), np.float32); s[3, 1] = 0.9
        >>> d = np.full((4, 4 * 3), -9.0, np.float32); d[3, [1, 4, 7, 10]] = 9.0  # 1 cell each
        >>> xyxy, sc, cl = gfl_decode(s, d, 8, (2, 2), conf_threshold=0.5)
        >>> xyxy.round(1).tolist(), cl.tolist()
        ([[4.0, 4.0, 20.0, 20.0]], [1])
    """
    cell, cls = np.nonzero(scores > conf_threshold)
    if cell.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int)
    logits = dists[cell].reshape(len(cell), 4, -1).astype(np.float64)
    p = np.exp(logits - logits.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    dist = (p * np.arange(p.shape[2])).sum(axis=2) * stride
    gy, gx = np.divmod(cell, grid_wh[0])
    cx = (gx + center_offset) * stride
    cy = (gy + center_offset) * stride
    xyxy = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
    return xyxy.astype(np.float32), scores[cell, cls].astype(np.float32), cls.astype(int)


class NanoDetDetector:
    """NanoDet-m on a model `Runtime`: people, vehicles and bags (see the module docstring).

    Args:
        conf_threshold: Minimum class score (NanoDet's sigmoid scores run lower than the
            SSD's: 0.35 is upstream's demo threshold).
        nms_iou: Per-class NMS IoU (upstream: 0.6).
        classes: COCO class names to keep (default `KEPT_CLASSES`); e.g. ``("person",)``.
        resize: ``letterbox`` keeps the aspect ratio (grey padding); ``stretch`` fills the
            416×416 input.
        max_detections: Cap per inference.
        model_dir: Folder with one ``.onnx`` file (default: the installed ``nanodet`` model,
            file named by its manifest).
        threads: Intra-op threads of the model (None: ``runtime``'s).
        slicing: Tile settings for sliced inference, or None.
        runtime: Model backend (None: ONNX Runtime with its defaults).
    """

    def __init__(
        self,
        conf_threshold: float = 0.35,
        nms_iou: float = 0.6,
        *,
        classes: tuple[str, ...] | None = None,
        resize: Resize = "letterbox",
        max_detections: int = 300,
        model_dir: Path | None = None,
        threads: int | None = None,
        slicing: SliceSettings | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> None:
        onnx_file, extra = self._files(model_dir)
        config = (runtime or RuntimeConfig()).with_threads(threads)
        self.runtime = load_runtime(onnx_file, config)
        self.size = int(extra.get("input_size", 416))
        self.strides = tuple(int(s) for s in extra.get("strides", (8, 16, 32)))
        self.mean = np.array(extra.get("mean_bgr", (103.53, 116.28, 123.675)), np.float32)
        self.std = np.array(extra.get("std_bgr", (57.375, 57.12, 58.395)), np.float32)
        self.center_offset = float(extra.get("center_offset", 0.5))
        wanted = classes or KEPT_CLASSES
        unknown = [c for c in wanted if c not in COCO_CLASSES]
        if unknown:
            raise ModelError(f"NanoDet knows no class {unknown[0]!r} (COCO names only)")
        self.class_ids = np.array([COCO_CLASSES.index(c) for c in wanted], int)
        self.class_names = list(COCO_CLASSES)
        self.conf_threshold = conf_threshold
        self.nms_iou = nms_iou
        self.resize: Resize = resize
        self.max_detections = max_detections
        self.slicing = slicing
        self.track_thresholds = TRACK_THRESHOLDS
        self._outputs = [f"cls_{s}" for s in self.strides] + [f"reg_{s}" for s in self.strides]

    @staticmethod
    def _files(model_dir: Path | None) -> tuple[Path, dict[str, Any]]:
        """(ONNX file, settings) from the manifest, or the one ``.onnx`` file of a folder."""
        if model_dir is None:
            model = installed_model(NANODET_MODEL)
            return model.file(".onnx"), model.extra
        found = sorted(model_dir.glob("*.onnx"))
        if len(found) != 1:
            raise ModelError(f"{model_dir} must hold exactly one .onnx model")
        return found[0], {}

    def detect(self, frame: Frame) -> Detections:
        """Objects of the kept classes, boxes in frame pixels."""
        if self.slicing is not None:
            return sliced_detect(self.detect_image, frame.image, self.slicing)
        return self.detect_image(frame.image)

    def _preprocess(self, image: ImageRGB) -> tuple[npt.NDArray[np.float32], float, float]:
        """Network input and the (x, y) scale from network pixels back to the image."""
        h, w = image.shape[:2]
        n = self.size
        if self.resize == "stretch":
            canvas = cv2.resize(image, (n, n), interpolation=cv2.INTER_LINEAR)
            sx, sy = w / n, h / n
        else:
            r = min(n / w, n / h)
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            canvas = np.full((n, n, 3), 114, np.uint8)
            canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            sx = sy = 1.0 / r
        bgr = canvas[:, :, ::-1].astype(np.float32)
        x = ((bgr - self.mean[None, None]) / self.std[None, None]).transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x, np.float32), sx, sy

    def detect_image(self, image: ImageRGB) -> Detections:
        """Objects in one RGB image, boxes in its pixels."""
        x, sx, sy = self._preprocess(image)
        by_name = dict(
            zip((o.name for o in self.runtime.outputs), self.runtime.run({"image": x}), strict=True)
        )
        outs = [by_name[name] for name in self._outputs]
        k = len(self.strides)
        parts = []
        for i, s in enumerate(self.strides):
            scores = np.asarray(outs[i][0])[:, self.class_ids]
            g = self.size // s
            parts.append(
                gfl_decode(
                    scores,
                    np.asarray(outs[k + i][0]),
                    s,
                    (g, g),
                    conf_threshold=self.conf_threshold,
                    center_offset=self.center_offset,
                )
            )
        xyxy = np.concatenate([p[0] for p in parts])
        conf = np.concatenate([p[1] for p in parts])
        cls = self.class_ids[np.concatenate([p[2] for p in parts])]
        xyxy, conf, cls = classwise_nms(xyxy, conf, cls, self.nms_iou, self.max_detections)
        h, w = image.shape[:2]
        xyxy = xyxy * np.array([sx, sy, sx, sy], np.float32)
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        return make_detections(xyxy, conf, cls, self.class_names)

    def reset(self) -> None:
        """Nothing to forget: the detector keeps no per-stream state."""
