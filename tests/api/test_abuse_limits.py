"""Bounds against unauthenticated abuse (issue 18, items 2, 5, 6 and the TLS cookie of 12):
body size checked before reading, concurrent sign-ins bounded, per-client and global sign-in
limits, failed sign-ins audited, X-Forwarded-For believed only from configured proxies."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi.testclient import TestClient

from crowdsight.cli.serve import uvicorn_config
from crowdsight.config.server import ServerSettings
from crowdsight.server.app import create_app
from crowdsight.server.auth import LoginLimiter
from crowdsight.store import Store
from tests.api.conftest import ADMIN_PASSWORD, bearer, login, make_client
from tests.api.support import free_port, self_signed_cert


@contextmanager
def _serving(store: Store, **settings: object) -> Iterator[tuple[str, ServerSettings]]:
    """The app under a real uvicorn on loopback, configured the way `crowdsight serve` is."""
    config = ServerSettings(
        **{"admin_password": ADMIN_PASSWORD, "retention_days": None, "port": free_port()} | settings  # type: ignore[arg-type]
    )
    server = uvicorn.Server(uvicorn_config(create_app(config, store=store), config, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(300):
        if server.started:
            started.set()
            break
        started.wait(0.1)
    assert started.is_set(), "uvicorn did not start"
    scheme = "https" if config.tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{config.port}", config
    finally:
        server.should_exit = True
        thread.join(10)


def test_oversized_body_is_refused_before_it_is_read(store: Store) -> None:
    with _serving(store) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            # Declares 300 MB and sends none of it: the answer must not wait for the body.
            sock.sendall(
                b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 300000000\r\n\r\n"
            )
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # Chunked (no Content-Length): cut off once the limit is passed.
        chunks = (b"x" * 65536 for _ in range(64))  # 4 MiB
        r = httpx.post(f"{base}/api/auth/login", content=chunks, timeout=10)
        assert r.status_code == 413
        ok = httpx.post(
            f"{base}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert ok.status_code == 200


def test_concurrent_sign_ins_beyond_the_gate_get_503(client: TestClient) -> None:
    gate = client.app.state.sign_in_gate  # type: ignore[attr-defined]
    with gate.slot() as held:  # default: 1 at once, taken
        assert held
        r = client.post("/api/auth/login", json={"username": "admin", "password": "x"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
    login(client, "admin", ADMIN_PASSWORD)


def test_random_user_names_meet_the_per_client_limit_and_are_audited(
    store: Store, tokens: dict[str, str]
) -> None:
    with make_client(store, None, login_max_failures_per_client=6) as client:
        codes = [
            client.post(
                "/api/auth/login", json={"username": uuid.uuid4().hex[:12], "password": "nope"}
            ).status_code
            for _ in range(8)
        ]
        assert codes == [401] * 6 + [429] * 2
        failed = client.get(
            "/api/audit", params={"action": "auth.login_failed"}, headers=bearer(tokens["admin"])
        ).json()
        assert len(failed) == 6 and all(e["client"] for e in failed)


def test_global_limit_stops_many_clients() -> None:
    limiter = LoginLimiter(max_failures=5, max_failures_per_client=5, max_failures_global=10)
    for i in range(10):
        assert limiter.retry_after_s(f"u{i}", f"10.0.0.{i}") == 0
        limiter.failed(f"u{i}", f"10.0.0.{i}")
    assert limiter.retry_after_s("someone", "10.9.9.9") > 0


def _audited_client(base: str, store: Store, forged: str) -> str:
    r = httpx.post(
        f"{base}/api/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-For": forged},
    )
    assert r.status_code == 200, r.text
    return store.query_audit(action="auth.login", username=None, limit=1)[0].client or ""


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(store: Store) -> None:
    with _serving(store) as (base, _):
        assert _audited_client(base, store, "203.0.113.9") == "127.0.0.1"
    with _serving(store, trusted_proxies=["127.0.0.1"]) as (base, _):
        assert _audited_client(base, store, "203.0.113.9") == "203.0.113.9"


def test_tls_serves_https_and_marks_the_cookie_secure(store: Store, tmp_path: Path) -> None:
    certfile, keyfile = self_signed_cert(tmp_path)
    tls = {"certfile": str(certfile), "keyfile": str(keyfile)}
    with _serving(store, tls=tls) as (base, _):
        assert base.startswith("https://")
        r = httpx.post(
            f"{base}/api/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            verify=False,  # the test's own self-signed certificate
        )
        assert r.status_code == 200
        assert "secure" in r.headers["set-cookie"].lower()
