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
