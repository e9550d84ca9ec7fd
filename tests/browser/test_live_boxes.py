"""One frame, one truth: the boxes on a live JPEG are `analyze`'s boxes for the frame it shows.

A camera plays a short Mall clip (an MP4 made from real Mall frames in a temp folder, never
copied into the repository) through the real runner and camera pipeline. The test pairs a
live JPEG (``snapshot.jpg`` and its ``X-Frame-Index``) with the boxes drawn on it
(``live.json``), decodes that very frame of the clip as ``crowdsight analyze`` does
(`open_source`) and runs the detector ``analyze`` builds with the camera's settings
(`build_pipeline_detector`) on it: every drawn box must be one of those boxes (IoU ≥ 0.9,
the issue's acceptance bar) and the detector must find as many boxes as the live pipeline
did. Before the live path took its JPEG only from frames the detector ran on, boxes of an
earlier frame were drawn on a later picture, beside the people who had moved on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import supervision as sv

from crowdsight.core.types import Frame
from tests.browser.conftest import LiveServer

FRAMES = 8
#: Slow enough that frames the detector skips (detect_every 2) are processed on their own
#: schedule, so a live path that sent their carried-over boxes would be caught.
CLIP_FPS = 0.5
#: The issue's acceptance bar: a drawn box and analyze's box for the same frame overlap this much.
MIN_IOU = 0.9
#: Pairs to check, each of a later frame: about half the frames come between detector runs.
PAIRS = 5
SHIFT = np.array([25.0, 0.0, 25.0, 0.0], np.float32)
# Upper bounds for slow CI machines, not assertions about speed.
FIRST_FRAME_WAIT_S = 240.0
PAIR_WAIT_S = 180.0


@pytest.fixture(scope="module")
def mall_clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 of the first Mall frames (in pytest's temp folder, a media root of the server)."""
    from crowdsight.sources.files import read_image
    from crowdsight.sources.writer import VideoWriter

    frames = sorted((shared_data / "mall" / "frames").glob("*.jpg"))[:FRAMES]
    if len(frames) < FRAMES:
        pytest.skip(f"need {FRAMES} frames in {shared_data / 'mall' / 'frames'}")
    path = tmp_path_factory.mktemp("mall-clip") / "mall.mp4"
    writer = VideoWriter(path, CLIP_FPS)
    for frame in frames:
        writer.write(read_image(frame))
    writer.close()
    return path


def _clip_frames(path: Path) -> list[Frame]:
    """The clip's frames, decoded as `crowdsight analyze` decodes them."""
    from crowdsight.sources.files import open_source

    source = open_source(path)
    try:
        return list(source)
    finally:
        source.close()


