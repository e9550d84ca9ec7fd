"""Run many cameras on one machine: one worker process per camera, supervised.

`LocalRunner` starts a worker process (``multiprocessing``, spawn context) per camera, each
running `crowdsight.pipeline.worker.CameraWorker`. A single *collector* thread in the parent
owns every worker: it reads their reports, commits events and metrics to the store, keeps the
latest live JPEG and status per camera, and runs the watchdog.

Why a pipe per worker and not one shared ``multiprocessing.Queue``: ``Queue.put`` returns
before the data is written (a feeder thread writes it later), so a worker killed with
``kill -9`` silently loses what it had "sent"; and a writer killed while holding the queue's
shared lock blocks every other writer forever. ``Connection.send`` on a pipe returns only once
the bytes are in the kernel's pipe buffer, which outlives the writer; the parent still reads
them, then sees end-of-file — the death of that worker alone.

Delivery guarantee (within one runner session):
- A report is committed (``Store.record_events``, which also queues the outbox rows in the same
  transaction) *before* the camera's checkpoint moves to the report's ``last_index``.
- A worker that dies (crash, ``kill -9``, watchdog kill) is restarted with back-off. For
  replayable sources (files, folders) it resumes at ``checkpoint + 1``: frames whose reports
  were cut off are processed again and raise the same stable event ids, so the store's upsert
  makes the replay exact — nothing the worker raised is lost, nothing is duplicated. For live
  sources (streams, webcams) the numbering continues; frames that arrived while the worker was
  down are not seen by anyone (the downtime is reported as restarts), and everything the dead
  worker had sent is committed.
- Duration events left open by a dead or stopped worker are closed at the last committed
  frame time (a restarted pipeline cannot close what it never saw open).
- Across a restart of the whole service, a new session starts: live sources continue, files
  play from the beginning, and ids from the new session never overwrite the old ones.

Example:
    >>> runner = LocalRunner(store, RunnerSettings())  # doctest: +SKIP
    >>> runner.start(); runner.add_camera(camera)       # doctest: +SKIP
    >>> runner.cameras_status()["entrance"]["state"]    # doctest: +SKIP
    'running'
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import pickle
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from multiprocessing.context import ForkServerContext, SpawnContext
from typing import Any, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field

from crowdsight.core.errors import ConfigError, CrowdsightError
from crowdsight.core.events import Event, event_from_dict
from crowdsight.pipeline.settings import PipelineSettings, live_defaults
from crowdsight.pipeline.worker import CameraWorker, WorkerReport, WorkerSpec, run_worker
from crowdsight.sources.stream import Backoff, StopFlag, is_replayable

log = logging.getLogger(__name__)


class StoreLike(Protocol):
    """The part of `crowdsight.store.Store` the runner writes to."""

    def record_events(
        self, events: list[Event], snapshots: dict[str, bytes] | None = None
    ) -> Any: ...

    def record_metrics(self, camera_id: str, ts_s: float, metrics: dict[str, float]) -> Any: ...


class CameraLike(Protocol):
    """A camera record (`crowdsight.store.records.Camera` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def loop(self) -> bool: ...


class RunnerSettings(BaseModel):
    """How the local runner runs and supervises camera workers."""

    model_config = ConfigDict(extra="forbid")

    realtime: bool = Field(
        True,
        description="Play video files and folders at their frame rate, stamped with the wall "
        "clock, like cameras. Off: as fast as possible with video time (tests, batch).",
    )
    pipeline: PipelineSettings = Field(
        default_factory=live_defaults,
        description="Pipeline stages for every camera; a camera's detect_every and "
        "density_every_s override the cadences.",
    )
    start_method: Literal["spawn", "forkserver"] = Field(
        "spawn",
        description="How worker processes start: 'spawn' (a fresh interpreter each time; "
        "safest) or 'forkserver' (forked from a clean server process that pre-imported the "
        "pipeline; restarts in a fraction of the time). The server is started once per "
        "process, so later changes to environment variables do not reach its workers.",
    )
    drop_late: bool = Field(
        True,
        description="When a camera's pipeline is slower than the camera, skip the frames it "
        "cannot keep up with (newest frame first) instead of falling ever further behind.",
    )
    folder_fps: float = Field(
        10.0, gt=0, description="Frame rate at which folders of frames are played."
    )
    pipeline_factory: str | None = Field(
        None,
        description="Advanced: 'module:callable' building each camera's pipeline instead of "
        "the standard one, e.g. 'crowdsight.pipeline.worker:tick_pipeline' (model-free "
        "events from a fixed rule, for smoke tests).",
    )
    stuck_after_s: float = Field(
        30.0, gt=0, description="A worker without a heartbeat for this long is killed."
    )
    startup_grace_s: float = Field(
        120.0, gt=0, description="Heartbeat allowance while a worker loads its models."
    )
    restart_initial_s: float = Field(
        1.0, ge=0, description="Wait before restarting a worker that died (doubles per crash)."
    )
    restart_max_s: float = Field(60.0, ge=0, description="Longest wait between restarts.")
    stable_after_s: float = Field(
        60.0, gt=0, description="A worker alive this long resets the crash back-off."
    )
    stop_timeout_s: float = Field(
        10.0, gt=0, description="On shutdown, workers get this long to finish before a kill."
    )
    reconnect_initial_s: float = Field(
        0.5, gt=0, description="First wait before reconnecting a lost stream."
    )
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnects.")
    jpeg_every_s: float = Field(
        0.5, ge=0, description="Seconds between live (redacted) JPEGs per camera; 0: none."
    )
    store_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between retries of a failed database write."
    )
    descriptions_every_s: float = Field(
        2.0, ge=0, description="Seconds between stored track descriptions per camera; 0: none."
    )
    snapshots: bool = Field(True, description="Store a redacted JPEG with each new event.")
    metrics_every_s: float = Field(
        1.0, ge=0, description="Seconds between stored metric samples per camera."
    )


