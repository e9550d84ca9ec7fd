"""CameraPipeline runs density on its cadence (sync and async) with injected stages."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.core.types import DensityMap, Detections, Frame
from crowdsight.pipeline.camera import CameraPipeline, detector_kwargs


class FakeDensity:
    """Density whose count is the frame's mean pixel value; records calls."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.gate = gate

    def estimate(self, image: Any, roi_mask: Any = None) -> DensityMap:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(int(image[0, 0, 0]))
        d = np.full((2, 2), float(image[0, 0, 0]) / 4, np.float32)
        return DensityMap(d, (image.shape[1], image.shape[0]))


def frames(n: int, fps: float = 10.0) -> list[Frame]:
    return [Frame("cam", i, i / fps, np.full((16, 16, 3), i, np.uint8)) for i in range(n)]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"density_every_n": 1}, list(range(10))),
        ({"density_every_n": 3}, [0, 3, 6, 9]),
        ({"density_every_s": 0.5}, [0, 5]),
        ({"density_every_s": 0.0}, list(range(10))),
    ],
)
def test_sync_cadence(settings: dict[str, Any], expected: list[int]) -> None:
    dens = FakeDensity()
    p = CameraPipeline("cam", PipelineSettings(detect=False, **settings), density_estimator=dens)
    fresh = [f.index for f in frames(10) if p.process(f).density_fresh]
    assert fresh == expected == dens.calls


def test_latest_density_carries_between_estimates() -> None:
    p = CameraPipeline(
        "cam", PipelineSettings(detect=False, density_every_n=4), density_estimator=FakeDensity()
    )
    results = [p.process(f) for f in frames(6)]
    assert [r.metrics.counts["count_density"] for r in results] == [0, 0, 0, 0, 4, 4]
    assert all(r.detections is not None and len(r.detections) == 0 for r in results)


def test_async_density_never_blocks_and_drops_while_busy() -> None:
    gate = threading.Event()
    dens = FakeDensity(gate)
    p = CameraPipeline(
        "cam",
        PipelineSettings(detect=False, density_every_n=1, density_async=True),
        density_estimator=dens,
    )
    fs = frames(5)
    early = [p.process(f) for f in fs]  # worker is blocked: nothing fresh, no waiting
    assert not any(r.density_fresh for r in early)
    gate.set()
    assert p._async_density is not None
    p._async_density.wait()
    r = p.process(Frame("cam", 5, 0.5, np.full((16, 16, 3), 5, np.uint8)))
    assert r.density_fresh and r.density is not None
    assert dens.calls[0] == 0  # the first request ran; requests while busy were dropped
    assert len(dens.calls) <= 2


def test_reset_forgets_density() -> None:
    p = CameraPipeline(
        "cam", PipelineSettings(detect=False, density_every_n=100), density_estimator=FakeDensity()
    )
    p.process(frames(1)[0])
    p.reset()
    r = p.process(Frame("cam", 1, 0.1, np.full((16, 16, 3), 9, np.uint8)))
    assert r.density_fresh and r.metrics.counts["count_density"] == pytest.approx(9)


class StaticDetector:
    """One person box, the same on every frame."""

    def __init__(self, box: tuple[float, float, float, float] = (0, 0, 4, 8)) -> None:
        self.box = box

    def detect(self, frame: Frame) -> Detections:
        return Detections(
            xyxy=np.array([self.box], np.float32),
            confidence=np.array([0.9], np.float32),
            class_id=np.array([0]),
            data={"class_name": np.array(["person"])},
        )


class CountingTracker:
    def __init__(self) -> None:
        self.updates = 0

    def update(self, detections: Detections, ts_s: float, image: object = None) -> Detections:
        self.updates += 1
        out = Detections(
            xyxy=detections.xyxy.copy(),
            confidence=detections.confidence,
            class_id=detections.class_id,
            tracker_id=np.array([1]),
            data=dict(detections.data),
        )
        return out

    def reset(self) -> None:
        self.updates = 0


