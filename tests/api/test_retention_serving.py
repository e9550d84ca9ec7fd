"""The app purges old events, snapshots and metrics on its own while it serves."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from crowdsight.config.server import ServerSettings
from crowdsight.core.events import Overcrowding, ZoneEntered
from crowdsight.server.app import create_app
from crowdsight.store import Store
from tests.api.support import CHEAP_HASHER


def _store(tmp_path: Path) -> Store:
    s = Store(
        f"sqlite:///{tmp_path / 'r.db'}", hasher=CHEAP_HASHER, snapshot_dir=tmp_path / "snaps"
    )
    s.migrate()
    return s


def test_retention_runs_at_start_and_audits(tmp_path: Path) -> None:
    store = _store(tmp_path)
    now = time.time()
    old = Overcrowding(camera_id="c", start_ts_s=now - 40 * 86_400, end_ts_s=now - 39 * 86_400)
    recent = ZoneEntered(camera_id="c", start_ts_s=now - 60, zone_id="a")
    store.record_events([old, recent], snapshots={old.event_id: b"jpg"})
    orphan = tmp_path / "snaps" / "c" / "orphan.jpg"
    orphan.write_bytes(b"jpg")
    past = now - 40 * 86_400
    os.utime(orphan, (past, past))
    settings = ServerSettings(
        admin_password="admin-password-1", retention_days=30, retention_check_s=3600
    )
    app = create_app(settings, None, store=store)
    with TestClient(app):
        deadline = time.monotonic() + 10
        while app.state.retention.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [e.event_id for e in store.query_events()] == [recent.event_id]
    assert not orphan.exists()
    [entry] = store.query_audit(action="retention.purge")
    assert entry.username == "system" and "1 events, 1 snapshot files" in entry.detail
    store.close()


def test_retention_can_be_turned_off(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old = Overcrowding(camera_id="c", start_ts_s=1000.0, end_ts_s=1100.0)
    store.record_events([old])
    app = create_app(
        ServerSettings(admin_password="admin-password-1", retention_days=None), None, store=store
    )
    with TestClient(app):
        assert app.state.retention is None
    assert [e.event_id for e in store.query_events()] == [old.event_id]
    store.close()
