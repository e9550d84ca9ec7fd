"""Delivery status of MQTT/webhook outputs: pending and dead-lettered outbox rows (admin)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status

from crowdsight.server.auth import audit, get_store, require_role
from crowdsight.server.schemas import ErrorBody, User
from crowdsight.store import OutboxItem

router = APIRouter(tags=["outputs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Role too low."},
}


@router.get("/api/outbox", responses=_ERRORS, summary="Event deliveries (admin)")
def list_outbox(
    request: Request,
    state: Literal["all", "pending", "dead"] = Query(
        "pending", description="'pending' (not yet delivered), 'dead' (gave up) or 'all'."
    ),
    limit: int = Query(100, ge=1, le=1000, description="At most this many, oldest first."),
    _: User = Depends(require_role("admin")),
) -> list[OutboxItem]:
    """Outbox rows: what MQTT/webhooks still owe, and what was dead-lettered and why."""
    return get_store(request).list_outbox(
        pending_only=state == "pending", dead_only=state == "dead", limit=limit
    )


@router.post(
    "/api/outbox/{row_id}/retry",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="Retry a dead-lettered delivery (admin)",
)
def retry(
    request: Request,
    row_id: int = Path(ge=1, le=2**31 - 1, description="Outbox row id."),
    admin: User = Depends(require_role("admin")),
) -> Response:
    """Give the row a fresh set of attempts (after the sink was fixed)."""
    if not get_store(request).outbox_retry(row_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead-lettered delivery {row_id}")
    audit(request, admin, "outbox.retry", str(row_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
