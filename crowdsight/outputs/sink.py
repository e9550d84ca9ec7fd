"""The interface every output sink implements."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    """Delivers one event state somewhere; raises on failure so the dispatcher retries.

    ``name`` is the outbox sink key (``"mqtt"``, ``"webhook:<name>"``).
    """

    name: str

    def send(self, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` (the event JSON with ``revision``) or raise."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
