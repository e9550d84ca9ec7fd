"""Typed event records raised by analytics and stored, published and shown.

An event has a stable ``event_id``. Events with a duration are emitted twice: when they
start (``end_ts_s`` is None) and when they end (same ``event_id``, ``end_ts_s`` set); the
store upserts by id, so sinks see an open event update to a closed one. Instant events
(line crossings) are emitted once with ``end_ts_s == start_ts_s``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar


class Severity(StrEnum):
    """How urgently an operator should look."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def new_event_id() -> str:
    """A fresh, globally unique event id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event. Subclasses set ``kind`` and add their own fields."""

    kind: ClassVar[str] = "event"

    camera_id: str
    start_ts_s: float
    end_ts_s: float | None = None
    severity: Severity = Severity.INFO
    zone_id: str | None = None
    line_id: str | None = None
    track_ids: tuple[int, ...] = ()
    snapshot: str | None = None
    frame_index: int | None = None
    reason: str = ""  # why, in the operator's units ("24 people in concourse, limit 20")
    event_id: str = field(default_factory=new_event_id)

    @property
    def is_open(self) -> bool:
        """True while the condition is still going on."""
        return self.end_ts_s is None

    def closed(self, end_ts_s: float, **changes: Any) -> Event:
        """The same event (same id) ended at ``end_ts_s``."""
        return replace(self, end_ts_s=end_ts_s, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``type`` plus every field."""
        d = asdict(self)
        d["type"] = self.kind
        d["severity"] = str(self.severity)
        d["track_ids"] = list(self.track_ids)
        return d


@dataclass(frozen=True, kw_only=True)
class LineCrossed(Event):
    kind: ClassVar[str] = "line_crossed"
    direction: str = "in"  # "in" or "out", relative to the line's configured in-direction
    class_name: str = "person"


@dataclass(frozen=True, kw_only=True)
class ZoneEntered(Event):
    kind: ClassVar[str] = "zone_entered"
    class_name: str = "person"


@dataclass(frozen=True, kw_only=True)
class ZoneExited(Event):
    kind: ClassVar[str] = "zone_exited"
    class_name: str = "person"
    dwell_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Overcrowding(Event):
    kind: ClassVar[str] = "overcrowding"
    count: float = 0.0
    density_per_m2: float | None = None  # None without a ground-plane calibration
    density_per_mpx: float | None = None  # people per megapixel (uncalibrated cameras)
    peak: float = 0.0
    limit: float = 0.0  # the warning limit, persons/m² (calibrated) or people in the zone


@dataclass(frozen=True, kw_only=True)
class CrowdSurge(Event):
    kind: ClassVar[str] = "crowd_surge"
    count: float = 0.0
    rise: float = 0.0  # largest rise within the rule's window, in ``rise_unit``
    rise_unit: str = "persons/m²"  # "persons/m²" with calibration, "persons" without
    density_per_m2: float | None = None  # None without a ground-plane calibration


@dataclass(frozen=True, kw_only=True)
class Running(Event):
    kind: ClassVar[str] = "running"
    speed: float = 0.0
    speed_unit: str = "m/s"  # "m/s" with calibration, "px/s" without


@dataclass(frozen=True, kw_only=True)
class Dispersal(Event):
    kind: ClassVar[str] = "dispersal"
    divergence: float = 0.0
    n_tracks: int = 0


@dataclass(frozen=True, kw_only=True)
class Loitering(Event):
    kind: ClassVar[str] = "loitering"
    dwell_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class WrongWay(Event):
    kind: ClassVar[str] = "wrong_way"
    angle_deg: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Fall(Event):
    kind: ClassVar[str] = "fall"


@dataclass(frozen=True, kw_only=True)
class Intrusion(Event):
    kind: ClassVar[str] = "intrusion"
    class_name: str = "person"


@dataclass(frozen=True, kw_only=True)
class Anomaly(Event):
    kind: ClassVar[str] = "anomaly"
    score: float = 0.0
    method: str = "cells"  # "objects": the camera's learned object model; "cells": motion
    xyxy: tuple[float, float, float, float] | None = None  # the abnormal object's box (pixels)
    object_class: str | None = None  # its class ("person", "bicycle", "motion", ...)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        LineCrossed,
        ZoneEntered,
        ZoneExited,
        Overcrowding,
        CrowdSurge,
        Running,
        Dispersal,
        Loitering,
        WrongWay,
        Fall,
        Intrusion,
        Anomaly,
    )
}


def event_from_dict(d: dict[str, Any]) -> Event:
    """Inverse of `Event.to_dict`."""
    d = dict(d)
    cls = EVENT_TYPES[d.pop("type")]
    d["severity"] = Severity(d.get("severity", "info"))
    d["track_ids"] = tuple(d.get("track_ids", ()))
    return cls(**d)


def stable_event_id(salt: str, camera_id: str, kind: str, frame_index: int, ordinal: int) -> str:
    """An event id derived from where the event was first raised (same inputs, same id).

    Example:
        >>> stable_event_id("s", "cam", "fall", 7, 0) == stable_event_id("s", "cam", "fall", 7, 0)
        True
    """
    key = f"{salt}|{camera_id}|{kind}|{frame_index}|{ordinal}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class OpenEvents:
    """The one ledger of a camera's open events: stable ids, and closing what a worker left open.

    Analytics give events random ids. The ledger replaces each new event's id by a hash of
    (session salt, camera, kind, frame index, ordinal within the frame) and keeps the event
    while it is open, so its closing copy gets the same id. A worker that restarts and
    re-processes frames after the last committed one therefore re-creates the very same ids,
    and the store's upsert by id turns the replay into a no-op instead of duplicates.

    The ledger lives with whoever commits the events (the runner's collector, one per camera):
    when a worker dies, `close_all` gives the closing copies of everything it left open (a
    restarted pipeline cannot close what it never saw open) and empties the ledger.

    Args:
        camera_id: Camera the events belong to.
        salt: Session salt: ids repeat for replays within a session, never across sessions.

    Example:
        >>> ledger = OpenEvents("cam", salt="s1")
        >>> [opened] = ledger.assign([Fall(camera_id="cam", start_ts_s=1.0)], frame_index=10)
        >>> [closing] = ledger.close_all(end_ts_s=2.0)
        >>> closing.event_id == opened.event_id, closing.end_ts_s, len(ledger)
        (True, 2.0, 0)
    """

    def __init__(self, camera_id: str, salt: str) -> None:
        self.camera_id = camera_id
        self.salt = salt
        self.reset()

    def reset(self) -> None:
        """Forget every open event."""
        #: Analytics' own id -> the open event as committed (stable id).
        self._open: dict[str, Event] = {}

    def __len__(self) -> int:
        return len(self._open)

    def assign(self, events: Iterable[Event], frame_index: int) -> list[Event]:
        """The events of one frame with stable ids; open ones are kept until they close."""
        out: list[Event] = []
        ordinal = 0
        for ev in events:
            known = self._open.get(ev.event_id)
            if known is None:
                sid = stable_event_id(self.salt, self.camera_id, ev.kind, frame_index, ordinal)
                ordinal += 1
            else:
                sid = known.event_id
            stable = replace(ev, event_id=sid)
            if stable.is_open:
                self._open[ev.event_id] = stable
            else:
                self._open.pop(ev.event_id, None)
            out.append(stable)
        return out

    def close_all(self, end_ts_s: float | None) -> list[Event]:
        """Closing copies of every open event at ``end_ts_s``; the ledger is emptied.

        Args:
            end_ts_s: Time of the last committed frame; None closes each event at its start.
        """
        closed = [
            ev.closed(end_ts_s if end_ts_s is not None else ev.start_ts_s)
            for ev in self._open.values()
        ]
        self.reset()
        return closed
