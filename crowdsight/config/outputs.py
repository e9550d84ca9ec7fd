"""Output configuration (MQTT broker, webhooks, delivery retry policy)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl


class MqttSettings(BaseModel):
    """Where to publish events over MQTT."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: str = Field(default="127.0.0.1", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(default=None, description="Broker user name, if required.")
    password: str | None = Field(default=None, description="Broker password, if required.")
    tls: bool = Field(
        default=False, description="Connect over TLS (usually port 8883); verifies the broker."
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the broker's certificate (PEM); "
        "default: the system's trusted CAs.",
    )
    certfile: Path | None = Field(
        default=None, description="Client certificate (PEM), if the broker asks for one."
    )
    keyfile: Path | None = Field(default=None, description="Key of the client certificate.")
    topic_prefix: str = Field(
        default="crowdsight",
        description="Topics are <prefix>/<camera_id>/events/<type>.",
    )
    qos: int = Field(default=1, ge=0, le=2, description="MQTT QoS; 1 = at least once.")
    client_id: str = Field(default="crowdsight", description="MQTT client id.")
    publish_timeout_s: float = Field(
        default=5.0, gt=0, description="How long to wait for the broker's PUBACK before retrying."
    )


class WebhookSettings(BaseModel):
    """One HTTP endpoint that receives each event state as signed JSON."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Short name; the outbox sink is 'webhook:<name>'.",
    )
    url: HttpUrl = Field(description="Endpoint receiving POST requests with the event JSON.")
    secret: str = Field(
        min_length=16,
        description="Shared secret for the HMAC-SHA256 signature header (16+ characters).",
    )
    timeout_s: float = Field(default=5.0, gt=0, description="HTTP timeout per try.")


class DeliverySettings(BaseModel):
    """Retry policy of the outbox dispatcher."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_attempts: int = Field(
        default=10, ge=1, description="Tries before a delivery is dead-lettered."
    )
    backoff_base_s: float = Field(
        default=1.0, gt=0, description="Wait after the first failure; doubles per failure."
    )
    backoff_max_s: float = Field(default=300.0, gt=0, description="Longest wait between tries.")
    poll_s: float = Field(
        default=1.0, gt=0, description="How often the dispatcher looks for due rows when idle."
    )
