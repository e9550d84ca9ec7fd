"""Live view endpoints (snapshot.jpg, live.mjpeg) against S1's auth and a real SQLite store.

The runner here is a stand-in with a settable latest JPEG: these tests are about what the
HTTP layer serves and refuses (auth, 404/503, the redaction guard, the audit log), not about
how the runner produces frames (the browser test runs the real runner).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crowdsight.config.server import ServerSettings
from crowdsight.pipeline.worker import LiveFrame
from crowdsight.server import live
from crowdsight.store import Camera, Store


def _jpeg(value: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((24, 32, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


class StubRunner:
    """Latest JPEG per camera, plus the optional 'is it redacted' marker."""

    def __init__(self) -> None:
        self.jpegs: dict[str, bytes] = {}
        self.redacted: dict[str, bool] = {}

    def camera_ids(self) -> list[str]:
        return list(self.jpegs)

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        return self.jpegs.get(camera_id)

    def latest_jpeg_redacted(self, camera_id: str) -> bool:
        return self.redacted.get(camera_id, True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(
        f"sqlite:///{tmp_path / 'cs.db'}",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    s.migrate()
    s.create_camera(Camera(id="hall", name="Hall", source="/nowhere"))
    return s


def _client(store: Store, runner: Any, **settings: Any) -> tuple[TestClient, dict[str, str]]:
    app = FastAPI()
    app.state.store = store
    app.state.runner = runner
    app.state.settings = ServerSettings(**settings)
    app.include_router(live.router)
    user = store.create_user("vera", "a long password", "viewer")
    secret, _ = store.issue_token(user.id, "test")
    return TestClient(app), {"Authorization": f"Bearer {secret}"}


def test_snapshot_needs_sign_in(store: Store) -> None:
    client, _ = _client(store, StubRunner())
    assert client.get("/api/cameras/hall/snapshot.jpg").status_code == 401
    assert client.get("/api/cameras/hall/live.mjpeg").status_code == 401


def test_snapshot_unknown_camera_is_404_and_no_frame_is_503(store: Store) -> None:
    client, auth = _client(store, StubRunner())
    missing = client.get("/api/cameras/nope/snapshot.jpg", headers=auth)
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    waiting = client.get("/api/cameras/hall/snapshot.jpg", headers=auth)
    assert waiting.status_code == 503
    assert "no frame yet" in waiting.json()["detail"]


def test_snapshot_without_runner_is_503(store: Store) -> None:
    client, auth = _client(store, None)
    res = client.get("/api/cameras/hall/snapshot.jpg", headers=auth)
    assert res.status_code == 503
    assert "no cameras" in res.json()["detail"]


def test_snapshot_serves_latest_jpeg_and_audits_once_per_minute(store: Store) -> None:
    runner = StubRunner()
    client, auth = _client(store, runner)
    runner.jpegs["hall"] = _jpeg(10)
    first = client.get("/api/cameras/hall/snapshot.jpg", headers=auth)
    runner.jpegs["hall"] = _jpeg(200)
    second = client.get("/api/cameras/hall/snapshot.jpg", headers=auth)
    assert first.headers["content-type"] == "image/jpeg"
    assert first.content == _jpeg(10)
    assert second.content == _jpeg(200)
    assert "no-store" in second.headers["cache-control"]
    entries = store.query_audit(action="live.snapshot")
    assert [(e.username, e.detail) for e in entries] == [("vera", "hall")]


@pytest.mark.parametrize(
    ("allow", "expected"), [(False, 503), (True, 200)], ids=["refused", "explicitly-allowed"]
)
def test_frame_marked_unredacted_is_refused_unless_allowed(
    store: Store, allow: bool, expected: int
) -> None:
    runner = StubRunner()
    client, auth = _client(store, runner, live_allow_unredacted=allow)
    runner.jpegs["hall"] = _jpeg(50)
    runner.redacted["hall"] = False
    assert client.get("/api/cameras/hall/snapshot.jpg", headers=auth).status_code == expected
    if not allow:  # an allowed stream is endless, which the TestClient cannot read
        assert client.get("/api/cameras/hall/live.mjpeg", headers=auth).status_code == 503


class _Request:
    """Just enough of a Starlette request: disconnects after ``polls`` checks."""

    def __init__(self, polls: int) -> None:
        self.polls = polls

    async def is_disconnected(self) -> bool:
        self.polls -= 1
        return self.polls < 0


def _collect(request: Any, runner: StubRunner, allow: bool = False) -> list[bytes]:
    async def run() -> list[bytes]:
        return [p async for p in live.mjpeg_parts(request, runner, "hall", 1000.0, allow)]

    return asyncio.run(run())


def test_mjpeg_sends_each_new_frame_once_and_stops_on_disconnect() -> None:
    runner = StubRunner()
    runner.jpegs["hall"] = frame = _jpeg(80)
    parts = _collect(_Request(polls=5), runner)
    assert len(parts) == 1  # the same frame is not resent while the camera has no new one
    head, body = parts[0].split(b"\r\n\r\n", 1)
    assert head.startswith(f"--{live.BOUNDARY}\r\nContent-Type: image/jpeg".encode())
    assert f"Content-Length: {len(frame)}".encode() in head
    assert body == frame + b"\r\n"


def test_mjpeg_stream_ends_when_a_frame_is_not_redacted() -> None:
    runner = StubRunner()
    runner.jpegs["hall"] = _jpeg(80)
    runner.redacted["hall"] = False
    assert _collect(_Request(polls=100), runner) == []


class FramesRunner(StubRunner):
    """A stub that also says which frame its JPEG shows (as `LocalRunner.latest_live`)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: dict[str, LiveFrame] = {}

    def latest_live(self, camera_id: str) -> tuple[bytes, LiveFrame | None] | None:
        jpeg = self.jpegs.get(camera_id)
        return None if jpeg is None else (jpeg, self.frames.get(camera_id))


def test_snapshot_names_its_frame_and_live_json_lists_the_boxes_drawn(store: Store) -> None:
    runner = FramesRunner()
    client, auth = _client(store, runner)
    assert client.get("/api/cameras/hall/live.json", headers=auth).status_code == 503
    runner.jpegs["hall"] = _jpeg(90)
    runner.frames["hall"] = LiveFrame(
        frame_index=1207,
        ts_s=120.7,
        resolution_wh=(640, 480),
        xyxy=((10.0, 20.0, 40.5, 110.0), (300.0, 200.0, 330.0, 290.0)),
        track_ids=(3, 9),
        class_names=("person", "person"),
        detected=4,
    )
    snap = client.get("/api/cameras/hall/snapshot.jpg", headers=auth)
    assert (snap.headers["x-frame-index"], snap.headers["x-frame-ts"]) == ("1207", "120.700")
    info = client.get("/api/cameras/hall/live.json", headers=auth).json()
    assert info == {
        "camera_id": "hall",
        "frame_index": 1207,
        "ts_s": 120.7,
        "resolution_wh": [640, 480],
        "tracked": 2,
        "detected": 4,
        "boxes": [
            {"xyxy": [10.0, 20.0, 40.5, 110.0], "track_id": 3, "class_name": "person"},
            {"xyxy": [300.0, 200.0, 330.0, 290.0], "track_id": 9, "class_name": "person"},
        ],
    }
    # Signed-out clients get nothing; an unredacted frame is refused like the JPEG.
    assert client.get("/api/cameras/hall/live.json").status_code == 401
    runner.redacted["hall"] = False
    assert client.get("/api/cameras/hall/live.json", headers=auth).status_code == 503
