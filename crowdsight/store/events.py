"""Event upsert (with outbox rows) and event queries."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, select
from sqlalchemy.orm import Session

from crowdsight.core.events import Event
from crowdsight.core.metrics import FLOW_ROW_PREFIX, parse_flow_row_name
from crowdsight.store.records import EventRecord, Flow
from crowdsight.store.tables import (
    EventRow,
    EventTrackRow,
    MetricRow,
    OutboxRow,
    TrackDescriptionRow,
)


@dataclass(frozen=True)
class EventFilter:
    """What `query_events` selects. Every field is optional and they combine with AND.

    Attributes:
        camera_id: only this camera.
        type: only this event type (e.g. ``"overcrowding"``).
        zone_id: only events about this zone.
        since: events that started at or after this time (epoch seconds).
        until: events that started at or before this time.
        q: description words; an event matches when one of its tracks has a description
            containing every word (case-insensitive), e.g. ``"red top"``.
        limit: at most this many, newest first.
        offset: skip this many (paging).
    """

    camera_id: str | None = None
    type: str | None = None
    zone_id: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None
    limit: int = 100
    offset: int = 0


def _clean_json(value: Any) -> Any:
    """Replace non-finite floats (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def event_payload(event: Event) -> dict[str, Any]:
    """The JSON stored, published and served for ``event``."""
    payload: dict[str, Any] = _clean_json(event.to_dict())
    return payload


def _write_snapshot(snapshot_dir: Path, event: Event, jpeg: bytes) -> str:
    folder = snapshot_dir / event.camera_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{event.event_id}.jpg"
    path.write_bytes(jpeg)
    return str(path)


def _set_tracks(session: Session, row: EventRow, track_ids: Iterable[int]) -> None:
    session.execute(delete(EventTrackRow).where(EventTrackRow.event_pk == row.id))
    for track_id in sorted(set(track_ids)):
        session.add(EventTrackRow(event_pk=row.id, track_id=track_id, camera_id=row.camera_id))


def _apply(row: EventRow, event: Event, payload: dict[str, Any], now: float) -> None:
    row.type = event.kind
    row.camera_id = event.camera_id
    row.start_ts_s = event.start_ts_s
    row.end_ts_s = event.end_ts_s
    row.severity = str(event.severity)
    row.zone_id = event.zone_id
    row.line_id = event.line_id
    row.track_ids = [int(t) for t in event.track_ids]
    row.payload = payload
    row.updated_at = now


def upsert_events(
    session: Session,
    events: Sequence[Event],
    *,
    snapshots: Mapping[str, bytes] | None,
    sinks: Sequence[str],
    snapshot_dir: Path | None,
    now: float,
) -> list[str]:
    """Insert or update ``events`` by ``event_id`` and queue one outbox row per sink per change.

    Replaying an event whose stored state is identical changes nothing (no new revision, no
    outbox row), so a runner that re-sends after a crash never duplicates deliveries.

    Returns:
        The ids of the events whose state changed (new or updated).
    """
    changed: list[str] = []
    snapshots = snapshots or {}
    # One query for the rows that exist already (the runner records in batches).
    ids = list({e.event_id for e in events})
    existing = {
        r.event_id: r for r in session.scalars(select(EventRow).where(EventRow.event_id.in_(ids)))
    }
    for event in events:
        payload = event_payload(event)
        row = existing.get(event.event_id)
        if row is None:
            row = EventRow(event_id=event.event_id, revision=1, created_at=now)
            _apply(row, event, payload, now)
            session.add(row)
            session.flush()
            existing[event.event_id] = row
        elif row.payload == payload:
            row = None
        else:
            row.revision += 1
            _apply(row, event, payload, now)
        jpeg = snapshots.get(event.event_id)
        if jpeg is not None:
            stored = existing[event.event_id]
            if snapshot_dir is not None:
                stored.snapshot_path = _write_snapshot(snapshot_dir, event, jpeg)
            else:
                stored.snapshot_jpeg = jpeg
        if row is None:
            continue
        _set_tracks(session, row, row.track_ids)
        for sink in sinks:
            session.add(
                OutboxRow(
                    event_id=row.event_id,
                    sink=sink,
                    revision=row.revision,
                    payload=dict(payload, revision=row.revision),
                    attempts=0,
                    next_attempt_at=now,
                    dead=False,
                    created_at=now,
                )
            )
        changed.append(row.event_id)
    return changed


def to_record(row: EventRow, has_blob: bool) -> EventRecord:
    """The API/store view of an event row (``has_blob``: a snapshot is stored inline)."""
    return EventRecord(
        event_id=row.event_id,
        type=row.type,
        camera_id=row.camera_id,
        start_ts_s=row.start_ts_s,
        end_ts_s=row.end_ts_s,
        severity=row.severity,
        zone_id=row.zone_id,
        line_id=row.line_id,
        track_ids=list(row.track_ids),
        revision=row.revision,
        has_snapshot=row.snapshot_path is not None or has_blob,
        payload=row.payload,
    )


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _description_match(q: str) -> Any:
    """EXISTS clause: one of the event's tracks has a description containing every word."""
    words = [w for w in q.lower().replace(",", " ").split() if w]
    conditions = [
        func.lower(TrackDescriptionRow.text).like(f"%{_escape_like(w)}%", escape="\\")
        for w in words
    ]
    return exists(
        select(EventTrackRow.event_pk)
        .join(
            TrackDescriptionRow,
            and_(
                TrackDescriptionRow.camera_id == EventTrackRow.camera_id,
                TrackDescriptionRow.track_id == EventTrackRow.track_id,
            ),
        )
        .where(EventTrackRow.event_pk == EventRow.id, *conditions)
    )


def events_select(f: EventFilter) -> Select[EventRow, bool]:
    """The SELECT for ``f`` (newest first), with a has-snapshot flag that avoids the blob."""
    has_blob = EventRow.snapshot_jpeg.is_not(None).label("has_blob")
    stmt = select(EventRow, has_blob)
    if f.camera_id is not None:
        stmt = stmt.where(EventRow.camera_id == f.camera_id)
    if f.type is not None:
        stmt = stmt.where(EventRow.type == f.type)
    if f.zone_id is not None:
        stmt = stmt.where(EventRow.zone_id == f.zone_id)
    if f.since is not None:
        stmt = stmt.where(EventRow.start_ts_s >= f.since)
    if f.until is not None:
        stmt = stmt.where(EventRow.start_ts_s <= f.until)
    if f.q is not None and f.q.strip():
        stmt = stmt.where(_description_match(f.q))
    return stmt.order_by(EventRow.start_ts_s.desc(), EventRow.id.desc())


def query_events(session: Session, f: EventFilter) -> list[EventRecord]:
    """Events matching ``f``, newest first."""
    stmt = events_select(f).limit(f.limit).offset(f.offset)
    return [to_record(row, bool(has_blob)) for row, has_blob in session.execute(stmt).all()]


def get_event(session: Session, event_id: str) -> EventRecord | None:
    """One event by id, or None."""
    found = session.execute(events_select(EventFilter()).where(EventRow.event_id == event_id))
    first = found.first()
    if first is None:
        return None
    row, has_blob = first
    return to_record(row, bool(has_blob))


def get_snapshot(session: Session, event_id: str) -> bytes | None:
    """The stored (redacted) snapshot JPEG of an event, or None."""
    row = session.scalars(select(EventRow).where(EventRow.event_id == event_id)).first()
    if row is None:
        return None
    if row.snapshot_path is not None:
        path = Path(row.snapshot_path)
        return path.read_bytes() if path.is_file() else None
    return row.snapshot_jpeg


def zone_flows(
    session: Session, camera_id: str | None, since: float | None, until: float | None
) -> list[Flow]:
    """Anonymous zone-to-zone counts from the order in which tracks entered zones.

    A track that entered zone A and later zone B counts once for A→B. Track ids are used only
    inside this aggregate; nothing per track is returned.
    """
    stmt = (
        select(EventRow.camera_id, EventTrackRow.track_id, EventRow.zone_id)
        .join(EventTrackRow, EventTrackRow.event_pk == EventRow.id)
        .where(EventRow.type == "zone_entered", EventRow.zone_id.is_not(None))
        .order_by(EventRow.camera_id, EventTrackRow.track_id, EventRow.start_ts_s)
    )
    if camera_id is not None:
        stmt = stmt.where(EventRow.camera_id == camera_id)
    if since is not None:
        stmt = stmt.where(EventRow.start_ts_s >= since)
    if until is not None:
        stmt = stmt.where(EventRow.start_ts_s <= until)
    counts = _metric_flows(session, camera_id, since, until)
    measured = {cam for cam, _, _ in counts}
    previous: dict[tuple[str, int], str] = {}
    for cam, track_id, zone in session.execute(stmt).all():
        if cam in measured:
            continue  # this camera reports its flows as counters (below); don't count twice
        if zone is None:
            continue
        key = (cam, track_id)
        before = previous.get(key)
        if before is not None and before != zone:
            counts[(cam, before, zone)] += 1
        previous[key] = zone
    return [
        Flow(camera_id=cam, from_zone=a, to_zone=b, count=n)
        for (cam, a, b), n in sorted(counts.items())
    ]


def _metric_flows(
    session: Session, camera_id: str | None, since: float | None, until: float | None
) -> Counter[tuple[str, str, str]]:
    """Transitions counted by the cameras' ``flow:<a>><b>`` counters within the window.

    Each stored bucket holds the counter's last value; the flows of a bucket are its rise over
    the bucket before (a drop means the pipeline restarted from zero: the new value counts).
    Buckets before ``since`` are read only to know where the counter stood.
    """
    stmt = (
        select(MetricRow.camera_id, MetricRow.name, MetricRow.bucket_ts_s, MetricRow.last)
        .where(MetricRow.name.startswith(FLOW_ROW_PREFIX))
        .order_by(MetricRow.camera_id, MetricRow.name, MetricRow.bucket_ts_s)
    )
    if camera_id is not None:
        stmt = stmt.where(MetricRow.camera_id == camera_id)
    if until is not None:
        stmt = stmt.where(MetricRow.bucket_ts_s <= until)
    counts: Counter[tuple[str, str, str]] = Counter()
    last: dict[tuple[str, str], float] = {}
    for cam, name, ts, value in session.execute(stmt).all():
        before = last.get((cam, name))
        rise = value if before is None or value < before else value - before
        last[(cam, name)] = value
        pair = parse_flow_row_name(name)
        if pair is not None and rise > 0 and (since is None or ts >= since):
            counts[(cam, *pair)] += round(rise)
    return counts


def delete_before(session: Session, cutoff_s: float) -> tuple[int, list[str]]:
    """Delete events that ended (or, still open, started) before ``cutoff_s``.

    Their track links and outbox rows go with them (foreign keys cascade).

    Returns:
        How many events were deleted, and the snapshot files they referenced.
    """
    ended = func.coalesce(EventRow.end_ts_s, EventRow.start_ts_s)
    doomed = select(EventRow.id, EventRow.snapshot_path).where(ended < cutoff_s)
    rows = session.execute(doomed).all()
    ids = [r[0] for r in rows]
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        # Explicit deletes: SQLite only cascades with foreign keys on, and bulk deletes skip
        # ORM cascades, so dependants are removed first, in the same transaction.
        event_ids = select(EventRow.event_id).where(EventRow.id.in_(part))
        session.execute(delete(OutboxRow).where(OutboxRow.event_id.in_(event_ids)))
        session.execute(delete(EventTrackRow).where(EventTrackRow.event_pk.in_(part)))
        session.execute(delete(EventRow).where(EventRow.id.in_(part)))
    return len(ids), [r[1] for r in rows if r[1]]
