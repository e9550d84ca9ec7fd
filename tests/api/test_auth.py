"""Authentication, roles, rate limiting, tokens and the audit log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crowdsight.core.events import Fall
from crowdsight.server.auth import COOKIE_NAME, LoginLimiter
from crowdsight.store import Store
from tests.api.conftest import ADMIN_PASSWORD, FakeRunner, bearer, login, make_client

PUBLIC = {"/api/health", "/api/auth/login"}


def _concrete(path: str) -> str:
    return (
        path.replace("{camera_id}", "cam-1")
        .replace("{event_id}", "e1")
        .replace("{username}", "someone")
        .replace("{token_id}", "1")
    )


def test_every_api_route_needs_auth(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    routes = [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]
    assert len(routes) >= 20
    for method, path in routes:
        r = client.request(method, _concrete(path))
        if path in PUBLIC:
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"),
    [
        ("GET", "/api/events", None, "viewer"),
        ("GET", "/api/cameras", None, "viewer"),
        ("GET", "/metrics", None, "viewer"),
        ("POST", "/api/cameras", {"id": "c9", "name": "C", "source": "0"}, "operator"),
        ("DELETE", "/api/cameras/nope", None, "operator"),
        ("GET", "/api/users", None, "admin"),
        ("POST", "/api/users", {"username": "x1", "password": "password-1"}, "admin"),
        ("GET", "/api/audit", None, "admin"),
    ],
)
def test_role_matrix(
    client: TestClient,
    tokens: dict[str, str],
    method: str,
    path: str,
    body: dict[str, str] | None,
    allowed: str,
) -> None:
    order = ["viewer", "operator", "admin"]
    for role in order:
        r = client.request(method, path, json=body, headers=bearer(tokens[role]))
        if order.index(role) < order.index(allowed):
            assert r.status_code == 403, (role, r.text)
            assert allowed in r.json()["detail"]
        else:
            assert r.status_code not in (401, 403), (role, r.text)


def test_login_sets_cookie_and_logout_ends_the_session(client: TestClient) -> None:
    r = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200
    assert COOKIE_NAME in r.cookies
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert client.get("/api/auth/me").json()["username"] == "admin"  # via the cookie
    assert client.post("/api/auth/logout").status_code == 204
    client.cookies.set(COOKIE_NAME, r.json()["token"])
    assert client.get("/api/auth/me").status_code == 401  # revoked server-side


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    a = client.post("/api/auth/login", json={"username": "admin", "password": "nope"})
    b = client.post("/api/auth/login", json={"username": "ghost", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


def test_login_rate_limit_per_user_and_client(client: TestClient) -> None:
    wrong = {"username": "admin", "password": "wrong"}
    codes = [client.post("/api/auth/login", json=wrong).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    right = {"username": "admin", "password": ADMIN_PASSWORD}
    blocked = client.post("/api/auth/login", json=right)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # Another user name from the same client is not locked out.
    other = client.post("/api/auth/login", json={"username": "viewer", "password": "x"})
    assert other.status_code == 401


def test_limiter_window_slides() -> None:
    now = [0.0]
    limiter = LoginLimiter(max_failures=2, window_s=10.0, clock=lambda: now[0])
    limiter.failed("Ann", "1.2.3.4")
    limiter.failed("ann", "1.2.3.4")
    assert limiter.retry_after_s("ann", "1.2.3.4") == pytest.approx(10.0)
    assert limiter.retry_after_s("ann", "5.6.7.8") == 0.0
    now[0] = 10.5
    assert limiter.retry_after_s("ann", "1.2.3.4") == 0.0
    limiter.failed("bob", "x")
    limiter.reset()
    assert limiter.retry_after_s("bob", "x") == 0.0


def test_api_tokens_are_hashed_usable_and_revocable(
    client: TestClient, tokens: dict[str, str], store: Store
) -> None:
    r = client.post("/api/tokens", json={"name": "ha"}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 201
    secret, info = r.json()["token"], r.json()["info"]
    assert client.get("/api/events", headers=bearer(secret)).status_code == 200
    listed = client.get("/api/tokens", headers=bearer(secret)).json()
    assert [t["name"] for t in listed] == ["ha"] and "token" not in listed[0]
    # Another user cannot revoke it.
    r = client.delete(f"/api/tokens/{info['id']}", headers=bearer(tokens["operator"]))
    assert r.status_code == 404
    r = client.delete(f"/api/tokens/{info['id']}", headers=bearer(tokens["viewer"]))
    assert r.status_code == 204
    assert client.get("/api/events", headers=bearer(secret)).status_code == 401


def test_user_management(client: TestClient, tokens: dict[str, str]) -> None:
    admin = bearer(tokens["admin"])
    r = client.post("/api/users", json={"username": "dana", "password": "short"}, headers=admin)
    assert r.status_code == 422 and "password" in r.json()["message"]
    body = {"username": "dana", "password": "long-enough-1", "role": "operator"}
    assert client.post("/api/users", json=body, headers=admin).status_code == 201
    assert client.post("/api/users", json=body, headers=admin).status_code == 409
    dana = login(client, "dana", "long-enough-1")
    r = client.patch("/api/users/dana", json={"role": "viewer"}, headers=admin)
    assert r.json()["role"] == "viewer"
    assert client.get("/api/auth/me", headers=bearer(dana)).json()["role"] == "viewer"
    r = client.patch("/api/users/dana", json={"password": "another-pass-2"}, headers=admin)
    assert r.status_code == 200
    assert client.get("/api/auth/me", headers=bearer(dana)).status_code == 401
    assert client.delete("/api/users/admin", headers=admin).status_code == 409
    assert client.delete("/api/users/dana", headers=admin).status_code == 204
    assert client.delete("/api/users/dana", headers=admin).status_code == 404
    assert "dana" not in [u["username"] for u in client.get("/api/users", headers=admin).json()]


def test_snapshot_export_and_live_view_are_audited(
    client: TestClient, tokens: dict[str, str], store: Store, runner: FakeRunner
) -> None:
    event = Fall(camera_id="cam-1", start_ts_s=1.0)
    store.record_events([event], snapshots={event.event_id: b"\xff\xd8snap"})
    viewer = bearer(tokens["viewer"])
    r = client.get(f"/api/events/{event.event_id}/snapshot", headers=viewer)
    assert r.status_code == 200 and r.content == b"\xff\xd8snap"
    assert r.headers["content-type"] == "image/jpeg"

    op = bearer(tokens["operator"])
    assert (
        client.post(
            "/api/cameras", json={"id": "cam-1", "name": "C", "source": "0"}, headers=op
        ).status_code
        == 201
    )
    r = client.get("/api/cameras/cam-1/snapshot.jpg", headers=viewer)
    assert r.status_code == 200

    log = client.get("/api/audit", headers=bearer(tokens["admin"])).json()
    seen = {(e["username"], e["action"], e["detail"]) for e in log}
    assert ("viewer", "snapshot.export", event.event_id) in seen
    assert ("viewer", "live.snapshot", "cam-1") in seen
    assert ("operator", "camera.create", "cam-1") in seen


def test_admin_is_bootstrapped_once(store: Store) -> None:
    with make_client(store, None):
        pass
    with make_client(store, None, admin_password="different-password"):
        pass
    assert [u.username for u in store.list_users()] == ["admin"]
    assert store.verify_password("admin", ADMIN_PASSWORD) is not None
