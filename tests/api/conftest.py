"""API test fixtures: a fresh SQLite database per test, users of every role, a fake runner."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crowdsight.config.server import ServerSettings
from crowdsight.server.app import create_app
from crowdsight.store import Store
from tests.api.support import CHEAP_HASHER

ADMIN_PASSWORD = "admin-password-1"
PASSWORDS = {"viewer": "viewer-password", "operator": "operator-password"}


@dataclass
class FakeRunner:
    """Records what the API asks of the runner; reports a fixed status and JPEG."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    cameras: dict[str, Any] = field(default_factory=dict)

    def add_camera(self, camera: Any) -> None:
        self.calls.append(("add", camera.id))
        self.cameras[camera.id] = camera

    def remove_camera(self, camera_id: str) -> None:
        self.calls.append(("remove", camera_id))
        self.cameras.pop(camera_id, None)

    def camera_ids(self) -> list[str]:
        return list(self.cameras)

    def cameras_status(self) -> dict[str, dict[str, Any]]:
        return {
            cid: {"state": "running", "fps": 9.5, "metrics": {"counts": {"count_tracked": 3}}}
            for cid in self.cameras
        }

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        return b"\xff\xd8live\xff\xd9" if camera_id in self.cameras else None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'api.db'}", hasher=CHEAP_HASHER)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


def make_client(store: Store, runner: FakeRunner | None, **settings: Any) -> TestClient:
    # Fixtures use timestamps from 1970; the serving-time retention has its own test.
    config = ServerSettings(
        **{"admin_password": ADMIN_PASSWORD, "retention_days": None, **settings}
    )
    return TestClient(create_app(config, runner, store=store))


@pytest.fixture
def client(store: Store, runner: FakeRunner) -> Iterator[TestClient]:
    with make_client(store, runner) as c:
        yield c


def login(client: TestClient, username: str, password: str) -> str:
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # tests authenticate explicitly with the bearer token
    token: str = r.json()["token"]
    return token


@pytest.fixture
def tokens(client: TestClient, store: Store) -> dict[str, str]:
    """A bearer token for each role."""
    for role, password in PASSWORDS.items():
        store.create_user(role, password, role)
    out = {role: login(client, role, pw) for role, pw in PASSWORDS.items()}
    out["admin"] = login(client, "admin", ADMIN_PASSWORD)
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
