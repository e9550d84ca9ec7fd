"""The dashboard's static files as the real app serves them (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from crowdsight.config.server import ServerSettings
from crowdsight.server.app import create_app
from crowdsight.server.dashboard import STATIC_DIR
from crowdsight.store import Store

# A reference to another origin in markup, CSS or a module import.
EXTERNAL_REF = re.compile(
    r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|"""
    r"""\bimport\b[^;]*?["'](?:https?:)?//|@import\s+["']?(?:https?:)?//""",
    re.IGNORECASE,
)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    store = Store(
        f"sqlite:///{tmp_path / 'cs.db'}",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    return TestClient(create_app(ServerSettings(admin_password="x" * 12), store=store))


def test_index_is_served_with_a_strict_csp(client: TestClient) -> None:
    res = client.get("/")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert 'data-testid="login-form"' in res.text
    csp = res.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert res.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/app.js", "javascript"),
        ("/api.js", "javascript"),
        ("/charts.js", "javascript"),
        ("/style.css", "text/css"),
    ],
)
def test_assets_are_served(client: TestClient, path: str, mime: str) -> None:
    res = client.get(path)
    assert res.status_code == 200
    assert mime in res.headers["content-type"]


def test_unknown_api_path_is_a_json_404(client: TestClient) -> None:
    res = client.get("/api/no-such-thing")
    assert res.status_code == 404
    assert res.json() == {"detail": "Not Found"}


@pytest.mark.parametrize(
    "name", sorted(p.name for p in STATIC_DIR.iterdir() if p.suffix in {".html", ".js", ".css"})
)
def test_no_file_loads_anything_from_another_origin(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert EXTERNAL_REF.findall(text) == [], f"{name} references another origin"


def test_api_docs_pages_use_only_packaged_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        res = client.get(page)
        assert res.status_code == 200
        assert not EXTERNAL_REF.search(res.text), f"{page} loads from another origin"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        res = client.get(f"/docs-assets/{asset}")
        assert res.status_code == 200
        assert len(res.content) > 10_000
