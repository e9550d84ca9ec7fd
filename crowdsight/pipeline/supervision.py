"""Process supervision: what the runner knows about each camera's worker, and its policies.

A `CameraState` is the collector thread's record of one camera (its worker handles,
checkpoint, counters, and its `OpenEvents` ledger: stable ids and what a dead worker left
open). The functions here are the supervisor's decisions on
that record, kept free of threads and stores so they read (and test) as a state machine:

- `check_heartbeat`: kill a worker that went silent for longer than allowed;
- `after_exit`: a worker ended — finished, stopped, restart now (asked for) or restart after
  a capped, jittered exponential back-off (crashed; the shared `Backoff`);
- `resume_spec`: where a (re)started worker begins — replayable sources replay from the
  checkpoint, live sources continue the numbering;
- `launch_process`: start a worker process with its pipe, stop event and heartbeat.

States: ``starting`` → ``running`` → (``restarting`` | ``failed``)* → ``finished`` |
``stopped``; ``failed`` is ``restarting`` after five crashes in a row without a stable run.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field, replace
from multiprocessing.context import ForkServerContext, SpawnContext
from typing import Any, Protocol

from crowdsight.config.runner import RunnerSettings
from crowdsight.core.backoff import Backoff
from crowdsight.core.events import OpenEvents
from crowdsight.core.metrics import SceneMetrics
from crowdsight.pipeline.worker import LiveFrame, WorkerReport, WorkerSpec, run_worker
from crowdsight.sources.policy import redact_source
from crowdsight.sources.stream import StopFlag

log = logging.getLogger(__name__)

#: Crashes in a row (without a stable run) after which a camera shows ``failed``.
FAILED_AFTER_CRASHES = 5


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


#: (process, report channel, stop flag, heartbeat) of one started worker.
WorkerHandles = tuple[ProcessLike, ConnLike, StopFlag, HeartbeatLike]


@dataclass
class CameraState:
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
    live_metrics: SceneMetrics = field(default_factory=SceneMetrics)
    jpeg: bytes | None = None
    live_frame: LiveFrame | None = None  # which frame ``jpeg`` shows, its boxes
    error: str | None = None
    pipeline_errors: int = 0
    done: bool = False
    warm: bool = False  # the current worker process has reported at least once
    removing: bool = False
    restart_requested: bool = False
    events_committed: int = 0
    warnings: list[str] = field(default_factory=list)
    ledger: OpenEvents = field(init=False)

    def __post_init__(self) -> None:
        # One ledger per camera configuration: its salt is the spec's, so a re-added camera
        # never reuses old ids while restarts of its worker replay into the same ones.
        self.ledger = OpenEvents(self.spec.camera_id, self.spec.id_salt)

    def health(self) -> tuple[str, str | None]:
        """(state, error) as the operator should see them.

        A worker that is up but whose source keeps failing (a missing file, a camera that
        refuses the connection) is in ``error`` with the source's reason and the retry it is
        on, not "starting" forever: the source retries with back-off meanwhile and the state
        returns to ``running`` with the next frame.
        """
        source = self.source or {}
        reason = source.get("last_error")
        failing = source.get("state") in ("reconnecting", "failed") and reason
        if not failing or self.state not in ("starting", "restarting", "running"):
            return self.state, self.error or reason
        if source.get("state") == "failed":
            return "error", f"{reason}; gave up retrying"
        return "error", f"{reason}; retrying with back-off (attempt {source.get('attempt', 1)})"

    def status(self) -> dict[str, Any]:
        """Live status: state, fps, last frame time, restarts, metrics (JSON-ready)."""
        source = self.source or {}
        state, error = self.health()  # the reason may quote the URL: no password shown
        return {
            "state": state,
            "source_state": source.get("state"),
            "fps": round(self.fps, 2),
            "last_frame_ts": self.last_ts,
            "last_frame_index": self.checkpoint,
            "restarts": self.restarts,
            "reconnects": source.get("reconnects", 0),
            "corrupt_frames": source.get("corrupt_frames", 0),
            "dropped_frames": source.get("dropped_frames", 0),
            "pipeline_errors": self.pipeline_errors,
            "events_committed": self.events_committed,
            "error": redact_source(str(error)) if error else None,
            "warnings": list(self.warnings),
            "metrics": self.live_metrics.model_dump(mode="json"),
            "live_frame": live_frame_summary(self.live_frame),
        }

    def request_stop(self) -> None:
        """Ask the worker to stop after its current frame (or mark a camera without one)."""
        if self.stop is not None:
            self.stop.set()
        if self.process is None:
            self.state = "stopping"


def live_frame_summary(live: LiveFrame | None) -> dict[str, Any] | None:
    """The live picture's own figures for the status view (None before the first picture).

    The dashboard's "tracked" figure is the picture's: ``metrics`` are the latest frame's,
    which is usually a later frame than the one the live JPEG shows.
    """
    if live is None:
        return None
    return {
        "frame_index": live.frame_index,
        "ts_s": live.ts_s,
        "tracked": live.tracked,
        "detected": live.detected,
    }


def restart_backoff(settings: RunnerSettings) -> Backoff:
    """The crash back-off: ``restart_initial_s`` doubling to ``restart_max_s``, ±20 % jitter."""
    return Backoff(initial_s=settings.restart_initial_s, max_s=settings.restart_max_s, jitter=0.2)


def check_heartbeat(cam: CameraState, now: float, settings: RunnerSettings) -> None:
    """Kill the camera's worker when it has been silent for longer than allowed."""
    assert cam.heartbeat is not None and cam.process is not None
    # Until its first report a worker is importing and loading models: allow for it.
    grace = 0.0 if cam.warm else settings.startup_grace_s
    # A worker blocked on a full pipe (the store was slow) is not stuck: count receipts too.
    silent = now - max(cam.heartbeat.value, cam.started_at, cam.last_rx)
    if silent > settings.stuck_after_s + grace:
        log.warning(
            "camera %s: no heartbeat for %.0f s, killing worker", cam.spec.camera_id, silent
        )
        cam.error = f"stuck: no heartbeat for {silent:.0f} s"
        cam.process.kill()


