"""Camera sources as an attack path (issue 18, item 1): an operator cannot make the server
read local files or connect to loopback/link-local ports, and viewers never learn from a
status error whether a path exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crowdsight.config.sources import SourcePolicy
from crowdsight.core.errors import InputError
from crowdsight.sources.policy import check_source
from crowdsight.store import Store
from tests.api.conftest import FakeRunner, bearer, login, make_client

PASSWORDS = {"viewer": "viewer-password", "operator": "operator-password"}


def _camera(source: str) -> dict[str, Any]:
    return {"id": "cam", "name": "Cam", "source": source}


def _tokens(client: TestClient, store: Store) -> dict[str, str]:
    for role, password in PASSWORDS.items():
        store.create_user(role, password, role)
    out = {role: login(client, role, pw) for role, pw in PASSWORDS.items()}
    out["admin"] = login(client, "admin", "admin-password-1")
    return out


@pytest.mark.parametrize(
    "source",
    [
        "/tmp/private",
        "../../etc",
        "file:///etc/passwd",
        "http://127.0.0.1:9/x",
        "rtsp://localhost:554/x",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0:22/",
        "gopher://10.0.0.5/",
    ],
)
def test_operator_cannot_use_local_files_or_internal_hosts(
    client: TestClient, tokens: dict[str, str], runner: FakeRunner, source: str
) -> None:
    r = client.post("/api/cameras", json=_camera(source), headers=bearer(tokens["operator"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "source"]
    assert runner.calls == []
    # The same via PUT on an existing camera.
    ok = client.post(
        "/api/cameras", json=_camera("rtsp://10.0.0.5/1"), headers=bearer(tokens["operator"])
    )
    assert ok.status_code == 201, ok.text
    r = client.put("/api/cameras/cam", json=_camera(source), headers=bearer(tokens["operator"]))
    assert r.status_code == 422, r.text


def test_refusal_does_not_tell_whether_a_path_exists(
    client: TestClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "exists").mkdir()
    answers = []
    for source in (str(tmp_path / "exists"), str(tmp_path / "missing")):
        r = client.post("/api/cameras", json=_camera(source), headers=bearer(tokens["operator"]))
        assert r.status_code == 422
        answers.append(r.json()["detail"][0]["msg"])
    assert answers[0] == answers[1]


def test_media_roots_and_allow_hosts_widen_the_policy(store: Store, tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "clips").mkdir(parents=True)
    outside = tmp_path / "private"
    outside.mkdir()
    (media / "escape").symlink_to(outside)
    policy = {"media_roots": [str(media)], "allow_hosts": ["127.0.0.1"]}
    with make_client(store, FakeRunner(), sources=policy) as client:
        op = bearer(_tokens(client, store)["operator"])
        for i, source in enumerate([str(media / "clips"), "rtsp://127.0.0.1:8554/relay"]):
            body = {"id": f"ok{i}", "name": "ok", "source": source}
            assert client.post("/api/cameras", json=body, headers=op).status_code == 201
        for i, source in enumerate([str(media / "escape"), str(media / ".." / "private")]):
            body = {"id": f"no{i}", "name": "no", "source": source}
            assert client.post("/api/cameras", json=body, headers=op).status_code == 422


def test_deny_hosts_and_schemes() -> None:
    with pytest.raises(InputError, match="deny_hosts"):
        check_source("rtsp://10.0.0.5/1", SourcePolicy(deny_hosts=["10.0.0.0/8"]))
    with pytest.raises(InputError, match="scheme"):
        check_source("http://10.0.0.5/1", SourcePolicy(schemes=["rtsp"]))
    with pytest.raises(InputError, match="webcam"):
        check_source("0", SourcePolicy(webcams=False))
    check_source("rtsp://10.0.0.5/1", SourcePolicy())
    check_source("0", SourcePolicy())


class FailingRunner(FakeRunner):
    def cameras_status(self) -> dict[str, dict[str, Any]]:
        return {
            cid: {"state": "restarting", "error": "no such file or folder: /srv/secret/plans"}
            for cid in self.cameras
        }


def test_viewer_status_hides_the_source_error(store: Store) -> None:
    with make_client(store, FailingRunner()) as client:
        tokens = _tokens(client, store)
        body = _camera("rtsp://10.0.0.5/1")
        assert client.post("/api/cameras", json=body, headers=bearer(tokens["operator"])).is_success
        for role in ("viewer", "operator"):
            r = client.get("/api/cameras/cam/status", headers=bearer(tokens[role]))
            assert r.status_code == 200
            assert "/srv" not in r.text and "no such file" not in r.text
            assert r.json()["detail"]["error"]
        r = client.get("/api/cameras/cam/status", headers=bearer(tokens["admin"]))
        assert "/srv/secret/plans" in r.json()["detail"]["error"]
