"""Database health for real (issue 18, item 7): a SQLite file with its tail overwritten was
reported 'ok' while sign-in, events and audit answered 500, and the runner retried its writes
forever."""

from __future__ import annotations

import sqlite3
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
