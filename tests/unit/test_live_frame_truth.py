"""One frame, one truth: the live JPEG is only taken from frames whose boxes are their own."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from crowdsight.core.types import Detections, Frame
from crowdsight.pipeline.camera import FrameResult
from crowdsight.pipeline.worker import CameraWorker, WorkerReport, WorkerSpec


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
    assert sum(r.jpeg is not None for r in reports) == len(drawn)
    return drawn


def test_live_jpeg_comes_only_from_frames_the_detector_ran_on() -> None:
    assert _jpeg_frames(detector=object()) == [0, 2, 4]


def test_without_a_detector_every_frame_may_be_the_live_jpeg() -> None:
    assert _jpeg_frames(detector=None) == [0, 1, 2, 3, 4, 5]
