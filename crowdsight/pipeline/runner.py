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

The runner is split by concern: `crowdsight.pipeline.supervision` (camera state and the
restart/watchdog policies), `crowdsight.pipeline.persistence` (committing reports, with
retries), `crowdsight.pipeline.specs` (worker specs) and `crowdsight.pipeline.ray_runner`
(the same supervision over Ray actors). This module is the collector thread tying them.

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
import pickle
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.context import ForkServerContext, SpawnContext
from typing import Any, cast

from crowdsight.config.runner import RunnerSettings
from crowdsight.pipeline.persistence import ReportWriter, StoreLike
from crowdsight.pipeline.specs import CameraLike, spec_for
from crowdsight.pipeline.supervision import (
    CameraState,
    ConnLike,
    WorkerHandles,
    after_exit,
    check_heartbeat,
    launch_process,
    resume_spec,
    with_stable_ids,
)
from crowdsight.pipeline.worker import LiveFrame, WorkerReport, WorkerSpec
from crowdsight.sources.stream import is_replayable

__all__ = ["CameraLike", "LocalRunner", "StoreLike", "spec_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Command:
    verb: str  # "add" | "remove" | "restart"
    camera_id: str
    spec: WorkerSpec | None = None


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
        self._cameras: dict[str, CameraState] = {}
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.writer = ReportWriter(
            self.store, retry_max_s=self.settings.store_retry_max_s, stopping=self._stopping
        )

    @property
    def store_error(self) -> str | None:
        """Why store writes fail: for good, or for now while they are retried (a full disk).

        None while they succeed.
        """
        return self.writer.store_error or self.writer.retrying

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
        """Live status per camera: state, fps, last frame time, restarts, metrics."""
        with self._lock:
            return {cid: cam.status() for cid, cam in self._cameras.items()}

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The camera's latest annotated, redacted JPEG (None before the first one)."""
        with self._lock:
            cam = self._cameras.get(camera_id)
            return cam.jpeg if cam is not None else None

    def latest_live(self, camera_id: str) -> tuple[bytes, LiveFrame | None] | None:
        """The latest live JPEG with the frame it shows and its boxes (None before the first).

        Both are read under one lock, so the record always describes that very JPEG.
        """
        with self._lock:
            cam = self._cameras.get(camera_id)
            if cam is None or cam.jpeg is None:
                return None
            return cam.jpeg, cam.live_frame

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
                    self._cameras[cmd.camera_id] = CameraState(
                        cmd.spec, is_replayable(cmd.spec.source)
                    )
                continue
            with self._lock:
                cam = self._cameras.get(cmd.camera_id)
                if cam is not None and cmd.verb == "remove":
                    cam.removing = True
                    cam.request_stop()
                elif cam is not None and cmd.verb == "restart":
                    if cam.process is None:
                        cam.state, cam.next_start = "restarting", 0.0
                    else:
                        cam.restart_requested = True
                        cam.request_stop()

    def _retire(self, cam: CameraState) -> None:
        """A replaced camera: stop its worker now, committing what it still sends."""
        cam.request_stop()
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
        self.writer.close_events(cam.ledger, cam.last_ts)

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

    def _read_one(self, cam: CameraState) -> None:
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
        report = with_stable_ids(cam, report)
        self.writer.persist(cam.spec.camera_id, report)
        with self._lock:
            self._apply(cam, report)
        if self.on_report is not None:
            self.on_report(report)

    def _apply(self, cam: CameraState, report: WorkerReport) -> None:
        """Advance the camera's state with a committed report (checkpoint last)."""
        cam.events_committed += len(report.events)
        cam.warm = True
        cam.fps = report.fps
        cam.source = report.source or cam.source
        cam.pipeline_errors = report.pipeline_errors
        cam.warnings = list(report.warnings)
        if report.live_metrics is not None:
            cam.live_metrics = report.live_metrics
        if report.jpeg is not None:
            cam.jpeg, cam.live_frame = report.jpeg, report.live_frame
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
                check_heartbeat(cam, now, self.settings)
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

    def _reap(self, cam: CameraState, now: float) -> None:
        """A worker process ended: close its open events, then finished, stopped or restart."""
        assert cam.process is not None
        cam.process.join()
        code = cam.process.exitcode
        cam.process, cam.stop, cam.heartbeat, cam.died_at = None, None, None, None
        self.writer.close_events(cam.ledger, cam.last_ts)
        after_exit(cam, code, now, self.settings, stopping=self._stopping.is_set(), rng=self._rng)

    def _spawn(self, cam: CameraState) -> None:
        cam.process, cam.conn, cam.stop, cam.heartbeat = self._launch(resume_spec(cam))
        cam.started_at = time.monotonic()
        cam.done = cam.warm = False

    def _launch(self, spec: WorkerSpec) -> WorkerHandles:
        """Start a worker for ``spec`` (a process here; `RayRunner` starts an actor)."""
        return launch_process(self._ctx, spec)

    # ------------------------------------------------------------------ shutdown
    def _shutdown(self) -> None:
        """Stop every worker, read what they still send, then kill stragglers."""
        with self._lock:
            cams = list(self._cameras.values())
            for cam in cams:
                cam.request_stop()
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