# --------------------------------------------------------------------------- worker handles
class ProcessLike(Protocol):
    """A running worker (a `multiprocessing.Process`, or a Ray actor behind an adapter)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class ConnLike(Protocol):
    """The runner's end of a worker's report channel (a pipe's read end, or an adapter)."""

    def recv(self) -> Any: ...

    def poll(self, timeout: float | None = 0.0) -> bool: ...

    def close(self) -> None: ...


class HeartbeatLike(Protocol):
    """The worker's latest heartbeat (`time.monotonic` of the parent's clock)."""

    @property
    def value(self) -> float: ...


# --------------------------------------------------------------------------- camera state
@dataclass
class _Camera:
    """Everything the collector knows about one camera (owned by the collector thread)."""

    spec: WorkerSpec
    replayable: bool
    state: str = "starting"
    process: ProcessLike | None = None
    conn: ConnLike | None = None
    stop: StopFlag | None = None
    heartbeat: HeartbeatLike | None = None
    started_at: float = 0.0
    last_rx: float = 0.0
    died_at: float | None = None
    next_start: float = 0.0
    restarts: int = 0
    crash_streak: int = 0
    checkpoint: int | None = None
    last_ts: float | None = None
    fps: float = 0.0
    source: dict[str, Any] | None = None
    live_metrics: dict[str, float] = field(default_factory=dict)
    jpeg: bytes | None = None
    error: str | None = None
    pipeline_errors: int = 0
    done: bool = False
    warm: bool = False  # the current worker process has reported at least once
    removing: bool = False
    restart_requested: bool = False
    events_committed: int = 0
    open_events: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Command:
    verb: str  # "add" | "remove" | "restart"
    camera_id: str
    spec: WorkerSpec | None = None


def spec_for(camera: CameraLike, settings: RunnerSettings, salt: str) -> WorkerSpec:
    """The worker spec of a camera record under the runner's settings."""
    overrides: dict[str, Any] = {}
    for name in ("detect_every", "density_every_s"):
        value = getattr(camera, name, None)
        if value is not None:
            overrides[name] = value
    pipeline = settings.pipeline.model_copy(update=overrides)
    scene = getattr(camera, "scene", None)
    if scene is not None and hasattr(scene, "model_dump"):
        scene = scene.model_dump(mode="json")
    scene = scene or None  # an empty scene means counts and density only
    return WorkerSpec(
        camera_id=camera.id,
        source=str(camera.source),
        loop=bool(camera.loop),
        realtime=settings.realtime,
        drop_late=settings.drop_late,
        settings=pipeline,
        scene=scene,
        pipeline_factory=settings.pipeline_factory,
        id_salt=salt,
        jpeg_every_s=settings.jpeg_every_s,
        descriptions_every_s=settings.descriptions_every_s,
        folder_fps=settings.folder_fps,
        snapshots=settings.snapshots,
        metrics_every_s=settings.metrics_every_s,
        backoff=Backoff(initial_s=settings.reconnect_initial_s, max_s=settings.reconnect_max_s),
    )


class LocalRunner:
    """Runs and supervises one worker process per camera, writing results to the store.

    Args:
        store: Where events and metrics are committed (`crowdsight.store.Store`).
        settings: Supervision and pipeline settings.
        on_report: Optional hook called (in the collector thread) after each report is
            committed, e.g. to push live updates.
    """

    def __init__(
        self,
        store: StoreLike,
        settings: RunnerSettings | None = None,
        *,
        on_report: Callable[[WorkerReport], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or RunnerSettings()
        self.on_report = on_report
        self._ctx: SpawnContext | ForkServerContext = (
            mp.get_context("forkserver")
            if self.settings.start_method == "forkserver"
            else mp.get_context("spawn")
        )
        if isinstance(self._ctx, ForkServerContext):
            # Workers fork from a server that has imported the pipeline once: a restart
            # skips the interpreter start-up and imports that dominate a spawn.
            self._ctx.set_forkserver_preload(["crowdsight.pipeline.worker"])
        self._lock = threading.RLock()
        self._rng = random.Random()
        self.reset()

    def reset(self) -> None:
        """Forget every camera (only while stopped) and start a new session."""
        self.session = uuid.uuid4().hex[:12]
        self._generation = itertools.count(1)  # next() is atomic: add_camera is thread-safe
        self._cameras: dict[str, _Camera] = {}
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Start the collector thread (and every camera added so far)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._collect, name="crowdsight-runner")
        self._thread.start()

    def stop(self) -> None:
        """Stop every worker, drain their reports into the store, and return."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join()
        self._thread = None
        flush = getattr(self.store, "flush", None)
        if callable(flush):
            flush()

    def add_camera(self, camera: CameraLike) -> None:
        """Run ``camera`` (replacing a camera with the same id)."""
        if getattr(camera, "enabled", True) is False:
            self.remove_camera(camera.id)
            return
        # A fresh salt per (re)configuration: a re-added camera never reuses old event ids,
        # while restarts of its worker (same spec) replay into the same ids.
        spec = spec_for(camera, self.settings, f"{self.session}:{next(self._generation)}")
        self._commands.put(_Command("add", camera.id, spec))

    def remove_camera(self, camera_id: str) -> None:
        """Stop the camera's worker and forget it."""
        self._commands.put(_Command("remove", camera_id))

    def restart_camera(self, camera_id: str) -> None:
        """Stop the camera's worker cleanly and start it again."""
        self._commands.put(_Command("restart", camera_id))

    def camera_ids(self) -> list[str]:
        """Ids of the cameras the runner runs."""
        with self._lock:
            return list(self._cameras)

    def cameras_status(self) -> dict[str, dict[str, Any]]:
        """Live status per camera: state, fps, last frame time, restarts, counts."""
        with self._lock:
            return {cid: self._status(cam) for cid, cam in self._cameras.items()}

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The camera's latest annotated, redacted JPEG (None before the first one)."""
        with self._lock:
            cam = self._cameras.get(camera_id)
            return cam.jpeg if cam is not None else None

    def latest_jpeg_redacted(self, camera_id: str) -> bool:
        """Always True: workers only ever produce redacted images (they fail closed)."""
        return True

    def kill_worker(self, camera_id: str) -> int | None:
        """Kill the camera's worker with SIGKILL (fault injection for tests/benchmarks).

        Returns:
            The pid that was killed, or None when no worker was running.
        """
        with self._lock:
            cam = self._cameras.get(camera_id)
            proc = cam.process if cam is not None else None
        if proc is None or not proc.is_alive():
            return None
        proc.kill()
        return proc.pid

    def worker_pid(self, camera_id: str) -> int | None:
        """The pid of the camera's worker process (None when none is running)."""
        with self._lock:
            cam = self._cameras.get(camera_id)
            proc = cam.process if cam is not None else None
            return proc.pid if proc is not None and proc.is_alive() else None

    @staticmethod
    def _status(cam: _Camera) -> dict[str, Any]:
        source = cam.source or {}
        return {
            "state": cam.state,
            "source_state": source.get("state"),
            "fps": round(cam.fps, 2),
            "last_frame_ts": cam.last_ts,
            "last_frame_index": cam.checkpoint,
            "restarts": cam.restarts,
            "reconnects": source.get("reconnects", 0),
            "corrupt_frames": source.get("corrupt_frames", 0),
            "dropped_frames": source.get("dropped_frames", 0),
            "pipeline_errors": cam.pipeline_errors,
            "events_committed": cam.events_committed,
            "error": cam.error or source.get("last_error"),
            "counts": dict(cam.live_metrics),
        }

    # ------------------------------------------------------------------ collector thread
    def _collect(self) -> None:
        try:
            while True:
                self._apply_commands()
                if self._stopping.is_set():
                    self._shutdown()
                    return
                self._read_reports(0.1)
                with self._lock:
                    self._watchdog()
        except Exception:
            log.exception("runner collector failed; stopping every worker")
            self._shutdown()
            raise

    def _apply_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            if cmd.verb == "add" and cmd.spec is not None:
                with self._lock:
                    old = self._cameras.pop(cmd.camera_id, None)
                if old is not None:
                    self._retire(old)  # without the lock: status calls must not wait for it
                with self._lock:
                    self._cameras[cmd.camera_id] = _Camera(cmd.spec, is_replayable(cmd.spec.source))
                continue
            with self._lock:
                cam = self._cameras.get(cmd.camera_id)
                if cam is not None and cmd.verb == "remove":
                    cam.removing = True
                    self._request_stop(cam)
                elif cam is not None and cmd.verb == "restart":
                    if cam.process is None:
                        cam.state, cam.next_start = "restarting", 0.0
                    else:
                        cam.restart_requested = True
                        self._request_stop(cam)

    def _retire(self, cam: _Camera) -> None:
        """A replaced camera: stop its worker now, committing what it still sends."""
        self._request_stop(cam)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        while cam.conn is not None and time.monotonic() < deadline:
            if cam.conn.poll(0.1):
                self._read_one(cam)
            elif cam.process is not None and not cam.process.is_alive():
                break
        if cam.process is not None:
            if cam.process.is_alive():
                cam.process.kill()
            cam.process.join()
        while cam.conn is not None:
            self._read_one(cam)
        self._close_open_events(cam)

    @staticmethod
    def _request_stop(cam: _Camera) -> None:
        if cam.stop is not None:
            cam.stop.set()
        if cam.process is None:
            cam.state = "stopping"

    def _read_reports(self, timeout_s: float) -> None:
        by_conn = {id(c.conn): c for c in self._cameras.values() if c.conn is not None}
        conns = [c.conn for c in self._cameras.values() if c.conn is not None]
        if not conns:
            time.sleep(timeout_s)
            return
        for conn in self._ready(conns, timeout_s):
            self._read_one(by_conn[id(conn)])

    def _ready(self, conns: list[ConnLike], timeout_s: float) -> list[ConnLike]:
        """The channels with a report (or end-of-file) to read, waiting up to ``timeout_s``."""
        return cast(list[ConnLike], wait(cast(list[Any], conns), timeout_s))

    def _read_one(self, cam: _Camera) -> None:
        """Receive one report, commit it (no lock held: the store may be slow), apply it."""
        assert cam.conn is not None
        try:
            report = cam.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError, AttributeError, ValueError):
            # EOF: the worker exited (or died); a torn message is the tail of a killed
            # worker and belongs to frames after the checkpoint, which a replay recovers.
            with self._lock:
                cam.conn.close()
                cam.conn = None
            return
        cam.last_rx = time.monotonic()
        self._persist(cam.spec.camera_id, report)
        with self._lock:
            self._apply(cam, report)
        if self.on_report is not None:
            self.on_report(report)

    def _persist(self, camera_id: str, report: WorkerReport) -> None:
        """Write a report's events, metrics and descriptions (events first: the outbox)."""
        if report.events:
            events = [event_from_dict(d) for d in report.events]
            self._retry(lambda: self.store.record_events(events, report.snapshots or None))
        if report.metrics and report.ts_s is not None:
            metrics, ts_s = report.metrics, report.ts_s
            self._retry(lambda: self.store.record_metrics(camera_id, ts_s, metrics))
        record_descriptions = getattr(self.store, "record_descriptions", None)
        if report.descriptions and callable(record_descriptions):
            try:
                self._retry(lambda: record_descriptions(camera_id, report.descriptions))
            except CrowdsightError as exc:  # a description the store refuses: skip it
                log.warning("camera %s: descriptions not stored: %s", camera_id, exc)

    def _retry(self, write: Callable[[], Any]) -> None:
        """Run a store write until it succeeds (database down or locked: wait and retry).

        Blocking here is deliberate back-pressure: workers block on their full pipes and
        nothing is dropped. Only during shutdown does it give up, after a few tries.
        """
        delay = 0.2
        for attempt in itertools.count(1):
            try:
                write()
                return
            except CrowdsightError:
                raise
            except Exception as exc:
                if self._stopping.is_set() and attempt >= 3:
                    log.error("store write failed during shutdown, giving up: %s", exc)
                    return
                log.warning("store write failed (attempt %d), retrying: %s", attempt, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.settings.store_retry_max_s)

    def _apply(self, cam: _Camera, report: WorkerReport) -> None:
        """Advance the camera's state with a committed report (checkpoint last)."""
        cam.events_committed += len(report.events)
        for d in report.events:
            if d.get("end_ts_s") is None:
                cam.open_events[d["event_id"]] = d
            else:
                cam.open_events.pop(d["event_id"], None)
        cam.warm = True
        cam.fps = report.fps
        cam.source = report.source or cam.source
        cam.pipeline_errors = report.pipeline_errors
        if report.live_metrics is not None:
            cam.live_metrics = report.live_metrics
        if report.jpeg is not None:
            cam.jpeg = report.jpeg
        if report.kind == "done":
            cam.done = True
        elif report.kind == "error":
            cam.error = report.error
        if cam.state in ("starting", "restarting", "failed") and report.last_index is not None:
            cam.state = "running"
        if report.last_index is not None:
            cam.checkpoint = report.last_index
            cam.last_ts = report.ts_s

    # ------------------------------------------------------------------ watchdog
    def _watchdog(self) -> None:
        now = time.monotonic()
        for cid, cam in list(self._cameras.items()):
            if cam.process is None:
                if cam.removing:
                    del self._cameras[cid]
                elif cam.state in ("starting", "restarting", "failed") and now >= cam.next_start:
                    self._spawn(cam)
                continue
            if cam.process.exitcode is None:
                self._check_heartbeat(cam, now)
                continue
            if cam.conn is not None:
                # Dead, but its last reports may still be in the pipe: drain first.
                cam.died_at = cam.died_at or now
                if now - cam.died_at < 2.0:
                    continue
                cam.conn.close()
                cam.conn = None
            self._reap(cam, now)
            if cam.removing:
                del self._cameras[cid]

    def _check_heartbeat(self, cam: _Camera, now: float) -> None:
        assert cam.heartbeat is not None and cam.process is not None
        # Until its first report a worker is importing and loading models: allow for it.
        grace = 0.0 if cam.warm else self.settings.startup_grace_s
        # A worker blocked on a full pipe (the store was slow) is not stuck: count receipts too.
        silent = now - max(cam.heartbeat.value, cam.started_at, cam.last_rx)
        if silent > self.settings.stuck_after_s + grace:
            log.warning(
                "camera %s: no heartbeat for %.0f s, killing worker", cam.spec.camera_id, silent
            )
            cam.error = f"stuck: no heartbeat for {silent:.0f} s"
            cam.process.kill()

    def _reap(self, cam: _Camera, now: float) -> None:
        """A worker process ended: decide between finished, stopped and restart."""
        assert cam.process is not None
        cam.process.join()
        code = cam.process.exitcode
        cam.process, cam.stop, cam.heartbeat, cam.died_at = None, None, None, None
        self._close_open_events(cam)
        clean = cam.done and code == 0
        if cam.removing or self._stopping.is_set():
            cam.state = "stopped"
            return
        if cam.restart_requested:
            cam.restart_requested, cam.done = False, False
            cam.restarts += 1
            cam.state, cam.next_start = "restarting", now
            return
        if clean:
            cam.state = "finished"
            return
        cam.restarts += 1
        cam.done = False
        if now - cam.started_at > self.settings.stable_after_s:
            cam.crash_streak = 0
        delay = min(
            self.settings.restart_max_s,
            self.settings.restart_initial_s * 2.0**cam.crash_streak,
        ) * self._rng.uniform(0.8, 1.2)
        cam.crash_streak += 1
        cam.error = cam.error or f"worker exited with code {code}"
        # Five crashes in a row without a stable run: show "failed" (it keeps retrying).
        cam.state = "failed" if cam.crash_streak >= 5 else "restarting"
        cam.next_start = now + delay
        log.warning(
            "camera %s: worker died (exit %s); restart %d in %.1f s",
            cam.spec.camera_id,
            code,
            cam.restarts,
            delay,
        )

    def _spawn(self, cam: _Camera) -> None:
        resume = 0 if cam.checkpoint is None else cam.checkpoint + 1
        spec = (
            replace(cam.spec, start_index=0, skip_to=resume or None)
            if cam.replayable
            else replace(cam.spec, start_index=resume, skip_to=None)
        )
        cam.process, cam.conn, cam.stop, cam.heartbeat = self._launch(spec)
        cam.started_at = time.monotonic()
        cam.done = cam.warm = False

    def _launch(self, spec: WorkerSpec) -> tuple[ProcessLike, ConnLike, StopFlag, HeartbeatLike]:
        """Start a worker process for ``spec``: (process, report channel, stop, heartbeat)."""
        recv_conn, send_conn = self._ctx.Pipe(duplex=False)
        stop = self._ctx.Event()
        heartbeat = self._ctx.Value("d", time.monotonic())
        proc = self._ctx.Process(
            target=run_worker,
            args=(spec, send_conn, stop, heartbeat),
            name=f"crowdsight-camera-{spec.camera_id}",
            daemon=True,
        )
        proc.start()
        send_conn.close()  # the parent keeps only the read end, so it sees EOF on death
        return proc, recv_conn, stop, heartbeat

    def _close_open_events(self, cam: _Camera) -> None:
        """Close duration events the worker left open, at the last committed frame time."""
        if not cam.open_events:
            return
        end = cam.last_ts
        closed = [
            event_from_dict({**d, "end_ts_s": end if end is not None else d["start_ts_s"]})
            for d in cam.open_events.values()
        ]
        self._retry(lambda: self.store.record_events(closed, None))
        cam.open_events.clear()

    # ------------------------------------------------------------------ shutdown
    def _shutdown(self) -> None:
        """Stop every worker, read what they still send, then kill stragglers."""
        with self._lock:
            cams = list(self._cameras.values())
            for cam in cams:
                self._request_stop(cam)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        while time.monotonic() < deadline and any(
            c.conn is not None or (c.process is not None and c.process.is_alive()) for c in cams
        ):
            self._read_reports(0.1)
            with self._lock:
                for cam in cams:
                    if cam.conn is None and cam.process is not None and not cam.process.is_alive():
                        self._reap(cam, time.monotonic())
        with self._lock:
            for cam in cams:
                if cam.process is not None:
                    log.warning("camera %s: worker did not stop, killing it", cam.spec.camera_id)
                    cam.process.kill()
                    cam.process.join()
                    while cam.conn is not None:
                        self._read_one(cam)
                    self._reap(cam, time.monotonic())


# --------------------------------------------------------------------------- Ray
class CameraActor:
    """A `CameraWorker` running inside a Ray actor, buffering its reports for the runner.

    The worker runs in a thread of the actor; the runner pulls reports with `drain`. The
    actor keeps no state the runner needs after a crash: a replacement actor resumes after
    the runner's checkpoint, exactly as a restarted worker process does.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self._reports: deque[WorkerReport] = deque()
        self._stop = threading.Event()
        self._beat = time.monotonic()
        self._exitcode: int | None = None
        self._thread = threading.Thread(target=self._run, args=(spec,), daemon=True)
        self._thread.start()

    def _mark(self) -> None:
        self._beat = time.monotonic()

    def _run(self, spec: WorkerSpec) -> None:
        worker = CameraWorker(spec, self._reports.append, self._stop, self._mark)
        try:
            worker.run()
        except Exception as exc:
            log.exception("camera %s: worker failed", spec.camera_id)
            worker.report("error", error=f"{exc.__class__.__name__}: {exc}")
            self._exitcode = 1
        else:
            self._exitcode = 0

    def drain(self) -> tuple[list[WorkerReport], float, int | None]:
        """(reports since the last call, seconds since the last heartbeat, exit code or None).

        The exit code is read *before* draining, so it is only returned together with (or
        after) the worker's last report.
        """
        code = self._exitcode
        out = []
        while self._reports:
            out.append(self._reports.popleft())
        return out, time.monotonic() - self._beat, code

    def stop(self) -> None:
        """Ask the worker to stop after its current frame."""
        self._stop.set()

    def pid(self) -> int:
        """The actor's process id."""
        return os.getpid()


class _ActorWorker:
    """Makes a Ray actor look like a worker process + pipe + stop flag + heartbeat."""

    def __init__(self, actor: Any) -> None:
        import ray

        self._ray = ray
        self.actor = actor
        self._pid: int | None = ray.get(actor.pid.remote())
        self._buffer: deque[WorkerReport] = deque()
        self._pending: Any = None
        self._exitcode: int | None = None
        self._eof = False
        self._stop_requested = False
        self._beat = time.monotonic()

    def pump(self) -> None:
        """Fetch reports without blocking (one drain call in flight at a time)."""
        if self._eof:
            return
        if self._pending is None:
            self._pending = self.actor.drain.remote()
        ready, _ = self._ray.wait([self._pending], timeout=0)
        if not ready:
            return
        pending, self._pending = self._pending, None
        try:
            reports, age_s, code = self._ray.get(pending)
        except self._ray.exceptions.RayActorError:
            self._exitcode = -9 if self._exitcode is None else self._exitcode
            self._eof = True
            return
        self._buffer.extend(reports)
        self._beat = time.monotonic() - age_s
        if code is not None:
            self._exitcode, self._eof = code, True

    # ConnLike
    def poll(self, timeout: float | None = 0.0) -> bool:
        end = time.monotonic() + (timeout or 0.0)
        while True:
            self.pump()
            if self._buffer or self._eof:
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)

    def recv(self) -> WorkerReport:
        if self._buffer:
            return self._buffer.popleft()
        raise EOFError("actor finished")

    def close(self) -> None:
        """Nothing to close: the actor is released in `join`."""

    # ProcessLike
    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exitcode(self) -> int | None:
        return self._exitcode if self._eof else None

    def is_alive(self) -> bool:
        return not self._eof

    def kill(self) -> None:
        self._ray.kill(self.actor, no_restart=True)

    def join(self, timeout: float | None = None) -> None:
        if self._exitcode == 0:
            self._ray.kill(self.actor, no_restart=True)  # finished: free its resources

    # HeartbeatLike
    @property
    def value(self) -> float:
        return self._beat

    # StopFlag
    def set(self) -> None:
        self._stop_requested = True
        self.actor.stop.remote()

    def is_set(self) -> bool:
        return self._stop_requested

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop_requested


