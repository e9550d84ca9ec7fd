"""Database tables (SQLAlchemy 2 typed ORM).

The schema is owned by the Alembic migrations in ``crowdsight/store/migrations``; these classes
mirror it for queries, and a test checks that both agree (``alembic check``-style comparison).

Privacy: ``track_descriptions`` holds plain, non-biometric words about what a tracked object
looks like ("black top, grey shorts"). No identity, face/body template or protected trait is
ever stored; `crowdsight.store.descriptions` rejects such fields before they reach this table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from crowdsight.config.camera import (
    DENSITY_EVERY_S_MAX,
    DENSITY_EVERY_S_MIN,
    DETECT_EVERY_MAX,
    DETECT_EVERY_MIN,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations are portable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CameraRow(Base):
    """A configured camera; ``scene`` is the scene config (zones, lines, rules) as JSON."""

    __tablename__ = "cameras"
    __table_args__ = (
        CheckConstraint(
            f"detect_every >= {DETECT_EVERY_MIN} AND detect_every <= {DETECT_EVERY_MAX}",
            name="detect_every_range",
        ),
        CheckConstraint(
            f"density_every_s >= {DENSITY_EVERY_S_MIN} "
            f"AND density_every_s <= {DENSITY_EVERY_S_MAX}",
            name="density_every_s_range",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    loop: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    detect_every: Mapped[int] = mapped_column(Integer, default=1)
    density_every_s: Mapped[float] = mapped_column(Float, default=1.0)
    scene: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    """One event; re-emitting the same ``event_id`` updates this row (``revision`` + 1)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_camera_start", "camera_id", "start_ts_s"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    start_ts_s: Mapped[float] = mapped_column(Float, index=True)
    end_ts_s: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))
    zone_id: Mapped[str | None] = mapped_column(String(64), index=True)
    line_id: Mapped[str | None] = mapped_column(String(64))
    track_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    snapshot_path: Mapped[str | None] = mapped_column(Text)
    snapshot_jpeg: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class EventTrackRow(Base):
    """Which tracks an event is about; lets description text search join events to tracks."""

    __tablename__ = "event_tracks"
    __table_args__ = (Index("ix_event_tracks_camera_track", "camera_id", "track_id"),)

    event_pk: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    track_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    camera_id: Mapped[str] = mapped_column(String(64))


class OutboxRow(Base):
    """One pending (or delivered, or dead) delivery of one event state to one sink."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("event_id", "sink", "revision", name="uq_outbox_event_sink_revision"),
        Index("ix_outbox_pending", "delivered_at", "dead", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.event_id", ondelete="CASCADE"))
    sink: Mapped[str] = mapped_column(String(100))
    revision: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    dead: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class MetricRow(Base):
    """Aggregate of one metric over one storage bucket (sum/count/min/max/last)."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("camera_id", "name", "bucket_ts_s", name="uq_metrics_camera_name_bucket"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    bucket_ts_s: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    last: Mapped[float] = mapped_column(Float)


class TrackDescriptionRow(Base):
    """Plain-words description of one tracked object (no identity, no protected traits)."""

    __tablename__ = "track_descriptions"
    __table_args__ = (
        UniqueConstraint("camera_id", "track_id", name="uq_track_descriptions_camera_track"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    track_id: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen_ts_s: Mapped[float] = mapped_column(Float)
    last_seen_ts_s: Mapped[float] = mapped_column(Float)


class UserRow(Base):
    """A dashboard/API user; ``password_hash`` is an argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)


class ApiTokenRow(Base):
    """An API token or a login session; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)


class AuditRow(Base):
    """Who did what: viewing live video, exporting snapshots, changing users or cameras."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts_s: Mapped[float] = mapped_column(Float, index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(100))
