"""Event search (time, type, camera, zone, description words), snapshots, flows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status

from crowdsight.server.auth import audit, get_store, require_role
from crowdsight.server.schemas import ErrorBody, EventRecord, Flow, TrackDescription, User
from crowdsight.store import EventFilter

router = APIRouter(tags=["events"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Role too low."},
}
EVENT_ID = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Event id.")
CAMERA_Q = Query(None, max_length=64, description="Only this camera.")
SINCE_Q = Query(
    None, allow_inf_nan=False, description="Started at or after (epoch seconds).", ge=0, le=1e11
)
UNTIL_Q = Query(
    None, allow_inf_nan=False, description="Started at or before (epoch seconds).", ge=0, le=1e11
)


@router.get("/api/events", responses=_ERRORS, summary="Search events")
def list_events(
    request: Request,
    camera_id: str | None = CAMERA_Q,
    type: str | None = Query(None, max_length=40, description="e.g. 'overcrowding'."),
    zone_id: str | None = Query(None, max_length=64, description="Only events about this zone."),
    since: float | None = SINCE_Q,
    until: float | None = UNTIL_Q,
    q: str | None = Query(
        None,
        max_length=200,
        description="Description words, all required, e.g. 'red top' matches events whose "
        "tracks were described with 'red' and 'top'.",
    ),
    limit: int = Query(100, ge=1, le=1000, description="At most this many, newest first."),
    offset: int = Query(0, ge=0, le=1_000_000, description="Skip this many (paging)."),
    _: User = Depends(require_role("viewer")),
) -> list[EventRecord]:
    """Events, newest first, filtered by every given parameter."""
    f = EventFilter(
        camera_id=camera_id,
        type=type,
        zone_id=zone_id,
        since=since,
        until=until,
        q=q,
        limit=limit,
        offset=offset,
    )
    return get_store(request).query_events(f)


@router.get(
    "/api/events/{event_id}",
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="One event",
)
def get_event(
    request: Request, event_id: str = EVENT_ID, _: User = Depends(require_role("viewer"))
) -> EventRecord:
    """The event's latest state."""
    event = get_store(request).get_event(event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r}")
    return event


@router.get(
    "/api/events/{event_id}/snapshot",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"content": {"image/jpeg": {}}, "description": "Redacted snapshot."},
        404: {"model": ErrorBody},
    },
    summary="The event's redacted snapshot (JPEG; audited export)",
)
def event_snapshot(
    request: Request, event_id: str = EVENT_ID, user: User = Depends(require_role("viewer"))
) -> Response:
    """The JPEG stored with the event; heads were blurred before it was stored."""
    jpeg = get_store(request).get_snapshot(event_id)
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id!r} has no snapshot")
    audit(request, user, "snapshot.export", event_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private"})


@router.get("/api/flows", responses=_ERRORS, summary="Zone-to-zone flows (anonymous counts)")
def flows(
    request: Request,
    camera_id: str | None = CAMERA_Q,
    since: float | None = SINCE_Q,
    until: float | None = UNTIL_Q,
    _: User = Depends(require_role("viewer")),
) -> list[Flow]:
    """How many tracks entered one zone after another (no per-person data)."""
    return get_store(request).flows(camera_id=camera_id, since=since, until=until)


@router.get("/api/descriptions", responses=_ERRORS, summary="Latest plain-words track descriptions")
def descriptions(
    request: Request,
    camera_id: str | None = CAMERA_Q,
    limit: int = Query(100, ge=1, le=1000, description="At most this many, latest first."),
    q: str | None = Query(
        None,
        max_length=200,
        description="Description words, all required, e.g. 'red top' or 'backpack'; matches "
        "are ordered by the confidence of the matched attributes.",
    ),
    min_confidence: float = Query(
        0.0, ge=0.0, le=1.0, description="With q: drop matches less confident than this."
    ),
    _: User = Depends(require_role("viewer")),
) -> list[TrackDescription]:
    """Clothing colours, carried objects, vehicle types: never identity or protected traits."""
    return get_store(request).query_descriptions(
        camera_id, limit, q=q, min_confidence=min_confidence
    )
