"""At-least-once delivery across a crash: pending outbox rows survive and are sent once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crowdsight.core.events import Fall, Overcrowding
from crowdsight.outputs import DeliverySettings, OutboxDispatcher
from tests.api.conftest import ADMIN_PASSWORD, bearer, login, make_client
from tests.api.support import open_store


class RecordingSink:
    """A sink that keeps what it was sent (and can be told to fail)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.sent: list[dict[str, Any]] = []

    def send(self, payload: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("sink down")
        self.sent.append(payload)

    def close(self) -> None:
        pass


def test_pending_rows_are_delivered_after_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    opened = Overcrowding(camera_id="cam-1", start_ts_s=1.0, count=50.0)
    first_sink = RecordingSink("mqtt")
    with open_store(url, sinks=["mqtt"]) as store:
        dispatcher = OutboxDispatcher(store, [first_sink])
        store.record_events([Fall(camera_id="cam-1", start_ts_s=0.5)])
        assert dispatcher.run_once() == 1  # delivered before the crash
        store.record_events([opened])
        store.record_events([opened.closed(9.0)])
        # "Crash": the dispatcher is dropped without delivering the two new rows.
        del dispatcher

    second_sink = RecordingSink("mqtt")
    with open_store(url, sinks=["mqtt"]) as store:
        assert len(store.list_outbox(pending_only=True)) == 2
        dispatcher = OutboxDispatcher(store, [second_sink])
        assert dispatcher.run_once() == 2
        assert dispatcher.run_once() == 0
        dispatcher.stop()
        assert store.list_outbox(pending_only=True) == []

    assert len(first_sink.sent) == 1
    assert [(p["event_id"], p["revision"], p["end_ts_s"]) for p in second_sink.sent] == [
        (opened.event_id, 1, None),
        (opened.event_id, 2, 9.0),
    ]


def test_a_failing_sink_does_not_block_another(tmp_path: Path) -> None:
    down, up = RecordingSink("webhook:down", fail=True), RecordingSink("mqtt")
    with open_store(f"sqlite:///{tmp_path / 'o.db'}") as store:
        dispatcher = OutboxDispatcher(store, [down, up])
        store.record_events(
            [Fall(camera_id="c", start_ts_s=1.0), Fall(camera_id="c", start_ts_s=2.0)]
        )
        assert dispatcher.run_once() == 2
        rows = store.list_outbox()
        failed = [r for r in rows if r.sink == "webhook:down"]
        # After the first failure, the sink's other row waits for the next pass untouched.
        assert sorted(r.attempts for r in failed) == [0, 1]
        assert all(r.delivered_at is None for r in failed)
        assert len(up.sent) == 2
        dispatcher.stop()


def test_dead_letters_are_listed_and_retried_through_the_api(tmp_path: Path) -> None:
    down = RecordingSink("webhook:ops", fail=True)
    with open_store(f"sqlite:///{tmp_path / 'o.db'}") as store:
        dispatcher = OutboxDispatcher(store, [down], DeliverySettings(max_attempts=1))
        store.record_events([Fall(camera_id="c", start_ts_s=1.0)])
        dispatcher.run_once()
        with make_client(store, None) as client:
            admin = bearer(login(client, "admin", ADMIN_PASSWORD))
            [dead] = client.get("/api/outbox?state=dead", headers=admin).json()
            assert dead["attempts"] == 1 and "sink down" in dead["last_error"]
            assert client.get("/api/outbox", headers=admin).json() == []  # nothing pending
            r = client.post(f"/api/outbox/{dead['id']}/retry", headers=admin)
            assert r.status_code == 204
            assert client.post(f"/api/outbox/{dead['id']}/retry", headers=admin).status_code == 404
        down.fail = False
        assert dispatcher.run_once() == 1
        assert store.list_outbox(pending_only=True) == [] and len(down.sent) == 1
        dispatcher.stop()
