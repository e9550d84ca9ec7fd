"""Outbox rows: what the dispatcher must deliver, and the bookkeeping of each try."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crowdsight.store.records import OutboxItem
from crowdsight.store.tables import OutboxRow


def _item(r: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=r.id,
        event_id=r.event_id,
        sink=r.sink,
        revision=r.revision,
        payload=r.payload,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        delivered_at=r.delivered_at,
        dead=r.dead,
        last_error=r.last_error,
    )


def due(s: Session, sinks: Sequence[str], now: float, limit: int) -> list[OutboxItem]:
    """Undelivered, not-dead rows for ``sinks`` whose next try is due, oldest first."""
    stmt = (
        select(OutboxRow)
        .where(
            OutboxRow.delivered_at.is_(None),
            OutboxRow.dead.is_(False),
            OutboxRow.next_attempt_at <= now,
            OutboxRow.sink.in_(list(sinks)),
        )
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    return [_item(r) for r in s.scalars(stmt).all()]


def mark_delivered(s: Session, row_id: int, now: float) -> None:
    """Record a successful delivery."""
    row = s.get(OutboxRow, row_id)
    if row is not None:
        row.attempts += 1
        row.delivered_at = now
        row.last_error = None


def mark_failed(s: Session, row_id: int, error: str, retry_at: float | None) -> None:
    """Record a failed try; ``retry_at`` None means give up (dead letter)."""
    row = s.get(OutboxRow, row_id)
    if row is None:
        return
    row.attempts += 1
    row.last_error = error[:2000]
    if retry_at is None:
        row.dead = True
    else:
        row.next_attempt_at = retry_at


def list_outbox(
    s: Session,
    *,
    event_id: str | None = None,
    pending_only: bool = False,
    dead_only: bool = False,
    limit: int | None = None,
) -> list[OutboxItem]:
    """Outbox rows (for tests and operators), oldest first."""
    stmt = select(OutboxRow).order_by(OutboxRow.id)
    if event_id is not None:
        stmt = stmt.where(OutboxRow.event_id == event_id)
    if pending_only:
        stmt = stmt.where(OutboxRow.delivered_at.is_(None), OutboxRow.dead.is_(False))
    if dead_only:
        stmt = stmt.where(OutboxRow.dead.is_(True))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_item(r) for r in s.scalars(stmt).all()]


def retry(s: Session, row_id: int, now: float) -> bool:
    """Give a dead-lettered row a fresh set of attempts; False when no such dead row."""
    row = s.get(OutboxRow, row_id)
    if row is None or not row.dead:
        return False
    row.dead = False
    row.attempts = 0
    row.next_attempt_at = now
    return True


def pending_count(s: Session) -> int:
    """Rows still to deliver (for the Prometheus gauge)."""
    stmt = select(func.count(OutboxRow.id)).where(
        OutboxRow.delivered_at.is_(None), OutboxRow.dead.is_(False)
    )
    return int(s.scalar(stmt) or 0)