def test_detect_every_k_reuses_last_tracks() -> None:
    tracker = CountingTracker()
    p = CameraPipeline(
        "cam",
        PipelineSettings(density=False, detect_every=3, describe=False),
        detector=StaticDetector(),
        tracker=tracker,
    )
    results = [p.process(f) for f in frames(7)]
    assert tracker.updates == 3  # frames 0, 3, 6
    assert all(r.metrics.counts["count_tracked"] == 1 for r in results)
    assert results[1].metrics.counts["count:person"] == 1


class RecordingDescriber:
    def __init__(self) -> None:
        self.frames: list[int] = []

    def describe(self, frame: Frame, detections: Detections) -> None:
        self.frames.append(frame.index)

    def reset(self) -> None:
        self.frames.clear()


@pytest.mark.parametrize(
    ("every_s", "detect_every", "fps", "expected"),
    [
        (0.4, 1, 10.0, [0, 4, 8]),  # seconds, not frames
        (0.4, 1, 2.0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),  # a slow camera: every frame
        (0.0, 3, 10.0, [0, 3, 6, 9]),  # only frames that were detected, never stale boxes
        (0.5, 2, 10.0, [0, 6]),  # due at 0.5 s, but frame 5 reuses frame 4's boxes
    ],
)
def test_describe_cadence_is_in_seconds_on_detected_frames(
    every_s: float, detect_every: int, fps: float, expected: list[int]
) -> None:
    describer = RecordingDescriber()
    p = CameraPipeline(
        "cam",
        PipelineSettings(density=False, detect_every=detect_every, describe_every_s=every_s),
        detector=StaticDetector(),
        tracker=CountingTracker(),
        describer=describer,
    )
    for f in frames(10, fps):
        p.process(f)
    assert describer.frames == expected
    p.reset()
    p.process(frames(1, fps)[0])
    assert describer.frames == [0]  # reset restarts the cadence


PERSON_BOX = (40, 60, 80, 190)


class SilentTracker:
    """A tracker that has not confirmed anything yet (as on a track's first frames)."""

    def update(self, detections: Detections, ts_s: float, image: object = None) -> Detections:
        return Detections.empty()

    def reset(self) -> None:
        pass


def test_unconfirmed_people_are_still_redacted() -> None:
    from crowdsight.pipeline.annotate import Annotator
    from crowdsight.privacy import Redactor

    p = CameraPipeline(
        "cam",
        PipelineSettings(density=False, describe=False),
        detector=StaticDetector(PERSON_BOX),
        tracker=SilentTracker(),
    )
    rng = np.random.default_rng(0)
    frame = Frame("cam", 0, 0.0, rng.integers(0, 255, (200, 120, 3), np.uint8))
    r = p.process(frame)
    assert len(r.detections) == 0 and r.raw is not None and len(r.raw) == 1
    assert r.redaction_boxes().xyxy.tolist() == [[40, 60, 80, 190]]

    annotator = Annotator(heatmap=False, redactor=Redactor(faces=None, motion=False))
    hidden, shown = annotator.annotate(r), annotator.annotate(r, redact=False)
    head = (slice(66, 84), slice(50, 70))  # inside the head region of the raw person box
    assert not np.array_equal(hidden[head], shown[head])
    far = (slice(150, 200), slice(0, 30))  # nobody here
    assert np.array_equal(hidden[far], shown[far])


def test_redaction_boxes_join_tracked_and_raw() -> None:
    from crowdsight.pipeline.camera import FrameResult

    tracked = StaticDetector(PERSON_BOX).detect(frames(1)[0])
    raw = Detections(
        xyxy=np.array([[1, 1, 5, 9]], np.float32),
        class_id=np.zeros(1, int),
        data={"class_name": np.array(["person"])},
    )
    r = FrameResult(frames(1)[0], tracked, None, False, raw=raw)
    assert sorted(r.redaction_boxes().xyxy.tolist()) == [[1, 1, 5, 9], [40, 60, 80, 190]]
    assert len(FrameResult(frames(1)[0], tracked, None, False).redaction_boxes()) == 1


