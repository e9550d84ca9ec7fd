"""The detector contract every perception model meets, and the one way to build its output.

`Detector` is the single protocol for "finds objects in a frame" (the bundled SSDLite, a
YOLO export you bring, test doubles); `make_detections` turns a model's arrays into the
struct-of-arrays `Detections` with class names, so nothing downstream knows which model ran.
Both live here, below the concrete detectors, so those never import each other.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import supervision as sv

from crowdsight.core.types import CLASS_NAME, Detections, FloatArray, Frame


@runtime_checkable
class Detector(Protocol):
    """Anything that finds objects in a frame.

    Detectors keep no per-stream state, so one instance may serve several cameras in turn
    (the bundled ones still offer a no-op ``reset()`` so pipelines can reset every stage
    alike).
    """

    def detect(self, frame: Frame) -> Detections:
        """Objects in ``frame``: boxes in frame pixels, class names in ``data["class_name"]``."""
        ...


def make_detections(
    xyxy: FloatArray, confidence: FloatArray, class_id: npt.NDArray[np.int_], names: list[str]
) -> Detections:
    """`Detections` with class names in ``data["class_name"]`` (ids without a name: the id).

    Example:
        >>> d = make_detections(np.zeros((1, 4)), np.ones(1), np.array([0]), ["person"])
        >>> d.data["class_name"].tolist()
        ['person']
    """
    if len(xyxy) == 0:
        empty = Detections.empty()
        empty.data[CLASS_NAME] = np.array([], dtype=str)
        return empty
    labels = np.array([names[c] if 0 <= c < len(names) else str(c) for c in class_id])
    return Detections(
        xyxy=xyxy.astype(np.float32),
        confidence=confidence.astype(np.float32),
        class_id=class_id.astype(int),
        data={CLASS_NAME: labels},
    )


def classwise_nms(
    xyxy: FloatArray,
    conf: FloatArray,
    cls: npt.NDArray[np.int_],
    iou: float,
    max_detections: int,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int_]]:
    """Per-class greedy NMS (supervision's), best first, at most ``max_detections`` rows.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10]], np.float32)
        >>> _, c, k = classwise_nms(b, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5, 9)
        >>> c.tolist(), k.tolist()
        ([0.9, 0.7], [0, 1])
    """
    if len(conf) == 0:
        return xyxy, conf, cls
    keep = sv.box_non_max_suppression(
        np.concatenate([xyxy, conf[:, None], cls[:, None]], axis=1), iou_threshold=iou
    )
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(-conf[idx], kind="stable")][:max_detections]
    return xyxy[idx], conf[idx], cls[idx]
