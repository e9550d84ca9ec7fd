"""Live object anomaly: learn normal for a window, persist it, then raise events with reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from crowdsight.analytics.object_anomaly import ObjectNormality
from crowdsight.analytics.object_anomaly_live import (
    LiveObjectAnomaly,
    ObjectAnomalyEvents,
    ObjectAnomalyThresholds,
)
from crowdsight.core.events import Anomaly

W, H, FPS = 360, 240, 10.0
ROWS = (60, 110, 160, 195, 10)  # top rows of five walkers, 30×40 px each


def _scene(xs: list[int]) -> tuple[np.ndarray, sv.Detections]:
    """Walkers with left edges at ``xs`` (one per row), and boxes of all but the last.

    The last walker is never detected: it becomes a motion blob, as real footage has.
    """
    rng = np.random.default_rng(0)
    im = np.full((H, W), 70, np.uint8)
    boxes = []
    for row, x in zip(ROWS, xs, strict=True):
        tex = rng.integers(140, 255, (40, 30), dtype=np.uint8)
        im[row : row + 40, x : x + 30] = tex
        boxes.append([x, row, x + 30, row + 40])
    boxes = boxes[:-1]
    dets = sv.Detections(
        xyxy=np.asarray(boxes, np.float32),
        confidence=np.ones(len(boxes), np.float32),
        class_id=np.zeros(len(boxes), int),
        data={"class_name": np.array(["person"] * len(boxes))},
    )
    return np.repeat(im[..., None], 3, axis=2), dets


class Walkers:
    """Five walkers moving right, wrapping around at the frame's right edge."""

    def __init__(self) -> None:
        self.xs = [20, 60, 100, 140, 180]
        self.speeds = [1, 2, 1, 2, 2]  # px per frame

    def step(self) -> tuple[np.ndarray, sv.Detections]:
        self.xs = [(x + v - 10) % (W - 50) + 10 for x, v in zip(self.xs, self.speeds, strict=True)]
        return _scene(self.xs)


def _feed(live: LiveObjectAnomaly, i: int, walkers: Walkers) -> object:
    image, dets = walkers.step()
    return live.update(image, i / FPS, dets)


def test_learns_during_the_window_then_scores(tmp_path: Path) -> None:
    path = tmp_path / "cam1" / "normal.npz"
    live, walkers = LiveObjectAnomaly(model_path=path), Walkers()
    assert live.state == "idle"
    live.learn(ts_s=0.0, duration_s=3.0)
    for i in range(30):
        assert _feed(live, i, walkers) is None  # no model while the first one is learned
    assert (
        _feed(live, 30, walkers) is not None
    )  # the window is over: learned, and this frame scored
    assert live.state == "scoring" and live.model is not None
    assert live.model.footage == (0.0, 3.0)
    assert ObjectNormality.load(path).footage == (0.0, 3.0)  # persisted with its time range
    image, dets = walkers.step()
    scores = live.update(image, 3.1, dets)
    assert scores is not None and len(scores.total) >= len(ROWS) - 1


def test_fast_object_opens_an_event_naming_it(tmp_path: Path) -> None:
    events = ObjectAnomalyEvents(LiveObjectAnomaly(), ObjectAnomalyThresholds(min_duration_s=0.3))
    events.live.learn(0.0, 3.0)
    out, walkers = [], Walkers()
    for i in range(50):
        if i == 40:
            walkers.speeds[2] = 6  # the third walker starts racing
        image, dets = walkers.step()
        out += events.update("cam1", i, image, i / FPS, dets)
    opened = [e for e in out if isinstance(e, Anomaly) and e.is_open]
    assert opened, f"no event; last score {events.last_score}"
    assert opened[0].start_ts_s >= 4.0  # not before the racing began
    # The event names the object (class: why) around the racing walker: its box, or the
    # moving region its fast motion drags beyond the box.
    assert opened[0].reason.split(": ")[0] in ("person", "motion"), opened[0].reason
    assert events.last_box is not None
    _, y0, _, y1 = events.last_box
    assert abs((y0 + y1) / 2 - (ROWS[2] + 20)) <= 20, events.last_box


def test_relearn_keeps_scoring_with_the_old_model() -> None:
    live, walkers = LiveObjectAnomaly(), Walkers()
    live.learn(0.0, 2.0)
    for i in range(21):
        _feed(live, i, walkers)
    first = live.model
    live.learn(2.5, 2.0)
    image, dets = walkers.step()
    assert live.state == "learning"
    assert live.update(image, 3.0, dets) is not None  # the old model still scores
    for i in range(31, 50):
        _feed(live, i, walkers)
    assert live.state == "scoring" and live.model is not first
    assert live.model is not None and live.model.footage[0] == 2.5


def test_learn_needs_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="positive duration"):
        LiveObjectAnomaly().learn(0.0, 0.0)
