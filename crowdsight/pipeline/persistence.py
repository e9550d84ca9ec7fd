"""Report persistence: commit what camera workers report to the store, retrying until it holds.

The runner's collector hands every `WorkerReport` to a `ReportWriter`. Events go first (the
store queues their outbox rows in the same transaction), then metrics, then track
descriptions. A failed write (database down or locked) is retried with the shared `Backoff`
and blocks the collector: that is deliberate back-pressure — workers block on their full
pipes and nothing is dropped. Only during shutdown does it give up, after a few tries.

Example:
    >>> writer = ReportWriter(store, retry_max_s=30.0, stopping=threading.Event())  # doctest: +SKIP
    >>> writer.persist("entrance", report)                                          # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from crowdsight.core.backoff import Backoff
from crowdsight.core.errors import CrowdsightError, is_disk_full
from crowdsight.core.events import Event, OpenEvents
from crowdsight.pipeline.worker import WorkerReport

log = logging.getLogger(__name__)

#: Store writes retried during shutdown before giving up.
SHUTDOWN_TRIES = 3
#: Failed tries of one write before health reports it (a locked database clears sooner);
#: a full disk is reported at once.
REPORT_AFTER_TRIES = 3


class StoreLike(Protocol):
    """The part of `crowdsight.store.Store` the runner writes to."""

    def record_events(
        self, events: list[Event], snapshots: dict[str, bytes] | None = None
    ) -> Any: ...

    def record_metrics(self, camera_id: str, ts_s: float, metrics: dict[str, float]) -> Any: ...


def is_permanent_store_error(exc: BaseException) -> bool:
    """Whether retrying a failed store write is pointless.

    Connection trouble, timeouts and "database is locked" (SQLAlchemy ``OperationalError``,
    ``InterfaceError``, pool ``TimeoutError``) pass; any other database error (a corrupt file,
    a constraint the row breaks) fails the same way every time.
    """
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.OperationalError | sa.InterfaceError | sa.TimeoutError):
        return False
    return isinstance(exc, sa.SQLAlchemyError)


class ReportWriter:
    """Writes worker reports (and closures of events left open) to the store.

    Args:
        store: Where events, metrics and descriptions are committed.
        retry_max_s: Longest wait between retries of a failed write (from 0.2 s, doubling).
        stopping: Set while the runner shuts down; writes then give up after a few tries.
        sleep: How to wait between retries (tests pass a fake clock).
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        retry_max_s: float,
        stopping: threading.Event,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.backoff = Backoff(initial_s=0.2, max_s=retry_max_s, jitter=0.0)
        self.stopping = stopping
        self._sleep = sleep
        #: Set when a write failed for good (e.g. a corrupt SQLite file); health shows it.
        self.store_error: str | None = None
        #: Set while a write keeps failing and is being retried (the disk is full, the
        #: database server is down); cleared when it succeeds. Health shows it too.
        self.retrying: str | None = None

    def persist(self, camera_id: str, report: WorkerReport) -> None:
        """Write a report's events, metrics and descriptions (events first: the outbox).

        The report's events must already carry their stable ids (`OpenEvents.assign`).
        """
        if report.events:
            events = report.events
            self.retry(lambda: self.store.record_events(events, report.snapshots or None))
        if report.metrics and report.ts_s is not None:
            metrics, ts_s = report.metrics.to_rows(), report.ts_s  # stored as flat rows
            self.retry(lambda: self.store.record_metrics(camera_id, ts_s, metrics))
        record_descriptions = getattr(self.store, "record_descriptions", None)
        if report.descriptions and callable(record_descriptions):
            try:
                self.retry(lambda: record_descriptions(camera_id, report.descriptions))
            except CrowdsightError as exc:  # a description the store refuses: skip it
                log.warning("camera %s: descriptions not stored: %s", camera_id, exc)

    def close_events(self, ledger: OpenEvents, end_ts_s: float | None) -> None:
        """Close the events a worker left open at ``end_ts_s`` (its last committed frame).

        Without a committed frame time, each event is closed at its own start. The ledger is
        emptied: a restarted worker cannot close what it never saw open.
        """
        closed = ledger.close_all(end_ts_s)
        if closed:
            self.retry(lambda: self.store.record_events(closed, None))

    def retry(self, write: Callable[[], Any]) -> None:
        """Run a store write until it succeeds (database down or locked: wait and retry).

        A `CrowdsightError` (the store refuses the data) is raised at once: retrying would
        not change the answer.
        """
        for attempt in itertools.count(1):
            try:
                write()
                self.retrying = None
                return
            except CrowdsightError:
                raise
            except Exception as exc:
                self._report_retrying(exc, attempt)
                if self.stopping.is_set() and attempt >= SHUTDOWN_TRIES:
                    log.error("store write failed during shutdown, giving up: %s", exc)
                    return
                if is_permanent_store_error(exc) and attempt >= SHUTDOWN_TRIES:
                    # A corrupt file or a refused row does not heal by waiting: say so (health
                    # reports it) and drop this write instead of blocking the runner forever.
                    self.store_error = (
                        f"store write failed permanently: {_first_line(exc)}; that write was "
                        "dropped. "
                        "Check the database (a damaged SQLite file: stop crowdsight, move the "
                        "file aside and restore a backup)"
                    )
                    log.error("%s", self.store_error)
                    return
                log.warning("store write failed (attempt %d), retrying: %s", attempt, exc)
                self._sleep(self.backoff.delay_s(attempt - 1))

    def _report_retrying(self, exc: BaseException, attempt: int) -> None:
        """Say in `retrying` why writes are waiting, once it is worth an operator's look."""
        full = is_disk_full(exc)
        if not full and attempt < REPORT_AFTER_TRIES:
            return
        why = (
            "the disk holding the database or the snapshots is full: free space there"
            if full
            else "the database does not take writes"
        )
        self.retrying = (
            f"store writes failing ({attempt} tries): {why}; nothing is dropped, cameras wait "
            f"and the write is retried ({_first_line(exc)})"
        )


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), or its class name."""
    text = str(exc)
    return text.splitlines()[0][:300] if text else exc.__class__.__name__
