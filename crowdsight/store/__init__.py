"""Persistence: cameras, events with an outbox, metrics, descriptions, users and audit log.

SQLite (WAL) by default, PostgreSQL by URL, both through SQLAlchemy 2 with Alembic migrations
shipped in the package (`Store.migrate`).
"""

from crowdsight.store.events import EventFilter
from crowdsight.store.records import (
    ApiToken,
    AuditEntry,
    Camera,
    EventRecord,
    Flow,
    MetricPoint,
    OutboxItem,
    Role,
    TrackDescription,
    User,
)
from crowdsight.store.store import Store

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Camera",
    "EventFilter",
    "EventRecord",
    "Flow",
    "MetricPoint",
    "OutboxItem",
    "Role",
    "Store",
    "TrackDescription",
    "User",
]