def after_exit(
    cam: CameraState,
    code: int | None,
    now: float,
    settings: RunnerSettings,
    *,
    stopping: bool,
    rng: random.Random,
) -> None:
    """Decide what follows a worker's exit: stopped, finished, or a restart (when, and why)."""
    if cam.removing or stopping:
        cam.state = "stopped"
        return
    if cam.restart_requested:
        cam.restart_requested, cam.done = False, False
        cam.restarts += 1
        cam.state, cam.next_start = "restarting", now
        return
    if cam.done and code == 0:
        cam.state = "finished"
        return
    cam.restarts += 1
    cam.done = False
    if now - cam.started_at > settings.stable_after_s:
        cam.crash_streak = 0
    delay = restart_backoff(settings).delay_s(cam.crash_streak, rng)
    cam.crash_streak += 1
    cam.error = cam.error or f"worker exited with code {code}"
    # Five crashes in a row without a stable run: show "failed" (it keeps retrying).
    cam.state = "failed" if cam.crash_streak >= FAILED_AFTER_CRASHES else "restarting"
    cam.next_start = now + delay
    log.warning(
        "camera %s: worker died (exit %s); restart %d in %.1f s",
        cam.spec.camera_id,
        code,
        cam.restarts,
        delay,
    )


def resume_spec(cam: CameraState) -> WorkerSpec:
    """The spec a (re)started worker runs: replay after the checkpoint, or continue numbering."""
    resume = 0 if cam.checkpoint is None else cam.checkpoint + 1
    if cam.replayable:
        return replace(cam.spec, start_index=0, skip_to=resume or None)
    return replace(cam.spec, start_index=resume, skip_to=None)


def with_stable_ids(cam: CameraState, report: WorkerReport) -> WorkerReport:
    """The report with its events' stable ids from the camera's ledger (snapshots re-keyed).

    A report's events were all raised on its ``last_index`` frame (the worker reports each
    frame with events at once), which is what the ids are derived from.
    """
    if not report.events:
        return report
    assert report.last_index is not None, "a report with events names its frame"
    events = cam.ledger.assign(report.events, report.last_index)
    snapshots = {
        new.event_id: report.snapshots[old.event_id]
        for old, new in zip(report.events, events, strict=True)
        if old.event_id in report.snapshots
    }
    return replace(report, events=events, snapshots=snapshots)


def launch_process(ctx: SpawnContext | ForkServerContext, spec: WorkerSpec) -> WorkerHandles:
    """Start a worker process for ``spec``: (process, report channel, stop, heartbeat)."""
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    heartbeat = ctx.Value("d", time.monotonic())
    proc = ctx.Process(
        target=run_worker,
        args=(spec, send_conn, stop, heartbeat),
        name=f"crowdsight-camera-{spec.camera_id}",
        daemon=True,
    )
    proc.start()
    send_conn.close()  # the parent keeps only the read end, so it sees EOF on death
    return proc, recv_conn, stop, heartbeat
