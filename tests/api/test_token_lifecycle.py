"""API tokens (issue 18, item 10): a password change revokes them, an admin can revoke
another user's token, and a token created without a lifetime still expires."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.api.conftest import bearer


def _api_token(client: TestClient, session: str, **body: object) -> tuple[str, int]:
    r = client.post("/api/tokens", json={"name": "script", **body}, headers=bearer(session))
    assert r.status_code == 201, r.text
    return r.json()["token"], r.json()["info"]["id"]


def test_password_change_revokes_api_tokens(client: TestClient, tokens: dict[str, str]) -> None:
    api, _ = _api_token(client, tokens["viewer"])
    assert client.get("/api/auth/me", headers=bearer(api)).status_code == 200
    r = client.patch(
        "/api/users/viewer", json={"password": "a-new-pass-phrase"}, headers=bearer(tokens["admin"])
    )
    assert r.status_code == 200
    assert client.get("/api/auth/me", headers=bearer(api)).status_code == 401
    assert client.get("/api/auth/me", headers=bearer(tokens["viewer"])).status_code == 401


def test_admin_revokes_another_users_token(client: TestClient, tokens: dict[str, str]) -> None:
    api, token_id = _api_token(client, tokens["operator"])
    admin = bearer(tokens["admin"])
    listed = client.get("/api/users/operator/tokens", headers=admin)
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == [token_id]
    # Not for non-admins, and not another user's id under the wrong name.
    other = client.delete(f"/api/users/operator/tokens/{token_id}", headers=bearer(api))
    assert other.status_code == 403
    assert client.delete(f"/api/users/viewer/tokens/{token_id}", headers=admin).status_code == 404
    r = client.delete(f"/api/users/operator/tokens/{token_id}", headers=admin)
    assert r.status_code == 204
    assert client.get("/api/auth/me", headers=bearer(api)).status_code == 401
    actions = [e["action"] for e in client.get("/api/audit", headers=admin).json()]
    assert "token.revoke" in actions


def test_api_tokens_expire_by_default(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.post("/api/tokens", json={"name": "forever?"}, headers=bearer(tokens["viewer"]))
    expires_at = r.json()["info"]["expires_at"]
    assert expires_at is not None
    assert 80 * 86400 < expires_at - time.time() <= 90 * 86400 + 60
