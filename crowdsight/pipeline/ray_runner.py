"""The Ray adapter: each camera's worker in a Ray actor, supervised by the local runner's logic.

`RayRunner` is a `LocalRunner` whose `_launch` starts a `CameraActor` instead of a process;
`_ActorWorker` makes the actor look like what the supervisor expects of a worker (process,
report channel, stop flag, heartbeat), so stable ids, checkpoints, the watchdog and restart
back-off are the local runner's, unchanged. Needs ``pip install 'crowdsight[ray]'``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from crowdsight.config.runner import RunnerSettings
from crowdsight.core.errors import ConfigError
from crowdsight.pipeline.persistence import StoreLike
from crowdsight.pipeline.ray_connect import init_ray
from crowdsight.pipeline.runner import LocalRunner
from crowdsight.pipeline.supervision import ConnLike, HeartbeatLike, ProcessLike
from crowdsight.pipeline.worker import CameraWorker, WorkerReport, WorkerSpec
from crowdsight.sources.stream import StopFlag

log = logging.getLogger(__name__)


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
        init_ray(address)
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
