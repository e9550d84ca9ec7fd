"""Track descriptions: plain words about clothing colours, carried objects, vehicle type.

Privacy by construction: descriptions never carry identity or protected traits. Field names
and text are screened here, at the store boundary, so no caller can persist them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crowdsight.core.errors import InputError
from crowdsight.store.records import TrackDescription
from crowdsight.store.tables import TrackDescriptionRow

log = logging.getLogger(__name__)

#: Words that must never appear in a stored description's field names or text.
FORBIDDEN_TERMS = (
    "gender",
    "sex",
    "male",
    "female",
    "man",
    "woman",
    "boy",
    "girl",
    "age",
    "child",
    "elderly",
    "ethnic",
    "ethnicity",
    "race",
    "racial",
    "skin",
    "religion",
    "religious",
    "health",
    "disabled",
    "disability",
    "pregnant",
    "face",
    "identity",
    "name",
    "embedding",
    "template",
    "reid",
)
_FORBIDDEN_RE = re.compile(r"\b(" + "|".join(FORBIDDEN_TERMS) + r")s?\b", re.IGNORECASE)


def _screen(text: str, what: str) -> None:
    match = _FORBIDDEN_RE.search(text.replace("_", " "))
    if match:
        raise InputError(
            f"track description {what} mentions {match.group(0)!r}: crowdsight stores no "
            "identity or protected traits, only clothing colours, carried objects, vehicle type"
        )


def _check(item: Mapping[str, Any]) -> tuple[int, str, dict[str, Any], float, float]:
    try:
        track_id = int(item["track_id"])
        text = str(item["text"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"track description needs 'track_id' and 'text': {exc}") from exc
    fields = dict(item.get("fields") or {})
    first = float(item.get("first_seen_ts_s", item.get("ts_s", 0.0)))
    last = float(item.get("last_seen_ts_s", item.get("ts_s", first)))
    _screen(text, "text")
    for key, value in fields.items():
        _screen(str(key), "field")
        if isinstance(value, str):
            _screen(value, f"field {key!r}")
    return track_id, text, fields, first, last


def record_descriptions(
    session: Session,
    camera_id: str,
    items: Iterable[Mapping[str, Any]],
    *,
    strict: bool = False,
) -> int:
    """Insert or update one description per (camera, track).

    Each item: ``track_id`` (int), ``text`` (str), optional ``fields`` (dict of plain values),
    ``ts_s`` or ``first_seen_ts_s``/``last_seen_ts_s``. A later description of the same track
    replaces the text and fields and extends ``last_seen_ts_s``.

    Args:
        session: open transaction.
        camera_id: camera the tracks belong to.
        items: descriptions to store.
        strict: raise on the first refused item; otherwise refused items are skipped and
            logged, so one bad description cannot drop a live camera's whole batch.

    Returns:
        How many items were stored.

    Raises:
        InputError: (strict only) an item is malformed or mentions identity or a protected
            trait.
    """
    n = 0
    for item in items:
        try:
            track_id, text, fields, first, last = _check(item)
        except InputError as exc:
            if strict:
                raise
            log.warning("camera %s: description refused: %s", camera_id, exc)
            continue
        row = session.scalars(
            select(TrackDescriptionRow).where(
                TrackDescriptionRow.camera_id == camera_id,
                TrackDescriptionRow.track_id == track_id,
            )
        ).first()
        if row is None:
            session.add(
                TrackDescriptionRow(
                    camera_id=camera_id,
                    track_id=track_id,
                    text=text,
                    fields=fields,
                    first_seen_ts_s=first,
                    last_seen_ts_s=max(first, last),
                )
            )
        else:
            row.text = text
            row.fields = fields
            row.first_seen_ts_s = min(row.first_seen_ts_s, first)
            row.last_seen_ts_s = max(row.last_seen_ts_s, last)
        session.flush()
        n += 1
    return n


def query_descriptions(
    session: Session, camera_id: str | None = None, limit: int = 100
) -> list[TrackDescription]:
    """Most recently seen descriptions first."""
    stmt = select(TrackDescriptionRow).order_by(TrackDescriptionRow.last_seen_ts_s.desc())
    if camera_id is not None:
        stmt = stmt.where(TrackDescriptionRow.camera_id == camera_id)
    return [
        TrackDescription(
            camera_id=r.camera_id,
            track_id=r.track_id,
            text=r.text,
            fields=r.fields,
            first_seen_ts_s=r.first_seen_ts_s,
            last_seen_ts_s=r.last_seen_ts_s,
        )
        for r in session.scalars(stmt.limit(limit)).all()
    ]


def delete_before(session: Session, cutoff_s: float) -> None:
    """Delete descriptions of tracks last seen before ``cutoff_s``."""
    session.execute(
        delete(TrackDescriptionRow).where(TrackDescriptionRow.last_seen_ts_s < cutoff_s)
    )
