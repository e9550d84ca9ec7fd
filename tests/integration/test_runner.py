"""The local runner's supervision and the `crowdsight serve` command, end to end.

Worker processes are real (spawn); pipelines are the model-free `TickPipeline` or small
variants of it defined here (the spawned workers import them by module path).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.core.events import OpenEvents
from crowdsight.core.types import Frame
from crowdsight.pipeline.runner import LocalRunner
from crowdsight.pipeline.worker import RedactedImages, TickPipeline, description_items
from crowdsight.sources.stream import Backoff, LiveSource
from crowdsight.store import Store
from crowdsight.store.records import Camera
from tests.api.support import free_port
from tests.integration.test_reliability import (
    LINE_EVERY,
    MjpegServer,
    line_frames,
    status,
    tick_settings,
    wait_for,
    write_video,
)


# ----------------------------------------------------------------------------- pipelines
class _HangOnce:
    """TickPipeline that hangs forever on frame 30 the first time it gets there."""

    def __init__(self, camera_id: str, marker: Path) -> None:
        self.inner = TickPipeline(camera_id)
        self.marker = marker

    def reset(self) -> None:
        self.inner.reset()

    def process(self, frame: Frame) -> Any:
        if frame.index == 30 and not self.marker.exists():
            self.marker.touch()
            time.sleep(3600)
        return self.inner.process(frame)


def hang_marker(camera_id: str) -> Path:
    """Where the hang-once pipeline of ``camera_id`` marks that it hung (unique per test run:
    environment variables would not reach workers forked from a forkserver started earlier
    by another test, and the scene is a typed `SceneConfig` with no room for test data)."""
    return Path(tempfile.gettempdir()) / f"crowdsight-test-{camera_id}.hung"


def hang_once_pipeline(camera_id: str, settings: PipelineSettings, scene: Any) -> _HangOnce:
    return _HangOnce(camera_id, hang_marker(camera_id))


def never_closing_pipeline(camera_id: str, settings: PipelineSettings, scene: Any) -> Any:
    return TickPipeline(camera_id, open_for=10**9)


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    s = Store(f"sqlite:///{tmp_path / 'crowdsight.db'}")
    s.migrate()
    yield s
    s.close()


# ----------------------------------------------------------------------------- units
@pytest.mark.parametrize(
    ("attempt", "expected_s"), [(0, 0.5), (1, 1.0), (3, 4.0), (6, 30.0), (50, 30.0)]
)
def test_backoff_grows_exponentially_and_is_capped(attempt: int, expected_s: float) -> None:
    assert Backoff(initial_s=0.5, max_s=30.0, jitter=0.0).delay_s(attempt) == expected_s


def test_backoff_jitter_stays_within_its_band() -> None:
    b = Backoff(initial_s=1.0, max_s=8.0, jitter=0.25)
    delays = [b.delay_s(2) for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert len(set(delays)) > 1


def _tick_ids(salt: str, start: int, stop: int = 50) -> list[tuple[str, int, bool]]:
    """(id, frame, open) of the events TickPipeline raises on frames [start, stop)."""
    ids, pipe, out = OpenEvents("c", salt), TickPipeline("c", open_for=3), []
    for i in range(start, stop):
        res = pipe.process(Frame("c", i, i / 10, np.zeros((4, 4, 3), np.uint8)))
        out += [(e.event_id, i, e.is_open) for e in ids.assign(res.events, i)]
    return out


def test_stable_ids_repeat_for_replays_and_follow_open_events() -> None:
    full, replay = _tick_ids("s", 0), _tick_ids("s", 20)
    by_frame = {(i, o): eid for eid, i, o in full}
    # A replay from frame 20 raises events with the same ids as the full run.
    assert replay and all(by_frame[(i, o)] == eid for eid, i, o in replay)
    # An open event and its closing copy share one id.
    opened = {eid for eid, _, o in full if o}
    closed = {eid for eid, _, o in full if not o}
    assert opened and opened <= closed
    # Another session (salt) never reuses an id.
    assert not {eid for eid, _, _ in _tick_ids("t", 0)} & {eid for eid, _, _ in full}


def test_file_source_resumes_at_skip_to_across_loops(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 30)
    src = LiveSource("v", str(video), loop=True, realtime=False, skip_to=70)
    got = []
    for frame in src:
        got.append(frame.index)
        if len(got) == 25:
            break
    src.close()
    assert got == list(range(70, 95))


def test_realtime_resume_does_not_wait_for_the_skipped_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = write_video(tmp_path / "v.mp4", 60, fps=20)
    waits: list[float] = []

    def wait(self: LiveSource, seconds: float) -> bool:
        waits.append(seconds)
        time.sleep(seconds)
        return True

    monkeypatch.setattr(LiveSource, "_wait", wait)
    src = LiveSource("v", str(video), loop=False, realtime=True, skip_to=50)
    got = [f.index for f in src]
    assert got == list(range(50, 60))
    # Paced one frame interval at a time, never for the 2.5 s of skipped video.
    assert waits and max(waits) <= 1 / 20 + 1e-6


def test_slow_consumer_of_a_realtime_file_skips_late_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 40, fps=20)
    src = LiveSource("v", str(video), loop=False, realtime=True, drop_late=True)
    got = []
    for frame in src:
        got.append(frame.index)
        time.sleep(0.2)  # four frame intervals per frame: far slower than the video
    assert src.status.dropped_frames > 0
    assert len(got) + src.status.dropped_frames == 40
    assert got == sorted(set(got)) and got[-1] >= 30  # kept up to the end of the video


def test_slow_consumer_of_a_stream_gets_the_newest_frames() -> None:
    server = MjpegServer(fps=50).start()
    src = LiveSource("net", server.url, drop_late=True)
    try:
        for n, _ in enumerate(src):
            time.sleep(0.1)
            if n == 10:
                break
    finally:
        src.close()
        server.stop()
    assert src.status.dropped_frames > 0


# ----------------------------------------------------------------------------- runner
def test_stuck_worker_is_killed_by_the_watchdog_and_resumes(tmp_path: Path, store: Store) -> None:
    n = 100
    video = write_video(tmp_path / "cam.mp4", n, fps=100)
    settings = tick_settings(
        realtime=True,
        pipeline_factory=f"{__name__}:hang_once_pipeline",
        stuck_after_s=4.0,  # generous: a loaded CI machine must not look stuck
        start_method="forkserver",
    )
    runner = LocalRunner(store, settings)
    runner.start()
    cam = f"cam-{uuid.uuid4().hex[:12]}"
    try:
        runner.add_camera(Camera(id=cam, name="cam", source=str(video), loop=False))
        wait_for(lambda: status(runner, cam).get("state") == "finished", 60, "finish")
        st = status(runner, cam)
    finally:
        runner.stop()
    assert hang_marker(cam).exists()  # it really hung
    hang_marker(cam).unlink()
    assert st["restarts"] >= 1
    assert "stuck" in (st["error"] or "")
    assert line_frames(store, cam) == list(range(0, n, LINE_EVERY))


def test_restart_replace_and_remove_close_open_events(tmp_path: Path, store: Store) -> None:
    video = write_video(tmp_path / "cam.mp4", 100, fps=50)
    settings = tick_settings(
        realtime=True,
        pipeline_factory=f"{__name__}:never_closing_pipeline",
        start_method="forkserver",  # three worker starts: fork them from a warm server
        jpeg_every_s=0.2,
        snapshots=True,
    )
    runner = LocalRunner(store, settings)
    runner.start()
    try:
        runner.add_camera(Camera(id="a", name="a", source=str(video), loop=True))
        wait_for(lambda: (status(runner, "a").get("last_frame_index") or 0) > 10, what="frames")
        pid = runner.worker_pid("a")
        runner.restart_camera("a")
        wait_for(
            lambda: (
                runner.worker_pid("a") not in (None, pid)
                and status(runner, "a")["state"] == "running"
            ),
            what="restart",
        )
        assert status(runner, "a")["restarts"] == 1
        # The restart closed the event the first worker had open.
        first = min(store.query_events(type="overcrowding"), key=lambda e: e.start_ts_s)
        assert first.end_ts_s is not None
        wait_for(lambda: len(store.query_events(type="overcrowding")) == 2, what="new event")
        # Changing a camera's settings (what the API does) replaces its worker.
        pid = runner.worker_pid("a")
        runner.add_camera(Camera(id="a", name="a", source=str(video), loop=True, detect_every=2))
        wait_for(
            lambda: (
                runner.worker_pid("a") not in (None, pid)
                and (status(runner, "a").get("last_frame_index") or 0) > 0
            ),
            what="replacement",
        )
        wait_for(lambda: len(store.query_events(type="overcrowding")) == 3, what="new event")
        jpeg = runner.latest_jpeg("a")
        runner.remove_camera("a")
        wait_for(lambda: "a" not in runner.camera_ids(), what="removal")
    finally:
        runner.stop()
    events = store.query_events(type="overcrowding", limit=1000)
    assert len(events) == 3  # one per worker: a replaced camera never reuses event ids
    assert all(e.end_ts_s is not None for e in events)  # replacement and removal closed them
    # Live JPEGs and event snapshots exist exactly when redaction works (they fail closed).
    if _redaction_works():
        assert jpeg is not None and jpeg.startswith(b"\xff\xd8")
        assert all(e.has_snapshot for e in events)
    else:
        assert jpeg is None and not any(e.has_snapshot for e in events)


def test_serve_config_defaults_and_errors(tmp_path: Path) -> None:
    from crowdsight.config.serve import load_serve_config
    from crowdsight.core.errors import ConfigError

    assert load_serve_config(None).cameras == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - {id: a, name: A, source: x.mp4, colour: red}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: cameras.0.colour"):
        load_serve_config(bad)
    rel = tmp_path / "ok.yaml"
    rel.write_text("cameras:\n  - {id: a, name: A, source: clips/x.mp4}\n")
    assert load_serve_config(rel).cameras[0].source == str(tmp_path / "clips" / "x.mp4")


def _redaction_works() -> bool:
    result = TickPipeline("c").process(Frame("c", 0, 0.0, np.zeros((48, 64, 3), np.uint8)))
    return RedactedImages(640).jpeg(result) is not None


def test_live_images_fail_closed_when_redaction_fails() -> None:
    class Broken:
        def annotate(self, result: Any, *, redact: bool = True) -> Any:
            raise RuntimeError("face model missing")

    images = RedactedImages(640)
    images._annotator = Broken()
    result = TickPipeline("c").process(Frame("c", 0, 0.0, np.zeros((48, 64, 3), np.uint8)))
    assert images.jpeg(result) is None
    assert images.jpeg(result) is None  # and stays off: never an unredacted image


class _Described:
    text = "red top"
    fields = {"top_colour": "red"}  # noqa: RUF012


@pytest.mark.parametrize(
    ("description", "text"),
    [
        ("black top", "black top"),
        ({"text": "white van", "fields": {"type": "van"}}, "white van"),
        (_Described(), "red top"),
        ({"text": ""}, None),  # nothing to say: left out
    ],
)
def test_description_items_accept_strings_mappings_and_objects(
    description: Any, text: str | None
) -> None:
    items = description_items({7: description}, 12.5)
    assert [i["text"] for i in items] == ([text] if text else [])
    assert all(i["track_id"] == 7 and i["ts_s"] == 12.5 for i in items)


# ----------------------------------------------------------------------------- serve CLI


def _workers(pid: int) -> list[int]:
    """Pids of the camera worker processes (spawned children) of ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cmdline = (stat.parent / "cmdline").read_bytes() if stat.parent.exists() else b""
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            out.append(int(stat.parent.name))
    return out


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "crowdsight", "serve", "--data-dir", str(tmp_path / "data")]
    return subprocess.Popen(
        [*cmd, *args],
        env={**os.environ, "CROWDSIGHT_ADMIN_PASSWORD": "pw-12345"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_healthy(proc: subprocess.Popen[str], base: str) -> None:
    def up() -> bool:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, "server")


def test_serve_runs_configured_cameras_and_shuts_down_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    video = write_video(tmp_path / "cam.mp4", 200, fps=50)
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"server: {{port: {port}}}\n"
        "runner:\n"
        f"  pipeline_factory: '{__name__}:never_closing_pipeline'\n"
        "  jpeg_every_s: 0\n"
        "  snapshots: false\n"
        "cameras:\n"
        f"  - {{id: cam, name: Cam, source: {video.name}, loop: true}}\n"
    )
    proc = _serve(tmp_path, "--config", str(config))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base)
        token = httpx.post(
            f"{base}/api/auth/login", json={"username": "admin", "password": "pw-12345"}
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}

        def committed() -> int:
            r = httpx.get(f"{base}/api/cameras/cam/status", headers=headers, timeout=5)
            return int(r.json()["detail"]["events_committed"]) if r.status_code == 200 else 0

        wait_for(lambda: committed() > 5, 60, "events")
        workers = _workers(proc.pid)
        assert len(workers) == 1  # one worker process per camera
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert not [p for p in workers if Path(f"/proc/{p}").exists()]  # no orphan workers
    store = Store(f"sqlite:///{tmp_path / 'data' / 'crowdsight.db'}")
    events = store.query_events(camera_id="cam", limit=10_000)
    store.close()
    assert any(e.type == "line_crossed" for e in events)
    # The open Overcrowding was closed and committed during the clean shutdown.
    assert all(e.end_ts_s is not None for e in events if e.type == "overcrowding")
