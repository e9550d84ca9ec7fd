"""Stored records as pydantic models: what the store returns and the HTTP API serves.

These are boundary objects (database rows leaving the store), so they are pydantic v2 with
``extra="forbid"`` and a description on every field; the API reuses them as response models,
so the descriptions appear once, in the OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crowdsight.config.camera import (
    DENSITY_EVERY_S_DEFAULT,
    DETECT_EVERY_DEFAULT,
    DensityEverySeconds,
    DetectEvery,
)
from crowdsight.config.scene import SceneConfig

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def contains_nul(value: Any) -> bool:
    """True when a NUL character hides anywhere in ``value`` (strings, dict keys, lists).

    PostgreSQL text cannot hold NUL, so such input must be refused at the boundary (422)
    rather than fail in the database (500).
    """
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    if isinstance(value, BaseModel):
        return contains_nul(value.model_dump())
    return False


class Record(BaseModel):
    """Base of every stored record: strict about unknown fields, no NUL characters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        for name, value in self.__dict__.items():
            if contains_nul(value):
                raise ValueError(f"{name} contains a NUL character")
        return self


class Role(StrEnum):
    """What a user may do. Each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may do."""
        return self.rank >= needed.rank


class Camera(Record):
    """A camera as configured by an operator (stored, served, and handed to the runner)."""

    id: str = Field(
        pattern=SLUG_PATTERN,
        description="Stable slug used in URLs, MQTT topics and events (a-z, 0-9, '-', '_').",
        examples=["entrance-1"],
    )
    name: str = Field(
        min_length=1, max_length=200, description="Human-readable name shown on the dashboard."
    )
    source: str = Field(
        min_length=1,
        max_length=2000,
        description="Video file path, stream URL (rtsp/http), webcam index or frames folder.",
        examples=["rtsp://10.0.0.5/stream1", "0", "/data/mall/frames"],
    )
    loop: bool = Field(default=False, description="Restart a file source when it ends.")
    enabled: bool = Field(default=True, description="Whether the runner processes this camera.")
    detect_every: DetectEvery = DETECT_EVERY_DEFAULT
    density_every_s: DensityEverySeconds = DENSITY_EVERY_S_DEFAULT
    scene: SceneConfig = Field(
        default_factory=SceneConfig,
        description="Scene configuration: zones, lines, calibration and event rules "
        "(validated here, once; an empty scene means counts and density only).",
    )


class EventRecord(Record):
    """A stored event (its latest state)."""

    event_id: str = Field(description="Stable id; an open event and its closing share it.")
    type: str = Field(description="Event type, e.g. 'overcrowding', 'line_crossed'.")
    camera_id: str = Field(description="Camera that raised the event.")
    start_ts_s: float = Field(description="Start time, seconds since the Unix epoch.")
    end_ts_s: float | None = Field(description="End time; null while the event is still open.")
    severity: str = Field(description="'info', 'warning' or 'critical'.")
    zone_id: str | None = Field(description="Zone the event is about, if any.")
    line_id: str | None = Field(description="Line the event is about, if any.")
    track_ids: list[int] = Field(description="Anonymous per-camera track numbers involved.")
    revision: int = Field(description="1 when first stored, +1 for each later state change.")
    has_snapshot: bool = Field(description="Whether a redacted snapshot JPEG is stored.")
    payload: dict[str, Any] = Field(description="Every field of the event, as emitted.")


class MetricPoint(Record):
    """One bucket of a metric time series."""

    ts_s: float = Field(description="Bucket start, seconds since the Unix epoch.")
    mean: float = Field(description="Mean of the samples in the bucket.")
    min: float = Field(description="Smallest sample in the bucket.")
    max: float = Field(description="Largest sample in the bucket.")
    last: float = Field(description="Latest sample in the bucket.")
    count: int = Field(description="Number of samples in the bucket.")


class TrackDescription(Record):
    """Plain, non-biometric words about a tracked object."""

    camera_id: str = Field(description="Camera the track belongs to.")
    track_id: int = Field(description="Anonymous per-camera track number.")
    text: str = Field(description="Description, e.g. 'black top, grey shorts, carrying a bag'.")
    fields: dict[str, Any] = Field(description="Structured parts, e.g. {'top_colour': 'black'}.")
    first_seen_ts_s: float = Field(description="First time described, epoch seconds.")
    last_seen_ts_s: float = Field(description="Latest time described, epoch seconds.")


class User(Record):
    """A user account (never includes the password hash)."""

    id: int = Field(description="Numeric user id.")
    username: str = Field(description="Login name.")
    role: Role = Field(description="viewer < operator < admin.")
    created_at: float = Field(description="Creation time, epoch seconds.")


class ApiToken(Record):
    """An API token's metadata (the secret is shown once, at creation)."""

    id: int = Field(description="Token id (use it to revoke).")
    name: str = Field(description="Label chosen at creation.")
    kind: str = Field(description="'api' for API tokens, 'session' for login sessions.")
    created_at: float = Field(description="Creation time, epoch seconds.")
    expires_at: float | None = Field(description="Expiry, epoch seconds; null = never.")
    last_used_at: float | None = Field(description="Latest use, epoch seconds.")


class AuditEntry(Record):
    """One audit-log line."""

    id: int = Field(description="Entry id.")
    ts_s: float = Field(description="When, epoch seconds.")
    username: str = Field(description="Who.")
    action: str = Field(description="What, e.g. 'live.view', 'snapshot.export', 'user.create'.")
    detail: str = Field(description="On what, e.g. a camera or event id.")
    client: str | None = Field(description="Client address, when known.")


class OutboxItem(Record):
    """One delivery of one event state to one sink."""

    id: int = Field(description="Outbox row id.")
    event_id: str = Field(description="Event delivered.")
    sink: str = Field(description="Sink name, e.g. 'mqtt' or 'webhook:ops'.")
    revision: int = Field(description="Which state of the event (1 = first).")
    payload: dict[str, Any] = Field(description="Event JSON at that state.")
    attempts: int = Field(description="Delivery attempts so far.")
    next_attempt_at: float = Field(description="Earliest next try, epoch seconds.")
    delivered_at: float | None = Field(description="When delivered; null while pending.")
    dead: bool = Field(description="True once max attempts failed (dead letter).")
    last_error: str | None = Field(description="Latest failure message.")


class Flow(Record):
    """Anonymous count of tracks that went from one zone to the next."""

    camera_id: str = Field(description="Camera.")
    from_zone: str = Field(description="Zone the tracks were in before.")
    to_zone: str = Field(description="Zone they entered next.")
    count: int = Field(description="Number of tracks that made this move in the window.")