@pytest.mark.parametrize(
    ("slicing", "detector", "expected"),
    [
        ("off", "nanodet", None),
        ("auto", "ssdlite", 1_000_000),
        ("auto", "nanodet", 300_000),
        ("auto", "nanodet+ssdlite", 300_000),
        ("on", "nanodet", 0),
    ],
)
def test_slicing_setting_reaches_the_detector(
    slicing: str, detector: str, expected: int | None
) -> None:
    settings = PipelineSettings(detect=False, density=False, slicing=slicing, detector=detector)  # type: ignore[arg-type]
    sl = detector_kwargs(settings).get("slicing")
    assert (sl.min_frame_px if sl is not None else None) == expected


class MovingDetector:
    """One box that moves with the frame index; raises on a chosen frame; records threads."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.threads: set[str] = set()

    def detect(self, frame: Frame) -> Detections:
        self.threads.add(threading.current_thread().name)
        if frame.index == self.fail_at:
            raise RuntimeError(f"detector failed on frame {frame.index}")
        x = 10.0 + 3 * frame.index
        return Detections(
            xyxy=np.array([[x, 20, x + 20, 80], [100, 20, 120, 80]], np.float32),
            confidence=np.array([0.9, 0.8], np.float32),
            class_id=np.zeros(2, int),
            data={"class_name": np.array(["person", "person"])},
        )


def _summary(results: list[Any]) -> list[tuple[int, list[int], list[float]]]:
    return [
        (
            r.frame.index,
            [int(t) for t in (r.detections.tracker_id if len(r.detections) else [])],
            [round(float(v), 3) for v in r.detections.xyxy[:, 0]],
        )
        for r in results
    ]


@pytest.mark.parametrize(("detect_every", "ahead"), [(1, "on"), (2, "on"), (1, "off")])
def test_run_matches_process_frame_by_frame(detect_every: int, ahead: str) -> None:
    settings = PipelineSettings(
        density_every_n=3, detect_every=detect_every, describe=False, detect_ahead=ahead
    )
    one = CameraPipeline(
        "cam", settings, density_estimator=FakeDensity(), detector=MovingDetector()
    )
    det = MovingDetector()
    two = CameraPipeline("cam", settings, density_estimator=FakeDensity(), detector=det)
    expected = [one.process(f) for f in frames(12)]
    got = list(two.run(frames(12)))
    assert _summary(got) == _summary(expected)
    assert [r.density_fresh for r in got] == [r.density_fresh for r in expected]
    assert [r.metrics for r in got] == [r.metrics for r in expected]
    assert [r.raw is None for r in got] == [r.raw is None for r in expected]
    ran_ahead = any(t.startswith("detect-cam") for t in det.threads)
    assert ran_ahead == (ahead == "on")
    assert max(len(r.detections) for r in got) == 2  # tracks were confirmed


def test_run_reports_a_detector_error_after_earlier_frames() -> None:
    p = CameraPipeline(
        "cam",
        PipelineSettings(density=False, describe=False, detect_ahead="on"),
        detector=MovingDetector(fail_at=4),
    )
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="frame 4"):
        for r in p.run(frames(8)):
            seen.append(r.frame.index)
    assert seen == [0, 1, 2, 3]


def test_run_finishes_the_last_good_frame_when_the_source_fails() -> None:
    def failing() -> Any:
        yield from frames(3)
        raise OSError("stream broke")

    p = CameraPipeline(
        "cam", PipelineSettings(density=False, describe=False), detector=MovingDetector()
    )
    seen: list[int] = []
    with pytest.raises(OSError, match="stream broke"):
        for r in p.run(failing()):
            seen.append(r.frame.index)
    assert seen == [0, 1, 2]
