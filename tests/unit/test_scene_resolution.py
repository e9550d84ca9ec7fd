"""A scene drawn at another size than the frames: rescaled, with a warning that says so."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from crowdsight.analytics import SceneAnalytics
from crowdsight.analytics.scene import resolution_warning
from crowdsight.config.scene import parse_scene
from crowdsight.core.types import Detections, Frame


def _person(x: float, y: float) -> Detections:
    return Detections(
        xyxy=np.array([[x - 5, y - 30, x + 5, y]], np.float32),
        confidence=np.ones(1, np.float32),
        class_id=np.zeros(1, int),
        tracker_id=np.array([1]),
    )


def test_a_1280x720_scene_on_360x240_frames_is_rescaled_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The right half of a 1280×720 frame; on 360×240 frames it is x ≥ 180.
    scene = parse_scene(
        {
            "resolution_wh": [1280, 720],
            "zones": [{"id": "right", "polygon": [[640, 0], [1280, 0], [1280, 720], [640, 720]]}],
        }
    )
    sa = SceneAnalytics(scene, "cam")
    image = np.zeros((240, 360, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger="crowdsight.analytics.scene"):
        for i in range(3):
            result = sa.update(Frame("cam", i, i / 10, image), _person(270, 200), None, False)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "cam: scene drawn at 1280×720 but frames are 360×240 (aspect 1.78 vs 1.50): zones and "
        "lines are stretched to fit; redraw the scene on a 360×240 frame"
    ]  # once, not per frame
    assert sa.scale_warning == warnings[0].removeprefix("cam: ")
    assert result.metrics.zones["right"].occupancy == 1.0  # the zone was rescaled


@pytest.mark.parametrize(
    ("scene_wh", "frame_wh", "expected"),
    [
        (None, (640, 480), None),
        ((640, 480), (640, 480), None),
        (
            (1280, 720),
            (640, 360),
            "scene drawn at 1280×720 but frames are 640×360: zones and lines are rescaled by 0.50",
        ),
    ],
)
def test_resolution_warning(
    scene_wh: tuple[int, int] | None, frame_wh: tuple[int, int], expected: str | None
) -> None:
    assert resolution_warning(scene_wh, frame_wh) == expected


def test_the_scale_warning_reaches_the_camera_status() -> None:
    """The worker reports the analytics' standing warning; the status API shows it."""
    from crowdsight.pipeline.runner import LocalRunner
    from crowdsight.pipeline.supervision import CameraState
    from crowdsight.pipeline.worker import WorkerReport, WorkerSpec

    warning = resolution_warning((1280, 720), (360, 240))
    assert warning is not None
    cam = CameraState(WorkerSpec(camera_id="cam", source="x.mp4"), True)
    LocalRunner._apply(None, cam, WorkerReport(camera_id="cam", warnings=[warning]))  # type: ignore[arg-type]
    assert cam.status()["warnings"] == [warning]
    # A later report without it (the scene was redrawn) clears it.
    LocalRunner._apply(None, cam, WorkerReport(camera_id="cam"))  # type: ignore[arg-type]
    assert cam.status()["warnings"] == []
