"""Camera CRUD through the API, applied to the runner."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crowdsight.store import Camera, Store
from tests.api.conftest import FakeRunner, bearer, make_client

CAM = {"id": "entrance", "name": "Entrance", "source": "rtsp://10.0.0.5/1", "loop": False}


def test_crud_calls_the_runner(
    client: TestClient, tokens: dict[str, str], runner: FakeRunner
) -> None:
    op = bearer(tokens["operator"])
    r = client.post("/api/cameras", json=CAM, headers=op)
    assert r.status_code == 201
    assert r.json()["detect_every"] == 1 and r.json()["enabled"] is True
    assert client.post("/api/cameras", json=CAM, headers=op).status_code == 409
    assert [c["id"] for c in client.get("/api/cameras", headers=op).json()] == ["entrance"]

    changed = dict(CAM, name="Main entrance", detect_every=3)
    r = client.put("/api/cameras/entrance", json=changed, headers=op)
    assert r.status_code == 200
    assert client.get("/api/cameras/entrance", headers=op).json()["name"] == "Main entrance"
    assert runner.cameras["entrance"].detect_every == 3

    status = client.get("/api/cameras/entrance/status", headers=op).json()
    assert status["running"] and status["state"] == "running"
    assert status["detail"]["fps"] == 9.5
    assert status["metrics"]["counts"] == {"count_tracked": 3.0}  # typed, named in the schema

    assert client.delete("/api/cameras/entrance", headers=op).status_code == 204
    assert client.get("/api/cameras/entrance", headers=op).status_code == 404
    assert client.delete("/api/cameras/entrance", headers=op).status_code == 404
    assert runner.calls == [("add", "entrance"), ("add", "entrance"), ("remove", "entrance")]


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (dict(CAM, id="Bad Id!"), "/api/cameras", "id"),
        (dict(CAM, detect_every=0), "/api/cameras", "detect_every"),
        (dict(CAM, density_every_s="nan"), "/api/cameras", "density_every_s"),
        (dict(CAM, colour="red"), "/api/cameras", "colour"),
        (dict(CAM, scene={"zones": "everywhere"}), "/api/cameras", "scene.zones"),
        ({k: v for k, v in CAM.items() if k != "source"}, "/api/cameras", "source"),
        (dict(CAM, id="other"), "/api/cameras/entrance", "differs"),
    ],
)
def test_malformed_cameras_are_422_with_a_clear_message(
    client: TestClient, tokens: dict[str, str], body: dict[str, object], path: str, fragment: str
) -> None:
    op = bearer(tokens["operator"])
    method = "POST" if path == "/api/cameras" else "PUT"
    r = client.request(method, path, json=body, headers=op)
    assert r.status_code == 422, r.text
    payload = r.json()
    text = payload.get("message") or payload["detail"]
    assert fragment in text


def test_invalid_json_is_422(client: TestClient, tokens: dict[str, str]) -> None:
    headers = dict(bearer(tokens["operator"]), **{"Content-Type": "application/json"})
    r = client.post("/api/cameras", content=b"{not json", headers=headers)
    assert r.status_code == 422 and "JSON" in r.json()["message"]


def test_status_without_runner_is_503(store: Store, tokens: dict[str, str]) -> None:
    store.create_camera(Camera(**CAM))  # type: ignore[arg-type]
    with make_client(store, None) as bare:
        r = bare.get("/api/cameras/entrance/status", headers=bearer(tokens["viewer"]))
    assert r.status_code == 503 and "runner" in r.json()["detail"]


def test_nul_characters_are_422_not_a_database_error(
    client: TestClient, tokens: dict[str, str]
) -> None:
    # PostgreSQL text cannot store NUL: the API refuses it up front on every backend.
    op = bearer(tokens["operator"])
    r = client.post("/api/cameras", json=dict(CAM, name="a\x00b"), headers=op)
    assert r.status_code == 422 and "NUL" in r.json()["message"]
    r = client.post("/api/cameras", json=dict(CAM, scene={"k\x00": 1}), headers=op)
    assert r.status_code == 422
    r = client.get("/api/events", params={"camera_id": "a\x00b"}, headers=op)
    assert r.status_code == 422 and r.json()["message"].startswith("query.camera_id")
