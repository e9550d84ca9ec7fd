"""Perspective from one frame's person boxes: how tall a person is at each image row.

In a camera looking down a scene, people higher in the image are farther away and smaller.
A line through (head row, box height) of the boxes a detector found in a frame is enough to
size a person anywhere in it (`crowdsight.perception.density_people`) and to tell where the
detector sees people large enough to count them one by one (`crowdsight.perception.fusion`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import FloatArray

#: Person width as a fraction of its height (upright pedestrians, COCO/MOT boxes ≈ 0.35–0.45).
WIDTH_RATIO = 0.4
#: Head centre below the box top as a fraction of the box height.
HEAD_OFFSET = 0.08


@dataclass(frozen=True)
class HeightModel:
    """Person height in pixels as a linear function of the head's y: ``h = a + b·y``."""

    a: float
    b: float

    def height_at(self, y: npt.ArrayLike) -> FloatArray:
        """Heights for head rows ``y`` (never below 8 px)."""
        return np.maximum(self.a + self.b * np.asarray(y, np.float64), 8.0).astype(np.float32)


def fit_heights(person_xyxy: npt.ArrayLike, min_boxes: int = 3) -> HeightModel | None:
    """Height against head row, fitted on this frame's person boxes (None: too few boxes).

    A least-squares line through (top y, height), with the slope kept ≥ 0 (in a camera looking
    down a scene people do not shrink towards the bottom); with boxes all at one height the
    line is flat at their median.
    """
    boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4)
    if len(boxes) < min_boxes:
        return None
    h = boxes[:, 3] - boxes[:, 1]
    y = head_rows(boxes).astype(np.float64)
    if np.ptp(y) < 1.0:
        return HeightModel(float(np.median(h)), 0.0)
    b, a = np.polyfit(y, h, 1)
    if b < 0:
        return HeightModel(float(np.median(h)), 0.0)
    return HeightModel(float(a), float(b))


def head_rows(person_xyxy: npt.ArrayLike) -> FloatArray:
    """The head's row (frame px) of each person box: `HEAD_OFFSET` of its height below the top."""
    boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4)
    return (boxes[:, 1] + HEAD_OFFSET * (boxes[:, 3] - boxes[:, 1])).astype(np.float32)
