"""`GET /api/cameras/{id}/anomaly` and `POST .../anomaly/learn`: roles, bad input, and the
whole path on a real runner — learn → learning → ready, the model persisted in the data dir
and used again after the service restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crowdsight.analytics.object_anomaly import ObjectNormality
from crowdsight.analytics.object_anomaly_live import ModelFiles
from crowdsight.store import Store
from tests.api.conftest import ADMIN_PASSWORD, FakeRunner, bearer, login, make_client
from tests.conftest import require_model

CAMERA = {"id": "gate", "name": "Gate", "source": "rtsp://cam.example.org/gate"}


@pytest.fixture
def data_client(store: Store, runner: FakeRunner, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(store, runner, data_dir=tmp_path / "data") as c:
        yield c


def _add_camera(client: TestClient, tokens: dict[str, str], **extra: Any) -> None:
    body = {**CAMERA, **extra}
    r = client.post("/api/cameras", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == 201, r.text


@pytest.fixture
def camera(data_client: TestClient, tokens: dict[str, str]) -> str:
    _add_camera(data_client, tokens)
    return str(CAMERA["id"])


def test_a_camera_without_a_model_is_idle(
    data_client: TestClient, tokens: dict[str, str], camera: str
) -> None:
    r = data_client.get(f"/api/cameras/{camera}/anomaly", headers=bearer(tokens["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "idle" and body["model"] is None and body["learning"] is None
    assert body["enter_score"] == 8.0  # the cell model's threshold while there is no model


def test_learn_leaves_a_request_and_shows_learning(
    data_client: TestClient, tokens: dict[str, str], camera: str, tmp_path: Path
) -> None:
    r = data_client.post(
        f"/api/cameras/{camera}/anomaly/learn",
        json={"duration_s": 600},
        headers=bearer(tokens["operator"]),
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "learning"
    assert body["requested"]["duration_s"] == 600
    pending = ModelFiles(tmp_path / "data" / "anomaly" / camera).pending_request()
    assert pending is not None and pending.duration_s == 600


def test_an_unusable_model_file_is_shown_with_what_to_do(
    data_client: TestClient, tokens: dict[str, str], camera: str, tmp_path: Path
) -> None:
    folder = tmp_path / "data" / "anomaly" / camera
    folder.mkdir(parents=True)
    (folder / "model.npz").write_bytes(b"not a model")
    body = data_client.get(f"/api/cameras/{camera}/anomaly", headers=bearer(tokens["viewer"]))
    assert body.json()["state"] == "idle"
    problem = body.json()["problem"]
    assert problem.startswith("model.npz is not an object-anomaly model")
    assert problem.endswith("learn normal again") and str(tmp_path) not in problem


@pytest.mark.parametrize(
    ("role", "body", "status", "says"),
    [
        ("viewer", {"duration_s": 60}, 403, ""),
        ("operator", {"duration_s": 0}, 422, "duration_s: Input should be greater than 0"),
        ("operator", {"duration_s": 1e9}, 422, "less than or equal to 86400"),
        ("operator", {"duration_s": "ten"}, 422, "duration_s: Input should be a valid number"),
        ("operator", {}, 422, "duration_s: Field required"),
        ("operator", {"duration_s": 60, "extra": 1}, 422, "extra"),
    ],
)
def test_bad_learn_requests_get_a_clear_4xx(
    data_client: TestClient,
    tokens: dict[str, str],
    camera: str,
    role: str,
    body: dict[str, Any],
    status: int,
    says: str,
) -> None:
    r = data_client.post(
        f"/api/cameras/{camera}/anomaly/learn", json=body, headers=bearer(tokens[role])
    )
    assert r.status_code == status, r.text
    if status == 422:
        assert says in r.json()["message"]


def test_unknown_or_disabled_camera_and_no_runner(
    data_client: TestClient, tokens: dict[str, str], store: Store, tmp_path: Path
) -> None:
    op = bearer(tokens["operator"])
    r = data_client.post("/api/cameras/nope/anomaly/learn", json={"duration_s": 5}, headers=op)
    assert r.status_code == 404 and "no camera 'nope'" in r.json()["detail"]
    _add_camera(data_client, tokens, enabled=False)
    r = data_client.post("/api/cameras/gate/anomaly/learn", json={"duration_s": 5}, headers=op)
    assert r.status_code == 409 and "disabled" in r.json()["detail"]
    with make_client(store, None, data_dir=tmp_path / "data2") as bare:
        token = login(bare, "operator", "operator-password")
        op = bearer(token)
        r = bare.post("/api/cameras/gate/anomaly/learn", json={"duration_s": 5}, headers=op)
    assert r.status_code == 503 and "no camera runner" in r.json()["detail"]


# --- the whole path on a real runner ---------------------------------------------------------


def _wait(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


@contextmanager
def _service(data_dir: Path, source: Path) -> Iterator[TestClient]:
    """The app with a real `LocalRunner` in its lifespan, as `crowdsight serve` runs it."""
    from crowdsight.cli.serve import attach_runner, with_anomaly_dir
    from crowdsight.config.pipeline import PipelineSettings
    from crowdsight.config.runner import RunnerSettings
    from crowdsight.config.server import ServerSettings
    from crowdsight.pipeline.runner import LocalRunner
    from crowdsight.server.app import create_app, open_store
    from crowdsight.store.records import Camera

    settings = ServerSettings(data_dir=data_dir, admin_password=ADMIN_PASSWORD, retention_days=None)
    store = open_store(settings)
    cam = Camera(id="ped2", name="Ped2 walkway", source=str(source), loop=True)
    if store.get_camera(cam.id) is None:
        store.create_camera(cam)
    pipeline = PipelineSettings(density=False, describe=False)
    runner_settings = RunnerSettings(
        pipeline=pipeline, folder_fps=10.0, startup_grace_s=300.0, jpeg_every_s=0.0
    )
    runner = LocalRunner(store, with_anomaly_dir(runner_settings, settings))
    app = create_app(settings, runner, store=store)
    attach_runner(app, runner, store.list_cameras())
    try:
        with TestClient(app) as client:
            yield client
    finally:
        runner.stop()
        store.close()


def test_learn_then_ready_persisted_and_reloaded_after_restart(
    shared_data: Path, tmp_path: Path
) -> None:
    require_model("nanodet")
    source = shared_data / "ucsd_ped2_train" / "frames" / "01"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    data_dir = tmp_path / "data"
    url = "/api/cameras/ped2/anomaly"
    with _service(data_dir, source) as client:
        auth = bearer(login(client, "admin", ADMIN_PASSWORD))
        assert client.get(url, headers=auth).json()["state"] == "idle"
        r = client.post(f"{url}/learn", json={"duration_s": 3}, headers=auth)
        assert r.status_code == 202 and r.json()["state"] == "learning", r.text

        def picked_up() -> Any:
            body = client.get(url, headers=auth).json()
            return body if body["learning"] is not None or body["state"] == "ready" else None

        seen = _wait("the camera to start learning", picked_up, 180)
        assert seen["state"] in ("learning", "ready")
        ready = _wait(
            "the model to be ready",
            lambda: (b := client.get(url, headers=auth).json())["state"] == "ready" and b,
            120,
        )
        model = ready["model"]
        assert model["version"] == 1 and model["objects"] > 50
        assert 3.0 <= model["footage_end_ts"] - model["footage_start_ts"] < 6.0
        assert model["footage_start_ts"] > 1e9  # live: wall-clock footage times
        assert ready["enter_score"] == 5.0  # the object model's threshold from now on
        saved = ObjectNormality.load(data_dir / "anomaly" / "ped2" / "model.npz")
        assert saved.footage == (model["footage_start_ts"], model["footage_end_ts"])

        def scored() -> Any:
            r = client.get(
                "/api/metrics",
                params={"camera_id": "ped2", "name": "anomaly_score", "since": 0},
                headers=auth,
            )
            return r.status_code == 200 and r.json().get("points")

        assert _wait("anomaly scores to be stored", scored, 60)
    restarted_at = time.time()
    with _service(data_dir, source) as client:
        auth = bearer(login(client, "admin", ADMIN_PASSWORD))
        after = client.get(url, headers=auth).json()
        assert after["state"] == "ready"
        assert after["model"]["footage_start_ts"] == model["footage_start_ts"]

        def reported() -> Any:
            body = client.get(url, headers=auth).json()
            return (body["updated_ts"] or 0) > restarted_at and body

        again = _wait("the restarted camera to report its model", reported, 180)
        assert again["state"] == "ready" and again["model"] == model
