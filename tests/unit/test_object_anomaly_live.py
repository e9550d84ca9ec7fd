"""Live object anomaly: learn normal for a window (scene, API request), persist it, raise events.

The state machine of `LiveObjectAnomaly` (idle → learning → ready, re-learn keeps scoring,
requests through the camera's model folder, restarts), and the one event path
(`AnomalyEvents`) that turns its scores into `Anomaly` events with the object's box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from crowdsight.analytics.anomaly import AnomalyEvents, build_anomaly
from crowdsight.analytics.object_anomaly import ObjectNormality
from crowdsight.analytics.object_anomaly_live import LiveObjectAnomaly, ModelFiles
from crowdsight.config.scene import AnomalyRule, parse_scene
from crowdsight.core.errors import ConfigError
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


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _feed(live: LiveObjectAnomaly, i: int, walkers: Walkers, t0: float = 0.0) -> object:
    image, dets = walkers.step()
    return live.update(image, t0 + i / FPS, dets)


def test_learns_during_the_window_then_scores(tmp_path: Path) -> None:
    files = ModelFiles(tmp_path / "cam1")
    live, walkers = LiveObjectAnomaly(files=files), Walkers()
    assert live.state == "idle"
    live.learn(ts_s=0.0, duration_s=3.0)
    for i in range(30):
        assert _feed(live, i, walkers) is None  # no model while the first one is learned
    assert live.status().learning is not None and live.status().learning.learned_s > 2.5  # type: ignore[union-attr]
    # The window is over: learned, and this frame scored.
    assert _feed(live, 30, walkers) is not None
    assert live.state == "ready" and live.model is not None
    assert live.model.footage == (0.0, 3.0)
    assert ObjectNormality.load(files.model).footage == (0.0, 3.0)  # persisted, time range
    state = files.read_state()
    assert state is not None and state.state == "ready" and state.model is not None
    assert state.model.objects == len(live.model.velocity) > 100
    image, dets = walkers.step()
    scores = live.update(image, 3.1, dets)
    assert scores is not None and len(scores.total) >= len(ROWS) - 1
    # A restarted camera loads the saved model and scores at once.
    again = LiveObjectAnomaly(files=files)
    assert again.state == "ready" and again.model is not None
    assert again.model.footage == (0.0, 3.0)


def test_idle_camera_computes_no_flow() -> None:
    live, walkers = LiveObjectAnomaly(), Walkers()
    for i in range(3):
        assert _feed(live, i, walkers) is None
    assert live.motion._prev is None  # no frame kept: no flow was run


def test_fast_object_opens_an_event_naming_it_with_its_box() -> None:
    rule = AnomalyRule(min_duration_s=0.3)
    events = AnomalyEvents(rule, LiveObjectAnomaly())
    assert events.objects is not None
    events.objects.learn(0.0, 3.0)
    out, walkers = [], Walkers()
    for i in range(50):
        if i == 40:
            walkers.speeds[2] = 6  # the third walker starts racing
        image, dets = walkers.step()
        out += events.update("cam1", i, image, i / FPS, dets)
    opened = [e for e in out if isinstance(e, Anomaly) and e.is_open]
    assert opened, f"no event; last score {events.last_score}"
    ev = opened[0]
    assert ev.start_ts_s >= 4.0  # not before the racing began
    assert ev.method == "objects"
    # The event names the object (class: why) around the racing walker: its box, or the
    # moving region its fast motion drags beyond the box.
    assert ev.reason.split(": ")[0] in ("person", "motion"), ev.reason
    assert ev.object_class in ("person", "motion")
    assert ev.xyxy is not None
    _, y0, _, y1 = ev.xyxy
    assert abs((y0 + y1) / 2 - (ROWS[2] + 20)) <= 20, ev.xyxy


def test_cells_score_until_an_object_model_is_learned_then_objects_take_over() -> None:
    events = AnomalyEvents(AnomalyRule(enabled=True, warmup_s=0.5), LiveObjectAnomaly())
    assert events.objects is not None
    walkers = Walkers()
    events.objects.learn(0.0, 2.0)
    methods = []
    for i in range(30):
        image, dets = walkers.step()
        events.update("cam1", i, image, i / FPS, dets)
        methods.append(events.method)
    assert methods[5] == "cells"  # the label-free fallback while the first model is learned
    assert methods[-1] == "objects"


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
    assert live.state == "ready" and live.model is not first
    assert live.model is not None and live.model.footage[0] == 2.5


def test_a_request_in_the_model_folder_starts_learning_and_is_consumed(tmp_path: Path) -> None:
    clock = Clock()
    files = ModelFiles(tmp_path / "cam1")
    live, walkers = LiveObjectAnomaly(files=files, clock=clock), Walkers()
    _feed(live, 0, walkers)
    assert files.read_state() is not None and files.read_state().state == "idle"  # type: ignore[union-attr]
    clock.now += 1
    files.request_learning(2.0, now_ts=clock.now)
    clock.now += 1  # the next poll
    _feed(live, 1, walkers, t0=100.0)
    assert live.state == "learning"
    state = files.read_state()
    assert state is not None and state.state == "learning" and state.learning is not None
    assert state.learning.duration_s == 2.0
    for i in range(2, 30):
        _feed(live, i, walkers, t0=100.0)
    assert live.state == "ready" and files.pending_request() is None  # done: request removed
    assert files.model.exists() and not files.request.exists()


def test_a_request_left_by_a_restart_resumes_for_what_is_left(tmp_path: Path) -> None:
    clock = Clock(5000.0)
    files = ModelFiles(tmp_path / "cam1")
    files.request_learning(60.0, now_ts=clock.now - 20)  # asked 20 s before this process
    first = LiveObjectAnomaly(files=files, clock=Clock(4981.0))  # the camera that began it
    _feed(first, 0, Walkers())
    live = LiveObjectAnomaly(files=files, clock=clock)  # after the restart
    _feed(live, 0, Walkers())
    assert live.status().learning is not None
    assert live.status().learning.duration_s == pytest.approx(40.0)  # type: ignore[union-attr]
    # A request made while the camera was starting (nobody began it) gets its full window.
    files.request_learning(30.0, now_ts=clock.now - 5)
    fresh = LiveObjectAnomaly(files=files, clock=clock)
    _feed(fresh, 0, Walkers())
    assert fresh.status().learning.duration_s == 30.0  # type: ignore[union-attr]
    # One begun before a restart whose window has passed is dropped, with the reason.
    files.request_learning(10.0, now_ts=clock.now - 30)
    LiveObjectAnomaly(files=files, clock=Clock(clock.now - 29))._poll(0.0)
    late = LiveObjectAnomaly(files=files, clock=clock)
    _feed(late, 0, Walkers())
    assert late.state == "idle" and files.pending_request() is None
    assert late.problem is not None and "learn normal again" in late.problem


def test_a_model_of_another_frame_size_is_refused_in_one_line(tmp_path: Path) -> None:
    live, walkers = LiveObjectAnomaly(files=ModelFiles(tmp_path / "c")), Walkers()
    live.learn(0.0, 1.0)
    for i in range(12):
        _feed(live, i, walkers)
    assert live.state == "ready"
    big = np.zeros((480, 640, 3), np.uint8)
    _, dets = walkers.step()
    assert live.update(big, 2.0, dets) is None
    assert live.state == "idle"
    assert live.problem is not None and live.problem.endswith("learn normal again")
    assert "\n" not in live.problem


def test_a_model_of_another_version_is_refused(tmp_path: Path) -> None:
    files = ModelFiles(tmp_path / "c")
    live, walkers = LiveObjectAnomaly(files=files), Walkers()
    live.learn(0.0, 1.0)
    for i in range(12):
        _feed(live, i, walkers)
    with np.load(files.model) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array(str(arrays["meta"]).replace('"version": 1', '"version": 99'))
    with files.model.open("wb") as fh:
        np.savez(fh, **arrays)
    reloaded = LiveObjectAnomaly(files=files)
    assert reloaded.model is None and reloaded.state == "idle"
    assert reloaded.problem is not None and reloaded.problem.endswith("learn normal again")


def test_scene_calibration_window_learns_from_its_start() -> None:
    rule = AnomalyRule(learn_for_s=1.5)
    stage = build_anomaly(rule)
    assert stage is not None and stage.objects is not None
    assert stage.objects.state == "learning"  # scheduled from the first frame
    walkers = Walkers()
    for i in range(20):
        image, dets = walkers.step()
        stage.update("cam", i, image, 50.0 + i / FPS, dets)
    assert stage.objects.model is not None
    assert stage.objects.model.footage[0] == 50.0
    # A camera that already has a model from that window keeps it (no re-learn at restart).
    again = LiveObjectAnomaly(model=stage.objects.model)
    again.calibrate(None, 1.5)
    assert again.state == "ready"


def test_a_calibration_window_in_the_past_says_so() -> None:
    live = LiveObjectAnomaly()
    live.calibrate(10.0, 5.0)
    _feed(live, 0, Walkers(), t0=100.0)
    assert live.state == "idle"
    assert live.problem is not None and "calibration window" in live.problem


def test_learn_needs_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="positive duration"):
        LiveObjectAnomaly().learn(0.0, 0.0)


def test_nothing_runs_without_a_model_dir_window_or_cells() -> None:
    assert build_anomaly(AnomalyRule()) is None
    assert build_anomaly(AnomalyRule(enabled=True)) is not None


@pytest.mark.parametrize(
    ("anomaly", "error"),
    [
        ({"learn_from": "2026-03-02T07:00:00Z"}, "learn_from needs learn_for_s"),
        ({"learn_from": "2026-03-02T07:00:00", "learn_for_s": 60}, "needs a timezone"),
        ({"learn_for_s": 0}, "greater than 0"),
        ({"learn_for_s": "ten"}, "valid number"),
        ({"objects_enter_score": 2, "objects_exit_score": 3}, "objects_exit_score must be"),
    ],
)
def test_bad_calibration_window_is_one_clear_error(anomaly: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error) as info:
        parse_scene({"rules": {"anomaly": anomaly}})
    assert "\n" not in str(info.value)


def test_calibration_window_in_the_scene() -> None:
    scene = parse_scene(
        {"rules": {"anomaly": {"learn_from": "2026-03-02T07:00:00+01:00", "learn_for_s": 600}}}
    )
    assert scene.rules.anomaly.learn_window == (1772431200.0, 600.0)
    assert AnomalyRule(learn_for_s=60).learn_window == (None, 60.0)
    assert AnomalyRule().learn_window is None


def test_the_snapshot_outlines_the_abnormal_object_in_red() -> None:
    from crowdsight.core.types import Frame
    from crowdsight.pipeline.annotate import Annotator
    from crowdsight.pipeline.camera import FrameResult

    image = np.full((H, W, 3), 90, np.uint8)
    event = Anomaly(
        camera_id="c",
        start_ts_s=1.0,
        method="objects",
        xyxy=(200.0, 100.0, 260.0, 180.0),
        reason="a car: rarely or never seen in the normal footage",
        object_class="car",
    )
    result = FrameResult(Frame("c", 0, 1.0, image), sv.Detections.empty(), None, False, [event])
    out = Annotator(heatmap=False).annotate(result, redact=False)
    edge = out[140, 200]  # on the box's left edge
    assert edge[0] > 200 and edge[1] < 80, edge
    assert (out[140, 230] == 90).all()  # inside the box the picture is untouched