class RayRunner(LocalRunner):
    """`LocalRunner`'s supervision with each camera's worker in a Ray actor (``pip install
    crowdsight[ray]``): cameras spread over a Ray cluster, events go to one central store.

    Everything else — stable ids, checkpoints and resume, watchdog, restart back-off, the
    outbox order — is the local runner's. One difference in guarantees: reports wait in the
    actor's memory until the runner pulls them (every ~20 ms), so when an actor's *node* dies,
    the reports of that window are lost for live sources (replayable sources replay them).

    Args:
        store: Where events and metrics are committed.
        settings: As for `LocalRunner`.
        address: Ray cluster address (None: connect to or start a local Ray).
        num_cpus: CPUs Ray reserves per camera actor.
    """

    def __init__(
        self,
        store: StoreLike,
        settings: RunnerSettings | None = None,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        on_report: Callable[[WorkerReport], None] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("RayRunner needs Ray: pip install 'crowdsight[ray]'") from exc
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._actor_cls = ray.remote(num_cpus=num_cpus, max_restarts=0)(CameraActor)
        super().__init__(store, settings, on_report=on_report)

    def _launch(self, spec: WorkerSpec) -> tuple[ProcessLike, ConnLike, StopFlag, HeartbeatLike]:
        handle = _ActorWorker(self._actor_cls.remote(spec))
        return handle, handle, handle, handle

    def _ready(self, conns: list[ConnLike], timeout_s: float) -> list[ConnLike]:
        end = time.monotonic() + timeout_s
        while True:
            ready = [c for c in conns if c.poll()]
            if ready or time.monotonic() >= end:
                return ready
            time.sleep(0.02)
