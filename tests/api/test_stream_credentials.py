"""Stream passwords are returned to nobody and never shown in status or logs (issue 18,
item 4)."""

from __future__ import annotations

import logging
import socket
import sqlite3
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crowdsight.core.errors import InputError
from crowdsight.sources.policy import redact_source
from crowdsight.sources.stream import Backoff, LiveSource
from crowdsight.store import Store
from tests.api.conftest import bearer

PASSWORD = "s3cret-Stream-pw"
URL = f"rtsp://cam-user:{PASSWORD}@10.0.0.5:554/stream1"


def test_no_role_gets_the_stream_password(
    client: TestClient, tokens: dict[str, str], store: Store
) -> None:
    body = {"id": "door", "name": "Door", "source": URL, "enabled": False}
    r = client.post("/api/cameras", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == 201, r.text
    assert PASSWORD not in r.text
    for role in ("viewer", "operator", "admin"):
        for path in ("/api/cameras", "/api/cameras/door"):
            r = client.get(path, headers=bearer(tokens[role]))
            assert r.status_code == 200
            assert PASSWORD not in r.text and "cam-user" not in r.text
    shown = client.get("/api/cameras/door", headers=bearer(tokens["admin"])).json()
    assert shown["source"] == "rtsp://***@10.0.0.5:554/stream1"
    # Sending the shown camera back (a rename) keeps the stored credentials for the runner.
    r = client.put(
        "/api/cameras/door",
        json={**shown, "name": "Front door"},
        headers=bearer(tokens["operator"]),
    )
    assert r.status_code == 200, r.text
    stored = store.get_camera("door")
    assert stored is not None and stored.source == URL and stored.name == "Front door"


def test_redact_source_handles_text_and_urls_without_credentials() -> None:
    assert redact_source(f"cannot open stream ('{URL}')") == (
        "cannot open stream ('rtsp://***@10.0.0.5:554/stream1')"
    )
    assert redact_source("rtsp://10.0.0.5/1") == "rtsp://10.0.0.5/1"
    assert redact_source("/data/a@b/video.mp4") == "/data/a@b/video.mp4"


def test_stream_errors_and_logs_hide_the_password(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: connection refused
    url = f"rtsp://cam-user:{PASSWORD}@127.0.0.1:{port}/stream1"
    source = LiveSource("door", url, backoff=Backoff(initial_s=0.01, max_attempts=2))
    with caplog.at_level(logging.WARNING), pytest.raises(InputError) as info:
        for _ in source:
            pass
    assert PASSWORD not in str(info.value)
    assert source.status.last_error and PASSWORD not in source.status.last_error
    assert caplog.records and all(PASSWORD not in r.getMessage() for r in caplog.records)


def test_credentials_are_encrypted_at_rest(tmp_path: Path) -> None:
    from crowdsight.config.server import ServerSettings
    from crowdsight.server.app import open_store
    from crowdsight.store.records import Camera

    data = tmp_path / "data"
    store = open_store(ServerSettings(data_dir=data))
    store.create_camera(Camera(id="door", name="Door", source=URL))
    store.create_camera(Camera(id="plain", name="Plain", source="rtsp://10.0.0.6/1"))
    got = store.get_camera("door")
    assert got is not None and got.source == URL  # the runner gets the real URL
    store.close()
    raw = sqlite3.connect(data / "crowdsight.db")
    sources = dict(raw.execute("SELECT id, source FROM cameras").fetchall())
    raw.close()
    assert PASSWORD not in sources["door"] and sources["door"].startswith("sealed:v1:")
    assert sources["plain"] == "rtsp://10.0.0.6/1"
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600
    # A reopened store (same key file) reads it back.
    again = open_store(ServerSettings(data_dir=data))
    reread = again.get_camera("door")
    assert reread is not None and reread.source == URL
    again.close()
