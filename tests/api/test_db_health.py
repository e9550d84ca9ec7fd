"""Database health for real (issue 18, item 7): a SQLite file with its tail overwritten was
reported 'ok' while sign-in, events and audit answered 500, and the runner retried its writes
forever."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa

from crowdsight.config.runner import RunnerSettings
from crowdsight.config.server import ServerSettings
from crowdsight.pipeline.persistence import is_permanent_store_error
from crowdsight.pipeline.runner import LocalRunner
from crowdsight.server.app import create_app
from crowdsight.store import Store
from tests.api.support import CHEAP_HASHER


def _filled_database(path: Path) -> None:
    store = Store(f"sqlite:///{path}", hasher=CHEAP_HASHER)
    store.migrate()
    for i in range(3000):  # enough rows for many pages after the schema
        store.audit("admin", "test.fill", f"row {i} " + "x" * 100, "127.0.0.1")
    store.close()


def _health(db: Path) -> dict[str, Any]:
    """``GET /api/health`` of a service started on the SQLite file ``db``."""
    store = Store(f"sqlite:///{db}", hasher=CHEAP_HASHER)
    settings = ServerSettings(admin_password="admin-password-1", retention_days=None)
    try:
        with TestClient(create_app(settings, store=store)) as client:
            health: dict[str, Any] = client.get("/api/health").json()
    finally:
        store.close()
    return health


def test_corrupt_sqlite_file_is_reported_degraded(tmp_path: Path) -> None:
    db = tmp_path / "crowdsight.db"
    _filled_database(db)
    size = db.stat().st_size
    with db.open("r+b") as f:  # overwrite the file's second half, as the probe did
        f.seek(size // 2)
        f.write(b"\xa5" * (size - size // 2))
    health = _health(db)
    assert health["status"] == "degraded"
    assert health["database"] is False
    assert "corrupt" in health["problem"] or "malformed" in health["problem"]


def test_healthy_database_reports_ok(tmp_path: Path) -> None:
    db = tmp_path / "ok.db"
    _filled_database(db)
    health = _health(db)
    assert health == health | {"status": "ok", "database": True, "problem": None}


def _dbapi_error(cls: type[sa.DBAPIError], message: str) -> sa.DBAPIError:
    return cls("INSERT ...", {}, sqlite3.DatabaseError(message))


def test_permanent_write_failures_stop_being_retried(tmp_path: Path) -> None:
    assert is_permanent_store_error(_dbapi_error(sa.DatabaseError, "disk image is malformed"))
    assert not is_permanent_store_error(_dbapi_error(sa.OperationalError, "database is locked"))
    store = Store(f"sqlite:///{tmp_path / 'r.db'}", hasher=CHEAP_HASHER)
    runner = LocalRunner(store, RunnerSettings(store_retry_max_s=0.01))
    attempts = []

    def broken_write() -> None:
        attempts.append(1)
        raise _dbapi_error(sa.DatabaseError, "database disk image is malformed")

    runner.writer.retry(broken_write)  # returns instead of looping forever
    assert len(attempts) == 3
    assert runner.store_error is not None and "malformed" in runner.store_error
    store.close()


@pytest.mark.parametrize("transient", [sa.OperationalError])
def test_transient_write_failures_are_retried(
    tmp_path: Path, transient: type[sa.DBAPIError]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}", hasher=CHEAP_HASHER)
    runner = LocalRunner(store, RunnerSettings(store_retry_max_s=0.01))
    attempts = []

    def flaky_write() -> None:
        attempts.append(1)
        if len(attempts) < 5:
            raise _dbapi_error(transient, "database is locked")

    runner.writer.retry(flaky_write)
    assert len(attempts) == 5 and runner.store_error is None
    store.close()


def test_a_full_disk_is_reported_while_writes_wait_and_nothing_is_lost(tmp_path: Path) -> None:
    """SQLite's page limit gives the very error of a full disk (SQLITE_FULL, "database or disk
    is full"): the runner keeps the write and retries it, health says why and what to do, and
    once there is room again the events are stored and health is ok."""
    from sqlalchemy import event

    from crowdsight.core.events import ZoneEntered

    store = Store(f"sqlite:///{tmp_path / 'full.db'}", hasher=CHEAP_HASHER)
    store.migrate()
    with store.engine.connect() as conn:
        pages_now = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    cap: dict[str, int] = {"pages": pages_now}  # no room to grow

    @event.listens_for(store.engine, "checkout")
    def _page_limit(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {cap['pages']}")

    runner = LocalRunner(store, RunnerSettings(store_retry_max_s=0.05))
    settings = ServerSettings(admin_password="admin-password-1", retention_days=None)
    events = [
        ZoneEntered(camera_id="cam-1", start_ts_s=float(i), zone_id="gate", track_ids=(i,))
        for i in range(400)  # more rows than the free space of the file's last pages
    ]
    writer = threading.Thread(
        target=runner.writer.retry, args=(lambda: store.record_events(events),)
    )
    try:
        with TestClient(create_app(settings, runner, store=store)) as client:
            writer.start()
            deadline = time.monotonic() + 20
            while runner.store_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            health = client.get("/api/health").json()
            assert health["status"] == "degraded"
            assert "disk holding the database or the snapshots is full" in health["problem"]
            assert "nothing is dropped" in health["problem"]
            assert writer.is_alive()  # still waiting, not given up
            assert store.query_events(camera_id="cam-1") == []

            cap["pages"] = 1_000_000  # room again
            writer.join(timeout=20)
            assert not writer.is_alive()
            assert len(store.query_events(camera_id="cam-1", limit=1000)) == 400
            assert runner.store_error is None
            assert client.get("/api/health").json()["status"] == "ok"
    finally:
        cap["pages"] = 1_000_000
        writer.join(timeout=20)
        store.close()


def test_what_counts_as_a_full_disk(tmp_path: Path) -> None:
    from crowdsight.core.errors import is_disk_full

    full = tmp_path / "snap.jpg"
    full.symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:  # a snapshot file written to a full disk
        full.write_bytes(b"\xff\xd8" * 10_000)
    assert is_disk_full(raised.value)
    assert is_disk_full(_dbapi_error(sa.OperationalError, "database or disk is full"))
    wrapped = RuntimeError("store write")
    wrapped.__cause__ = raised.value
    assert is_disk_full(wrapped)
    assert not is_disk_full(_dbapi_error(sa.OperationalError, "database is locked"))
    assert not is_disk_full(PermissionError(13, "Permission denied"))
