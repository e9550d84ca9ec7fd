"""MQTT sink (paho-mqtt 2): topic ``<prefix>/<camera_id>/events/<type>``, JSON, QoS 1."""

from __future__ import annotations

import json
import re
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from crowdsight.config.outputs import MqttSettings

_TOPIC_UNSAFE = re.compile(r"[+#/\x00]")


def event_topic(prefix: str, camera_id: str, event_type: str) -> str:
    """The topic for an event; wildcard and separator characters in ids become ``_``."""
    cam = _TOPIC_UNSAFE.sub("_", camera_id) or "_"
    kind = _TOPIC_UNSAFE.sub("_", event_type) or "_"
    return f"{prefix}/{cam}/events/{kind}"


class MqttSink:
    """Publishes events to an MQTT broker and waits for the broker's acknowledgement.

    The paho network loop runs in its own thread and reconnects by itself; `send` raises
    while disconnected, so the outbox keeps the row and the dispatcher retries later.

    Args:
        settings: broker address, credentials, topic prefix and QoS.
    """

    name = "mqtt"

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
        )
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.certfile) if settings.certfile else None,
                keyfile=str(settings.keyfile) if settings.keyfile else None,
            )
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.connect_async(settings.host, settings.port, keepalive=30)
        self._client.loop_start()

    def send(self, payload: dict[str, Any]) -> None:
        """Publish and wait for PUBACK (QoS 1) or raise."""
        if not self._client.is_connected():
            raise ConnectionError(
                f"MQTT broker {self.settings.host}:{self.settings.port} not connected"
            )
        topic = event_topic(
            self.settings.topic_prefix,
            str(payload.get("camera_id", "")),
            str(payload.get("type", "event")),
        )
        info = self._client.publish(topic, json.dumps(payload), qos=self.settings.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(timeout=self.settings.publish_timeout_s)
        if not info.is_published():
            raise TimeoutError(f"MQTT broker did not acknowledge {topic} in time")

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
