"""Outputs: the outbox dispatcher and its sinks (MQTT, signed webhooks)."""

from crowdsight.config.outputs import DeliverySettings, MqttSettings, WebhookSettings
from crowdsight.outputs.dispatcher import OutboxDispatcher, build_sinks
from crowdsight.outputs.sink import Sink

__all__ = [
    "DeliverySettings",
    "MqttSettings",
    "OutboxDispatcher",
    "Sink",
    "WebhookSettings",
    "build_sinks",
]
