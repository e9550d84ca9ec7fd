"""Retention while serving: purge old rows and snapshot files on a schedule.

Runs once at start and then every ``retention_check_s`` in a daemon thread; each purge that
deleted anything is written to the audit log as the ``system`` user.
"""

from __future__ import annotations

import logging
import threading

from crowdsight.privacy.retention import PurgeReport, purge_older_than, purge_rows
from crowdsight.store import Store

log = logging.getLogger(__name__)


def purge_once(store: Store, days: float) -> tuple[PurgeReport, PurgeReport]:
    """Delete rows (events with their snapshots, metrics, descriptions) and orphan snapshot
    files older than ``days``; returns (rows report, files report)."""
    rows = purge_rows(days, store.delete_before)
    files = (
        purge_older_than(days, store.snapshot_dir)
        if store.snapshot_dir is not None
        else PurgeReport(0, 0, 0)
    )
    if rows.deleted or files.deleted:
        store.audit(
            "system",
            "retention.purge",
            f"older than {days:g} days: {rows.deleted} events, {files.deleted} snapshot files",
        )
    return rows, files


class RetentionWorker:
    """Calls `purge_once` now and every ``every_s`` seconds until `stop`."""

    def __init__(self, store: Store, days: float, every_s: float) -> None:
        self.store, self.days, self.every_s = store, days, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rows, files = purge_once(self.store, self.days)
                if rows.deleted or files.deleted:
                    log.info("retention: deleted %d events, %d files", rows.deleted, files.deleted)
            except Exception:  # a failed purge must not take the service down; retried later
                log.exception("retention purge failed")
            self.runs += 1
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
