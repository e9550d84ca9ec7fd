"""The app under a real uvicorn server on loopback: sign-in by cookie, and the outbox
dispatcher started by the app's lifespan delivering a signed webhook after commit."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import uvicorn

from crowdsight.config.server import ServerSettings
from crowdsight.core.events import Fall
from crowdsight.outputs import WebhookSettings
from crowdsight.outputs.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from crowdsight.server.app import create_app
from crowdsight.store import Store
from tests.api.conftest import ADMIN_PASSWORD
from tests.api.support import free_port

SECRET = "webhook-secret-0123456789"


@contextmanager
def _receiver() -> Iterator[tuple[str, queue.Queue[tuple[dict[str, str], bytes]]]]:
    inbox: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            inbox.put(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", inbox
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _uvicorn(settings: ServerSettings, store: Store) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, store=store), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(300):  # up to 30 s; returns as soon as uvicorn has started
        if server.started:
            ready.set()
            break
        ready.wait(0.1)
    assert ready.is_set(), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_real_server_cookie_session_and_webhook_delivery(store: Store) -> None:
    with _receiver() as (hook_url, inbox):
        settings = ServerSettings(
            admin_password=ADMIN_PASSWORD,
            webhooks=[WebhookSettings(name="ops", url=hook_url, secret=SECRET)],  # type: ignore[arg-type]
        )
        with _uvicorn(settings, store) as base, httpx.Client(base_url=base) as client:
            assert client.get("/api/events").status_code == 401
            r = client.post(
                "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 200
            assert client.get("/api/events").json() == []  # the cookie signs us in

            event = Fall(camera_id="cam-1", start_ts_s=1.0, track_ids=(4,))
            store.record_events([event])  # as the runner does; the app's dispatcher delivers
            headers, body = inbox.get(timeout=20)
            assert [e["event_id"] for e in client.get("/api/events").json()] == [event.event_id]
    assert json.loads(body)["event_id"] == event.event_id
    assert verify_signature(
        SECRET, headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()]
    )
    assert store.list_outbox(pending_only=True) == []
