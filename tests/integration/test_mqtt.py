"""MQTT delivery against a real broker (CROWDSIGHT_TEST_MQTT=host:port, e.g. mosquitto)."""

from __future__ import annotations

import json
import queue
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from crowdsight.core.events import Overcrowding
from crowdsight.outputs import MqttSettings, OutboxDispatcher
from crowdsight.outputs.mqtt import MqttSink, event_topic
from tests.api.support import mqtt_address, open_store

pytestmark = pytest.mark.mqtt


def test_topic_escapes_wildcards() -> None:
    assert event_topic("crowdsight", "cam-1", "fall") == "crowdsight/cam-1/events/fall"
    assert event_topic("cs", "a/b#+", "x") == "cs/a_b__/events/x"


def _subscriber(host: str, port: int, topic: str) -> tuple[mqtt.Client, queue.Queue[bytes]]:
    inbox: queue.Queue[bytes] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.put(True)
    client.on_message = lambda _c, _u, msg: inbox.put(msg.payload)
    client.connect(host, port)
    client.loop_start()
    subscribed.get(timeout=10)
    return client, inbox


def test_event_is_published_after_commit(tmp_path: Path) -> None:
    host, port = mqtt_address()
    prefix = f"cs-test-{uuid.uuid4().hex[:8]}"  # isolates parallel runs on a shared broker
    subscriber, inbox = _subscriber(host, port, f"{prefix}/+/events/#")
    settings = MqttSettings(host=host, port=port, topic_prefix=prefix, client_id=prefix)
    sink = MqttSink(settings)
    try:
        with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
            dispatcher = OutboxDispatcher(store, [sink])
            dispatcher.start()
            event = Overcrowding(camera_id="cam-1", start_ts_s=3.0, count=40.0)
            store.record_events([event])
            message = json.loads(inbox.get(timeout=20))
            assert message["event_id"] == event.event_id
            assert message["type"] == "overcrowding" and message["count"] == 40.0

            store.record_events([event.closed(9.0)])
            closed = json.loads(inbox.get(timeout=20))
            assert closed["end_ts_s"] == 9.0 and closed["revision"] == 2
            dispatcher.stop()
            assert store.list_outbox(pending_only=True) == []
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


def test_unreachable_broker_keeps_rows_pending(tmp_path: Path) -> None:
    settings = MqttSettings(host="127.0.0.1", port=1, client_id="cs-unreachable")
    sink = MqttSink(settings)
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        dispatcher = OutboxDispatcher(store, [sink])
        store.record_events([Overcrowding(camera_id="cam-1", start_ts_s=3.0)])
        assert dispatcher.run_once() == 0
        [row] = store.list_outbox()
        assert row.delivered_at is None and row.attempts == 1 and not row.dead
        assert "not connected" in (row.last_error or "")
        dispatcher.stop()
