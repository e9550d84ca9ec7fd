"""Outbox dispatcher: delivers stored event states to sinks, at least once, across restarts.

Events are committed to the store (with one outbox row per sink) before anything is
published. The dispatcher thread reads due rows, sends each to its sink and marks it
delivered; a failure schedules a retry with exponential back-off, and after
``max_attempts`` the row is dead-lettered (kept, flagged, not retried). A crash between
sending and marking means the row is sent again after restart: receivers deduplicate on
``event_id`` + ``revision``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from crowdsight.config.outputs import DeliverySettings, MqttSettings, WebhookSettings
from crowdsight.core.backoff import Backoff
from crowdsight.outputs.mqtt import MqttSink
from crowdsight.outputs.sink import Sink
from crowdsight.outputs.webhook import WebhookSink
from crowdsight.store import OutboxItem, Store

log = logging.getLogger(__name__)


class OutboxDispatcher:
    """A thread (with a stop event) that drains the outbox into sinks.

    Creating the dispatcher registers its sinks with the store, so every event recorded
    afterwards is queued for them. Call `start` to run in the background, or `run_once`
    to deliver synchronously (tests, CLI).

    Args:
        store: the shared store.
        sinks: where to deliver; rows for sinks not given here stay pending.
        policy: retry/back-off settings.
        batch: rows read per pass.
    """

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        policy: DeliverySettings | None = None,
        batch: int = 100,
    ) -> None:
        self.store = store
        self.sinks = {sink.name: sink for sink in sinks}
        self.policy = policy or DeliverySettings()
        self.batch = batch
        self._backoff = Backoff(
            initial_s=self.policy.backoff_base_s, max_s=self.policy.backoff_max_s, jitter=0.0
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0
        store.add_sinks(self.sinks)
        store.add_listener(self._wake.set)

    def backoff_s(self, attempts: int) -> float:
        """Wait before the next try after ``attempts`` failed tries (1, 2, 4, ... capped)."""
        return self._backoff.delay_s(attempts - 1)

    def _deliver(self, item: OutboxItem) -> bool:
        sink = self.sinks[item.sink]
        try:
            sink.send(item.payload)
        except Exception as exc:
            attempts = item.attempts + 1
            dead = attempts >= self.policy.max_attempts
            retry_at = None if dead else self.store.clock() + self.backoff_s(attempts)
            self.store.outbox_failed(item.id, f"{type(exc).__name__}: {exc}", retry_at)
            self.failed += 1
            level = logging.ERROR if dead else logging.WARNING
            log.log(level, "delivery to %s failed (try %d): %s", item.sink, attempts, exc)
            return False
        self.store.outbox_delivered(item.id)
        self.delivered += 1
        return True

    def run_once(self) -> int:
        """Deliver every due row once; returns how many were delivered.

        After a sink fails, its remaining rows wait for the next pass, so a broker that is
        down is not hammered and per-sink order is kept.
        """
        if not self.sinks:
            return 0
        delivered = 0
        while not self._stop.is_set():
            due = self.store.outbox_due(list(self.sinks), limit=self.batch)
            failed_sinks: set[str] = set()
            for item in due:
                if item.sink in failed_sinks or self._stop.is_set():
                    continue
                if self._deliver(item):
                    delivered += 1
                else:
                    failed_sinks.add(item.sink)
            if len(due) < self.batch or failed_sinks:
                break
        return delivered

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                # A database hiccup must not kill delivery for good; try again next poll.
                log.exception("outbox pass failed")
            self._wake.wait(self.policy.poll_s)
            self._wake.clear()

    def start(self) -> None:
        """Run in a daemon thread until `stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="outbox-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0, close_sinks: bool = True) -> None:
        """Stop the thread (undelivered rows stay in the outbox for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if close_sinks:
            for sink in self.sinks.values():
                sink.close()

    def reset(self) -> None:
        """Zero the counters (the outbox itself lives in the store)."""
        self.delivered = 0
        self.failed = 0


def build_sinks(
    mqtt: MqttSettings | None = None, webhooks: Sequence[WebhookSettings] = ()
) -> list[Sink]:
    """Sinks for an optional MQTT broker and any number of webhooks."""
    sinks: list[Sink] = []
    if mqtt is not None:
        sinks.append(MqttSink(mqtt))
    sinks.extend(WebhookSink(hook) for hook in webhooks)
    return sinks
