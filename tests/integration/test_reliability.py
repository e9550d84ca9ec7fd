"""Reliability of the live runner: crashes, dropped streams and corrupt video.

Every test runs real worker processes (spawn) on small synthetic inputs with the model-free
`TickPipeline` (events follow a fixed rule of the frame index), and a real SQLite store, so
"nothing lost, nothing duplicated" is checked against an exactly known event stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from crowdsight.config.runner import RunnerSettings
from crowdsight.core.events import OpenEvents
from crowdsight.pipeline.runner import LocalRunner
from crowdsight.pipeline.worker import CameraWorker, WorkerReport, WorkerSpec
from crowdsight.sources.files import open_source
from crowdsight.sources.stream import Backoff, LiveSource, SourceState
from crowdsight.store import Store
from crowdsight.store.records import Camera

TICK = "crowdsight.pipeline.worker:tick_pipeline"
LINE_EVERY = 5  # TickPipeline raises a LineCrossed on every 5th frame


# ----------------------------------------------------------------------------- helpers
def write_video(path: Path, n: int, fps: int = 100, wh: tuple[int, int] = (64, 48)) -> Path:
    """A small MPEG-4 video whose frame i has brightness i (mod 256)."""
    w, h = wh
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.full((h, w, 3), i % 256, np.uint8)
            img[: h // 4, (i * 3) % w :] = 255  # some motion
            img[h // 2 :] = rng.integers(0, 256, (h - h // 2, w, 3), np.uint8)  # and texture
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def corrupt_middle(path: Path, fraction: float = 0.03, seed: int = 0) -> Path:
    """Overwrite ``fraction`` of the file, in its middle, with random garbage."""
    data = bytearray(path.read_bytes())
    n_bytes = int(len(data) * fraction)
    mid = len(data) // 2
    data[mid : mid + n_bytes] = (
        np.random.default_rng(seed).integers(0, 256, n_bytes, np.uint8).tobytes()
    )
    path.write_bytes(bytes(data))
    return path


class MjpegServer:
    """A loopback MJPEG-over-HTTP camera that can be stopped and started on the same port."""

    def __init__(self, fps: float = 50.0) -> None:
        self.fps = fps
        self.port = 0
        self.frames_sent = 0
        self._running = False
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> MjpegServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while owner._running:
                        img = np.full((48, 64, 3), (owner.frames_sent * 7) % 256, np.uint8)
                        owner.frames_sent += 1
                        jpg = cv2.imencode(".jpg", img)[1].tobytes()
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        self.wfile.write(head % len(jpg) + jpg + b"\r\n")
                        time.sleep(1.0 / owner.fps)
                except OSError:
                    pass  # the client went away

            def log_message(self, *args: Any) -> None:
                pass

        self._running = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._running = False
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


def wait_for(cond: Callable[[], bool], timeout_s: float = 40.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail (not a timing assert: a liveness bound) otherwise."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'crowdsight.db'}")
    s.migrate()
    yield s
    s.close()


def tick_settings(**changes: Any) -> RunnerSettings:
    base: dict[str, Any] = {
        "pipeline_factory": TICK,
        "drop_late": False,  # every frame is processed: the event stream is exact
        "jpeg_every_s": 0,
        "snapshots": False,
        "restart_initial_s": 0.1,
        "reconnect_initial_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    return RunnerSettings(**(base | changes))


def status(runner: LocalRunner, cam: str) -> dict[str, Any]:
    return runner.cameras_status().get(cam, {})


def line_frames(store: Store, cam: str) -> list[int]:
    events = store.query_events(camera_id=cam, type="line_crossed", limit=100_000)
    return sorted(e.payload["frame_index"] for e in events)


def reference_ids(spec: WorkerSpec) -> set[str]:
    """Event ids of an uninterrupted, in-process run of the same spec."""
    reports: list[WorkerReport] = []
    CameraWorker(spec, reports.append, threading.Event()).run()
    ledger = OpenEvents(spec.camera_id, spec.id_salt)  # as the runner gives stable ids
    return {
        e.event_id
        for r in reports
        if r.events and r.last_index is not None
        for e in ledger.assign(r.events, r.last_index)
    }


# ----------------------------------------------------------------------------- tests
def test_kill9_worker_is_restarted_and_no_event_is_lost_or_duplicated(
    tmp_path: Path, store: Store
) -> None:
    n = 400
    video = write_video(tmp_path / "cam.mp4", n, fps=100)  # 4 s of real time
    runner = LocalRunner(store, tick_settings(realtime=True))
    runner.start()
    try:
        runner.add_camera(Camera(id="cam", name="cam", source=str(video), loop=False))
        wait_for(lambda: (status(runner, "cam").get("last_frame_index") or 0) >= 100, what="frames")
        first_pid = runner.worker_pid("cam")
        assert runner.kill_worker("cam") == first_pid
        wait_for(lambda: status(runner, "cam").get("state") == "finished", what="finish")
        st = status(runner, "cam")
    finally:
        runner.stop()

    assert st["restarts"] == 1
    assert st["last_frame_index"] == n - 1
    # Nothing lost, nothing duplicated: the exact line crossings of an uninterrupted run...
    assert line_frames(store, "cam") == list(range(0, n, LINE_EVERY))
    # ...and the very same event ids as a reference run without the kill.
    stored = store.query_events(camera_id="cam", limit=100_000)
    ref = reference_ids(
        WorkerSpec(
            "cam",
            str(video),
            loop=False,
            realtime=False,
            pipeline_factory=TICK,
            id_salt=f"{runner.session}:1",
            jpeg_every_s=0,
            snapshots=False,
        )
    )
    assert {e.event_id for e in stored} == ref
    assert len(stored) == len(ref)
    assert all(e.end_ts_s is not None for e in stored)  # every duration event was closed


def test_corrupt_frames_are_skipped_and_the_worker_keeps_running(
    tmp_path: Path, store: Store
) -> None:
    n = 200
    video = corrupt_middle(write_video(tmp_path / "bad.mp4", n))
    decodable = sum(1 for _ in _frames_until_error(video))
    assert 0 < decodable < n  # the garbage really costs frames

    runner = LocalRunner(store, tick_settings(realtime=False))
    runner.start()
    try:
        runner.add_camera(Camera(id="bad", name="bad", source=str(video), loop=True))
        # Past the corrupt part and around the loop twice: the worker did not die on it.
        wait_for(
            lambda: (status(runner, "bad").get("last_frame_index") or 0) >= 2 * decodable,
            what="two passes",
        )
        st = status(runner, "bad")
    finally:
        runner.stop()

    assert st["restarts"] == 0
    assert st["corrupt_frames"] > 0
    assert st["pipeline_errors"] == 0
    frames = line_frames(store, "bad")
    assert frames == sorted(set(frames))  # no duplicates
    assert max(frames) >= 2 * decodable - LINE_EVERY


def _frames_until_error(video: Path) -> Iterator[Any]:
    src = open_source(video)
    try:
        yield from src
    except Exception:
        return
    finally:
        src.close()


def test_stream_that_drops_and_returns_is_reconnected_by_the_worker(store: Store) -> None:
    server = MjpegServer().start()
    # The latest-frame reader thread; workers forked from a forkserver (the other start method).
    runner = LocalRunner(store, tick_settings(drop_late=True, start_method="forkserver"))
    runner.start()
    try:
        runner.add_camera(Camera(id="net", name="net", source=server.url, loop=False))
        wait_for(lambda: (status(runner, "net").get("last_frame_index") or 0) >= 20, what="frames")
        server.stop()
        wait_for(
            lambda: status(runner, "net").get("source_state") in ("reconnecting", "failed"),
            what="reconnecting",
        )
        at_drop = status(runner, "net")["last_frame_index"]
        time.sleep(0.5)  # stay down across at least one failed reconnect attempt
        server.start()
        wait_for(
            lambda: (status(runner, "net").get("last_frame_index") or 0) >= at_drop + 20,
            what="resumed frames",
        )
        st = status(runner, "net")
    finally:
        runner.stop()
        server.stop()

    assert st["source_state"] == "connected"
    assert st["reconnects"] >= 1
    assert st["restarts"] == 0  # the worker survived; only the connection was renewed
    frames = line_frames(store, "net")
    assert frames == sorted(set(frames))
    assert max(frames) > at_drop  # events keep coming after the stream returned


def test_live_source_reports_reconnect_and_resumes_numbering() -> None:
    server = MjpegServer().start()
    states: list[str] = []
    src = LiveSource(
        "net",
        server.url,
        backoff=Backoff(initial_s=0.1, max_s=0.5, jitter=0.0),
        on_status=lambda s: states.append(str(s.state)),
        read_timeout_s=2.0,
    )
    indices = []
    try:
        for frame in src:
            indices.append(frame.index)
            if len(indices) == 15:
                server.stop()
                threading.Timer(1.0, server.start).start()
            if len(indices) == 40:
                break
    finally:
        src.close()
        server.stop()
    assert indices == list(range(40))
    assert states[0] == SourceState.CONNECTED
    assert SourceState.RECONNECTING in states
    assert states[-1] == SourceState.CONNECTED
    assert src.status.reconnects == 1


class FlakyStore:
    """The real store, but the database 'goes away' for the first few event writes."""

    def __init__(self, inner: Store, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.failed = 0

    def record_events(self, events: list[Any], snapshots: Any = None) -> Any:
        if self.failed < self.failures:
            self.failed += 1
            raise OSError("database is unavailable")
        return self.inner.record_events(events, snapshots)

    def record_metrics(self, camera_id: str, ts_s: float, metrics: dict[str, float]) -> Any:
        return self.inner.record_metrics(camera_id, ts_s, metrics)


def test_failed_store_writes_are_retried_and_nothing_is_dropped(
    tmp_path: Path, store: Store
) -> None:
    n = 120
    video = write_video(tmp_path / "cam.mp4", n)
    flaky = FlakyStore(store, failures=4)
    runner = LocalRunner(flaky, tick_settings(realtime=False))
    runner.start()
    try:
        runner.add_camera(Camera(id="cam", name="cam", source=str(video), loop=False))
        wait_for(lambda: status(runner, "cam").get("state") == "finished", what="finish")
        st = status(runner, "cam")
    finally:
        runner.stop()
    assert flaky.failed == 4
    assert st["restarts"] == 0
    assert line_frames(store, "cam") == list(range(0, n, LINE_EVERY))
