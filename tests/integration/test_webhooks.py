"""Signed webhooks against a real local HTTP server: signature, retry after 500, dead letter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crowdsight.core.events import Fall
from crowdsight.outputs import DeliverySettings, OutboxDispatcher, WebhookSettings
from crowdsight.outputs.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    sign,
    verify_signature,
)
from crowdsight.store import Store
from tests.api.support import open_store

SECRET = "a-very-long-shared-secret"


@dataclass
class Receiver:
    """What the test server saw, and the status codes it should answer with, in order."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    """A settable clock so back-off waits need no sleeping."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _dispatcher(store: Store, url: str, max_attempts: int = 5) -> OutboxDispatcher:
    sink = WebhookSink(WebhookSettings(name="ops", url=url, secret=SECRET))  # type: ignore[arg-type]
    policy = DeliverySettings(max_attempts=max_attempts, backoff_base_s=2.0, backoff_max_s=60.0)
    return OutboxDispatcher(store, [sink], policy)


def test_signature_round_trip_and_tamper() -> None:
    body, ts = b'{"a":1}', "1700000000"
    good = sign(SECRET, ts, body)
    assert verify_signature(SECRET, ts, body, good, now=1700000010.0)
    assert not verify_signature(SECRET, ts, body + b" ", good, now=1700000010.0)
    assert not verify_signature("another-secret-xxxxx", ts, body, good, now=1700000010.0)
    assert not verify_signature(SECRET, ts, body, good, now=1700009999.0)  # too old: replay


def test_webhook_is_signed_and_retried_after_500(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    state, url = receiver
    state.statuses = [500]
    clock = Clock()
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock) as store:
        dispatcher = _dispatcher(store, url)
        event = Fall(camera_id="cam-1", start_ts_s=5.0, track_ids=(3,))
        store.record_events([event])

        assert dispatcher.run_once() == 0  # server answered 500
        [row] = store.list_outbox()
        assert row.attempts == 1 and row.delivered_at is None
        assert row.next_attempt_at == pytest.approx(clock.now + 2.0)
        assert dispatcher.run_once() == 0  # back-off not elapsed: nothing sent
        assert len(state.received) == 1

        clock.now += 2.0
        assert dispatcher.run_once() == 1
        assert store.list_outbox(pending_only=True) == []
        dispatcher.stop()

    assert len(state.received) == 2
    headers, body = state.received[-1]
    assert verify_signature(
        SECRET, headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()]
    )
    payload = json.loads(body)
    assert payload["event_id"] == event.event_id and payload["type"] == "fall"
    assert payload["revision"] == 1


def test_webhook_dead_letters_after_max_attempts(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    state, url = receiver
    state.statuses = [503] * 10
    clock = Clock()
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock) as store:
        dispatcher = _dispatcher(store, url, max_attempts=3)
        store.record_events([Fall(camera_id="cam-1", start_ts_s=5.0)])
        waits = []
        for _ in range(5):
            dispatcher.run_once()
            [row] = store.list_outbox()
            waits.append(row.next_attempt_at - clock.now)
            clock.now += 100.0
        dispatcher.stop()
    assert row.dead and row.attempts == 3 and row.delivered_at is None
    assert waits[:2] == [2.0, 4.0]  # exponential back-off
    assert len(state.received) == 3


def test_background_thread_delivers_after_commit(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    state, url = receiver
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        dispatcher = _dispatcher(store, url)
        dispatcher.start()
        try:
            store.record_events([Fall(camera_id="cam-1", start_ts_s=1.0)])
            delivered = threading.Event()
            for _ in range(200):  # up to 10 s; returns as soon as the row is delivered
                if not store.list_outbox(pending_only=True):
                    delivered.set()
                    break
                delivered.wait(0.05)
        finally:
            dispatcher.stop()
    assert delivered.is_set()
    assert len(state.received) == 1
