"""Signed webhooks: POST the event JSON with an HMAC-SHA256 signature.

Headers on each request:

- ``X-Crowdsight-Timestamp``: Unix seconds when the request was signed.
- ``X-Crowdsight-Signature``: ``sha256=<hex>`` of HMAC-SHA256(secret, ``<timestamp>.<body>``).
- ``X-Crowdsight-Event-Id``: the event id (same for each revision and retry; deduplicate on
  event id + ``revision`` in the body, since delivery is at-least-once).

Signing the timestamp with the body lets a receiver reject replays older than a few minutes
(`verify_signature` does both checks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from crowdsight.config.outputs import WebhookSettings

SIGNATURE_HEADER = "X-Crowdsight-Signature"
TIMESTAMP_HEADER = "X-Crowdsight-Timestamp"
EVENT_ID_HEADER = "X-Crowdsight-Event-Id"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``<timestamp>.<body>``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` matches and ``timestamp`` is within ``tolerance_s`` of now.

    Example (receiver side):
        >>> body = b'{"type": "fall"}'
        >>> ts = str(int(time.time()))
        >>> verify_signature("s" * 16, ts, body, sign("s" * 16, ts, body))
        True
    """
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSink:
    """POSTs each event state to one URL; any non-2xx answer or network error raises.

    Args:
        settings: URL, secret and timeout.
        client: optional shared httpx client (tests inject one).
    """

    def __init__(self, settings: WebhookSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.name = f"webhook:{settings.name}"
        self._client = client or httpx.Client(timeout=settings.timeout_s)

    def send(self, payload: dict[str, Any]) -> None:
        """POST the signed JSON; raise on failure."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
            EVENT_ID_HEADER: str(payload.get("event_id", "")),
        }
        response = self._client.post(str(self.settings.url), content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"webhook {self.settings.name} answered {response.status_code}")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
