"""The learned motion model says where and why a frame is abnormal."""

from __future__ import annotations

import numpy as np

from crowdsight.analytics.anomaly import CellBaseline, MotionNormality, motion_reason


def _frame(x: int) -> np.ndarray:
    img = np.full((120, 180), 40, dtype=np.uint8)
    img[40:70, x : x + 20] = 220
    return img


def test_fast_square_where_normal_was_still_is_named() -> None:
    model = MotionNormality()
    model.fit([_frame(10)] * 10, fps=10.0)  # normal: nothing moves
    model.update(_frame(60), 0.0)
    score = model.update(_frame(75), 0.1)  # a square moves 15 px in 0.1 s
    assert score > 5.0
    assert model.peak_xy is not None and 0.3 < model.peak_xy[0] < 0.6
    assert model.peak_reason == "motion where this area is normally still"


def test_reason_gives_ratio_to_normal_median() -> None:
    base = CellBaseline(np.full((2, 2), 10.0), np.full((2, 2), 2.0), floor=1.0)
    assert motion_reason(31.0, base, 1, 1) == "motion 3.1× normal for this area"
