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
from crowdsight.describe.colours import COLOUR_NAMES
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


_COLOURS = frozenset(COLOUR_NAMES)
#: Query words → the learned labels they ask about (others match the text only).
_WORD_LABELS: dict[str, tuple[str, ...]] = {
    "top": ("upper:",),
    "upper": ("upper:",),
    "shirt": ("upper:",),
    "jacket": ("upper:",),
    "legwear": ("lower:",),
    "lower": ("lower:",),
    "bottoms": ("lower:",),
    "sleeves": ("short_sleeves",),
    "short": ("short_sleeves", "shorts"),
    "trousers": ("trousers", "jeans"),
    "pants": ("trousers", "jeans"),
    "jeans": ("jeans",),
    "shorts": ("shorts",),
    "skirt": ("skirt",),
    "hat": ("hat",),
    "cap": ("hat",),
    "backpack": ("backpack",),
    "bag": ("backpack", "messenger_bag", "plastic_bag"),
    "shoulder": ("messenger_bag",),
    "plastic": ("plastic_bag",),
    "luggage": ("luggage",),
    "suitcase": ("luggage",),
}


def match_score(words: list[str], text: str, fields: Mapping[str, Any]) -> float | None:
    """How well a description matches query words; None when it does not match.

    Every word must be in the text, or name a label the description states (see
    `_WORD_LABELS`; colour words match the stated colour of any part). With learned
    confidences (``fields["confidences"]``) the score is the lowest confidence among the
    stated labels the words ask about, so "red top" ranks a 0.93 red top above a 0.55 one;
    otherwise every match scores 1.
    """
    text_l = text.lower()
    stated = [str(s) for s in fields.get("stated", [])]
    conf: Mapping[str, Any] = fields.get("confidences") or {}
    scores: list[float] = []
    part_words = [w for w in words if w in ("top", "upper", "lower", "legwear", "bottoms")]
    for w in words:
        if stated and w in _COLOURS:
            parts = [p for pw in part_words for p in _WORD_LABELS[pw]] or ["upper:", "lower:"]
            hits = [s for s in stated if s.endswith(":" + w) and s.startswith(tuple(parts))]
        elif stated and w in _WORD_LABELS and w not in part_words:
            hits = [s for s in stated if s in _WORD_LABELS[w]]
        elif stated and w in part_words:
            continue  # "top" in "red top": scored through the colour word
        elif re.search(r"\b" + re.escape(w), text_l) is None:
            return None
        else:
            continue
        if not hits:
            return None
        scores.append(max(float(conf.get(h, 1.0)) for h in hits))
    return min(scores) if scores else 1.0


def query_descriptions(
    session: Session,
    camera_id: str | None = None,
    limit: int = 100,
    *,
    q: str | None = None,
    min_confidence: float = 0.0,
) -> list[TrackDescription]:
    """Most recently seen descriptions first; with ``q``, only matches, most confident first.

    Args:
        session: open transaction.
        camera_id: only this camera.
        limit: at most this many.
        q: description words ("red top", "backpack"), all required (see `match_score`).
        min_confidence: with ``q``, drop matches whose confidence is below this.
    """
    stmt = select(TrackDescriptionRow).order_by(TrackDescriptionRow.last_seen_ts_s.desc())
    if camera_id is not None:
        stmt = stmt.where(TrackDescriptionRow.camera_id == camera_id)
    words = [w for w in (q or "").lower().replace(",", " ").split() if w]
    rows = session.scalars(stmt if words else stmt.limit(limit)).all()
    scored = []
    for r in rows:
        score = match_score(words, r.text, r.fields or {}) if words else 1.0
        if score is not None and score >= min_confidence:
            scored.append((score, r))
    if words:
        scored.sort(key=lambda sr: -sr[0])  # stable: equally confident stay newest first
    return [
        TrackDescription(
            camera_id=r.camera_id,
            track_id=r.track_id,
            text=r.text,
            fields=r.fields,
            first_seen_ts_s=r.first_seen_ts_s,
            last_seen_ts_s=r.last_seen_ts_s,
        )
        for _, r in scored[:limit]
    ]


def delete_before(session: Session, cutoff_s: float) -> None:
    """Delete descriptions of tracks last seen before ``cutoff_s``."""
    session.execute(
        delete(TrackDescriptionRow).where(TrackDescriptionRow.last_seen_ts_s < cutoff_s)
    )
