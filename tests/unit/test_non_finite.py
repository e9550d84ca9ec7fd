"""NaN and Infinity are refused in every config and API body (issue 18, item 9): a NaN zone
corner made the worker crash on every frame, and ``session_ttl_s: .inf`` made every sign-in
answer 500."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from crowdsight.config.runner import RunnerSettings
from crowdsight.config.scene import parse_scene
from crowdsight.config.serve import load_serve_config
from crowdsight.config.server import ServerSettings
from crowdsight.core.errors import ConfigError
from crowdsight.server.app import create_app
from crowdsight.store import Store

ZONE_WITH = "zones: [{{id: z, polygon: [[0, 0], [{x}, 0], [10, 10]]}}]"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_scene_yaml_with_non_finite_coordinates_is_refused(value: str) -> None:
    import yaml

    data = yaml.safe_load(ZONE_WITH.format(x=value))
    with pytest.raises(ConfigError, match="finite"):
        parse_scene(data, "scene.yaml")


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_serve_config_with_infinite_session_ttl_is_one_line(tmp_path: Path, value: str) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(f"server: {{session_ttl_s: {value}}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_serve_config(path)
    assert "session_ttl_s" in str(info.value) and "\n" not in str(info.value)


def test_settings_models_refuse_non_finite() -> None:
    with pytest.raises(ValidationError):
        ServerSettings(metrics_bucket_s=math.inf)
    with pytest.raises(ValidationError):
        RunnerSettings.model_validate({"stop_timeout_s": math.nan})


def test_api_refuses_nan_in_a_camera_scene(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    settings = ServerSettings(admin_password="admin-password-1", retention_days=None)
    with TestClient(create_app(settings, store=store)) as client:
        token = client.post(
            "/api/auth/login", json={"username": "admin", "password": "admin-password-1"}
        ).json()["token"]
        body = (
            '{"id": "c", "name": "C", "source": "rtsp://10.0.0.5/1", "scene": '
            '{"zones": [{"id": "z", "polygon": [[0, 0], [NaN, 0], [10, 10]]}]}}'
        )
        r = client.post(
            "/api/cameras",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text
        assert store.get_camera("c") is None
        bad_density = '{"id": "d", "name": "D", "source": "0", "density_every_s": Infinity}'
        r = client.post(
            "/api/cameras",
            content=bad_density,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert r.status_code == 422
    store.close()
