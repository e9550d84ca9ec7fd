"""Camera CRUD (stored, and applied to the runner when one is attached) and live status."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from crowdsight.config.server import ServerSettings
from crowdsight.core.errors import CrowdsightError, InputError
from crowdsight.core.metrics import SceneMetrics
from crowdsight.server.api_errors import unprocessable
from crowdsight.server.auth import audit, get_store, require_role
from crowdsight.server.schemas import Camera, CameraStatus, ErrorBody, Role, User
from crowdsight.sources.policy import check_source, redact_source
from crowdsight.store import Store
from crowdsight.store.records import SLUG_PATTERN

router = APIRouter(tags=["cameras"])

CAMERA_ID = Path(pattern=SLUG_PATTERN, description="Camera id (slug).")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Role too low."},
}


class RunnerProtocol(Protocol):
    """What the API needs from a camera runner (`crowdsight.pipeline.runner.LocalRunner`)."""

    def add_camera(self, camera: Any) -> None: ...

    def remove_camera(self, camera_id: str) -> None: ...

    def cameras_status(self) -> dict[str, dict[str, Any]]: ...


def _runner(request: Request) -> RunnerProtocol | None:
    runner: RunnerProtocol | None = request.app.state.runner
    return runner


def validate_source(request: Request, camera: Camera) -> None:
    """Refuse a source the server's `SourcePolicy` does not allow (422 on ``source``)."""
    settings: ServerSettings = request.app.state.settings
    try:
        check_source(camera.source, settings.sources)
    except InputError as exc:
        raise unprocessable(str(exc), ("body", "source")) from exc


#: What a non-admin sees instead of a source error: the reason may name paths, hosts or
#: whether a file exists, which only admins (who can read the server's log) may learn.
HIDDEN_ERROR = "the source cannot be read (an admin can see why)"


def shown(camera: Camera) -> Camera:
    """The camera as the API shows it: a stream URL's user and password replaced by ``***``.

    Credentials are returned to nobody, whatever the role; they stay in the store for the
    runner only.
    """
    redacted = redact_source(camera.source)
    return camera if redacted == camera.source else camera.model_copy(update={"source": redacted})


def keep_credentials(store: Store, camera: Camera) -> Camera:
    """A PUT that sends back the redacted URL (``rtsp://***@host/...``) keeps the stored one.

    So an operator can change a camera's name or scene without retyping its password.
    """
    stored = store.get_camera(camera.id)
    if (
        stored is not None
        and "***@" in camera.source
        and redact_source(stored.source) == camera.source
    ):
        return camera.model_copy(update={"source": stored.source})
    return camera


def _apply(request: Request, camera: Camera) -> None:
    runner = _runner(request)
    if runner is None:
        return
    try:
        runner.add_camera(camera)
    except CrowdsightError as exc:
        raise unprocessable(str(exc)) from exc


@router.get("/api/cameras", responses=_ERRORS, summary="List cameras")
def list_cameras(request: Request, _: User = Depends(require_role("viewer"))) -> list[Camera]:
    """Every configured camera (stream passwords hidden)."""
    return [shown(c) for c in get_store(request).list_cameras()]


@router.post(
    "/api/cameras",
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, 409: {"model": ErrorBody, "description": "Id taken."}},
    summary="Add a camera (operator)",
)
def create_camera(
    camera: Camera, request: Request, user: User = Depends(require_role("operator"))
) -> Camera:
    """Store the camera and start it on the runner (when enabled and a runner is attached)."""
    validate_source(request, camera)
    store = get_store(request)
    try:
        store.create_camera(camera)
    except InputError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    try:
        _apply(request, camera)
    except HTTPException:
        store.delete_camera(camera.id)
        raise
    audit(request, user, "camera.create", camera.id)
    return shown(camera)


@router.get(
    "/api/cameras/{camera_id}",
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="One camera",
)
def get_camera(
    request: Request, camera_id: str = CAMERA_ID, _: User = Depends(require_role("viewer"))
) -> Camera:
    """The camera's settings and scene (stream passwords hidden)."""
    camera = get_store(request).get_camera(camera_id)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    return shown(camera)


@router.put(
    "/api/cameras/{camera_id}",
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="Replace a camera's settings and scene (operator)",
)
def update_camera(
    camera: Camera,
    request: Request,
    camera_id: str = CAMERA_ID,
    user: User = Depends(require_role("operator")),
) -> Camera:
    """Store the new settings and restart the camera on the runner with them."""
    if camera.id != camera_id:
        raise unprocessable(
            f"body id {camera.id!r} differs from the URL's {camera_id!r}; ids cannot change",
            ("body", "id"),
        )
    camera = keep_credentials(get_store(request), camera)
    validate_source(request, camera)
    if get_store(request).update_camera(camera) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    _apply(request, camera)
    audit(request, user, "camera.update", camera_id)
    return shown(camera)


@router.delete(
    "/api/cameras/{camera_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="Remove a camera (operator); its events stay",
)
def delete_camera(
    request: Request, camera_id: str = CAMERA_ID, user: User = Depends(require_role("operator"))
) -> Response:
    """Stop the camera on the runner and delete its settings."""
    if not get_store(request).delete_camera(camera_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    runner = _runner(request)
    if runner is not None:
        runner.remove_camera(camera_id)
    audit(request, user, "camera.delete", camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/api/cameras/{camera_id}/status",
    responses={**_ERRORS, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Live status of a camera (from the runner)",
)
def camera_status(
    request: Request, camera_id: str = CAMERA_ID, user: User = Depends(require_role("viewer"))
) -> CameraStatus:
    """State, fps, last frame time, restarts and live counts; 503 when no runner runs."""
    if get_store(request).get_camera(camera_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    runner = _runner(request)
    if runner is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "no camera runner attached to this server"
        )
    detail = runner.cameras_status().get(camera_id)
    if detail is None:
        return CameraStatus(camera_id=camera_id, running=False, state="stopped", detail={})
    detail = dict(detail)
    metrics = SceneMetrics.model_validate(detail.pop("metrics", None) or {})
    if detail.get("error"):
        admin = user.role.allows(Role.ADMIN)
        detail["error"] = redact_source(str(detail["error"])) if admin else HIDDEN_ERROR
    return CameraStatus(
        camera_id=camera_id,
        running=True,
        state=str(detail.get("state", "unknown")),
        metrics=metrics,
        detail=detail,
    )