def _get(server: LiveServer, path: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _wait_for_pair(server: LiveServer, camera_id: str, token: str, after: int) -> Any:
    """(JPEG, live.json) of one frame after frame ``after`` with boxes drawn on it.

    The live JPEG changes about twice a second, so the two requests may straddle a change:
    a pair counts only when ``X-Frame-Index`` and ``live.json``'s ``frame_index`` agree.
    """
    deadline = time.monotonic() + PAIR_WAIT_S
    while time.monotonic() < deadline:
        snap = _get(server, f"/api/cameras/{camera_id}/snapshot.jpg", token)
        info = _get(server, f"/api/cameras/{camera_id}/live.json", token)
        if snap.status_code == 200 and info.status_code == 200:
            live = info.json()
            same = snap.headers.get("x-frame-index") == str(live["frame_index"])
            if same and live["frame_index"] > after and live["tracked"] > 0:
                return snap.content, live
        time.sleep(0.3)
    pytest.fail(f"no live JPEG with boxes and a matching live.json within {PAIR_WAIT_S:.0f} s")


def _edge_colour_share(image: np.ndarray, xyxy: Any, colour: np.ndarray) -> float:
    """Share of the rows along a box's left and right edges drawn in ``colour`` (±1 px)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in xyxy)
    rows = np.arange(max(y1 + 18, 0), min(y2 - 2, h))  # below the label drawn at the top
    if len(rows) < 5:
        return 1.0  # too short to tell; the IoU check still holds
    hits = []
    for x in (x1, x2):
        cols = np.clip(np.arange(x - 1, x + 2), 0, w - 1)
        patch = image[rows][:, cols].astype(np.float64)  # rows × 3 columns × RGB
        dist = np.linalg.norm(patch - colour, axis=2).min(axis=1)
        hits.append(dist < 60.0)  # JPEG quality 75 smears a 2 px line's colour a little
    return float(np.mean(np.concatenate(hits)))


@pytest.mark.browser
@pytest.mark.data
def test_boxes_on_the_live_jpeg_are_analyzes_boxes_for_that_frame(
    live_server: LiveServer, mall_clip: Path
) -> None:
    if live_server.pipeline != "standard":
        pytest.skip("needs the detector models (crowdsight models install)")
    from crowdsight.pipeline.camera import build_pipeline_detector

    token = live_server.token()
    res = httpx.post(
        f"{live_server.url}/api/cameras",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "id": "clip",
            "name": "Mall clip",
            "source": str(mall_clip),
            "loop": True,
            # The detector runs on every other frame; the live JPEG must still only show
            # boxes found on the frame it shows.
            "detect_every": 2,
            "density_every_s": 2.0,
        },
        timeout=10,
    )
    assert res.status_code in (200, 201), res.text
    runner = live_server.app.state.runner
    settings = runner.settings.pipeline.model_copy(update={"detect_every": 2})
    detector = build_pipeline_detector(settings)  # what `analyze` builds for these settings
    frames = _clip_frames(mall_clip)
    assert len(frames) == FRAMES

    deadline = time.monotonic() + FIRST_FRAME_WAIT_S
    while runner.latest_jpeg("clip") is None:
        if time.monotonic() > deadline:
            pytest.fail(f"no live frame within {FIRST_FRAME_WAIT_S:.0f} s")
        time.sleep(0.5)

    last, checked, ious = -1, 0, []
    while checked < PAIRS:
        jpeg, live = _wait_for_pair(live_server, "clip", token, after=last)
        last = live["frame_index"]
        frame = frames[last % FRAMES]  # looping files keep counting frames
        assert live["resolution_wh"] == list(frame.resolution_wh)
        expected = detector.detect(frame)

        # The detector ran on this very frame live, and finds the same number of boxes here.
        assert live["detected"] == len(expected), (last, live["detected"], len(expected))
        drawn = np.array([b["xyxy"] for b in live["boxes"]], np.float32)
        assert len(drawn) == live["tracked"] > 0
        iou = sv.box_iou_batch(drawn, expected.xyxy)
        best = iou.argmax(axis=1)
        ious += iou.max(axis=1).tolist()
        assert iou.max(axis=1).min() >= MIN_IOU, (last, iou.max(axis=1).round(3).tolist())
        names = expected.data.get("class_name")
        if names is not None:
            assert [b["class_name"] for b in live["boxes"]] == [str(names[j]) for j in best]

        # ...and those boxes are what the JPEG shows: its box edges are in the box colour.
        image = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1), cv2.COLOR_BGR2RGB)
        assert image.shape[1::-1] == frame.resolution_wh  # drawn at full size (640 wide)
        class_ids = expected.class_id[best] if expected.class_id is not None else [0] * len(best)
        # The annotator's BoxAnnotator colours boxes by class from supervision's default
        # palette, written in OpenCV's BGR order into the RGB picture.
        palette = sv.ColorPalette.DEFAULT
        colours = [np.array(palette.by_idx(int(c)).as_bgr(), float) for c in class_ids]
        on = [_edge_colour_share(image, b, c) for b, c in zip(drawn, colours, strict=True)]
        # The same test 25 px to the right, where no box was drawn (a control).
        beside = [
            _edge_colour_share(image, b + SHIFT, c) for b, c in zip(drawn, colours, strict=True)
        ]
        assert np.mean(on) >= 0.6, (last, np.round(on, 2).tolist())
        assert np.mean(on) > np.mean(beside) + 0.3, (np.mean(on), np.mean(beside))
        checked += 1
    print(f"checked {checked} live frames; drawn boxes' IoU with analyze: min {min(ious):.3f}")
