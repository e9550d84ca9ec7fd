"""One frame, one truth: the live JPEG is only taken from frames whose boxes are their own."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from crowdsight.core.types import Detections, Frame
from crowdsight.pipeline.camera import FrameResult
from crowdsight.pipeline.worker import CameraWorker, LiveFrame, WorkerReport, WorkerSpec


def _result(index: int, detected: bool) -> FrameResult:
    frame = Frame("c", index, index / 10, np.zeros((48, 64, 3), np.uint8))
    boxes = Detections(
        xyxy=np.array([[10 + index, 10, 20 + index, 40]], np.float32),
        confidence=np.ones(1, np.float32),
        class_id=np.zeros(1, int),
        tracker_id=np.array([1]),
    )
    return FrameResult(frame, boxes, None, False, raw=boxes if detected else None)


def _jpeg_frames(detector: object | None) -> list[int]:
    reports: list[WorkerReport] = []
    worker = CameraWorker(
        WorkerSpec(camera_id="c", source="unused", jpeg_every_s=1e-9),
        reports.append,
        threading.Event(),
    )
    worker._pipeline = SimpleNamespace(detector=detector)  # type: ignore[assignment]
    drawn: list[int] = []

    def jpeg(result: Any) -> bytes:
        drawn.append(result.frame.index)
        return b"jpeg"

    worker.images.jpeg = jpeg  # type: ignore[method-assign]
    for i in range(6):  # detect_every 2: the detector runs on even frames only
        result = _result(i, detected=i % 2 == 0)
        worker._emit(result, result.frame)
    sent = [r for r in reports if r.jpeg is not None]
    assert len(sent) == len(drawn)
    # Each JPEG travels with the record of the frame it shows and the boxes drawn on it.
    for report, index in zip(sent, drawn, strict=True):
        live = report.live_frame
        assert live is not None and live.frame_index == index
        assert live.xyxy == ((10.0 + index, 10.0, 20.0 + index, 40.0),)
        assert live.track_ids == (1,) and live.tracked == 1
    return drawn


def test_live_jpeg_comes_only_from_frames_the_detector_ran_on() -> None:
    assert _jpeg_frames(detector=object()) == [0, 2, 4]


def test_without_a_detector_every_frame_may_be_the_live_jpeg() -> None:
    assert _jpeg_frames(detector=None) == [0, 1, 2, 3, 4, 5]


def test_live_frame_record_names_the_frame_its_boxes_and_what_the_detector_found() -> None:
    frame = Frame("c", 41, 4.1, np.zeros((48, 64, 3), np.uint8))
    raw = Detections(
        xyxy=np.array([[1, 2, 11, 32], [30, 5, 40, 35]], np.float32),
        confidence=np.ones(2, np.float32),
        class_id=np.zeros(2, int),
        data={"class_name": np.array(["person", "person"])},
    )
    tracked = Detections(
        xyxy=raw.xyxy[1:],
        confidence=raw.confidence[1:],  # type: ignore[index]
        class_id=raw.class_id[1:],  # type: ignore[index]
        tracker_id=np.array([7]),
        data={"class_name": np.array(["person"])},
    )
    live = LiveFrame.of(FrameResult(frame, tracked, None, False, raw=raw))
    assert (live.frame_index, live.ts_s, live.resolution_wh) == (41, 4.1, (64, 48))
    assert live.xyxy == ((30.0, 5.0, 40.0, 35.0),)
    assert (live.track_ids, live.class_names, live.tracked, live.detected) == (
        (7,),
        ("person",),
        1,
        2,
    )
    # Between detector runs nothing was detected on the frame itself.
    carried = LiveFrame.of(FrameResult(frame, tracked, None, False, raw=None))
    assert carried.detected is None


def _walkers(t: float) -> Detections:
    """Five people walking right at 10 px/s, 60 px apart (boxes 30 × 80 px)."""
    x = 50 + 60 * np.arange(5) + 10 * t
    xyxy = np.stack([x, np.full(5, 100), x + 30, np.full(5, 180)], axis=1).astype(np.float32)
    return Detections(xyxy=xyxy, confidence=np.full(5, 0.9, np.float32), class_id=np.zeros(5, int))


def test_a_slow_live_camera_keeps_its_tracks_between_detector_runs() -> None:
    # The demo camera on a busy CPU ran its detector about 0.7 times a second. With a lost
    # buffer of a fixed 1 s every track died between two runs and nobody was ever confirmed:
    # the live view said "tracked 0" beside a picture full of people.
    from crowdsight.tracking import make_tracker

    tracker = make_tracker(frame_rate=25.0)  # the live pipeline's nominal rate
    tracked = [len(tracker.update(_walkers(t), ts_s=t)) for t in np.arange(12) * 1.4]
    assert tracked[0] == 0  # a new track is confirmed on its second detection
    assert tracked[1:] == [5] * 11
    # At video rate the buffer stays the nominal one: a person gone for 1.5 s is dropped.
    fast = make_tracker(frame_rate=25.0)
    for t in np.arange(50) * 0.04:
        fast.update(_walkers(t), ts_s=t)
    fast.update(Detections.empty(), ts_s=3.5)
    assert len(fast.update(_walkers(3.54), ts_s=3.54)) == 0  # new tracks, not yet confirmed
