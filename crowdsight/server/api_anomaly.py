"""A camera's learned normal: its object anomaly model's state, and "learn normal now".

The camera's worker learns and scores (`crowdsight.analytics.object_anomaly_live`); this
router only reads and writes the camera's model folder (``<data dir>/anomaly/<camera id>``):
``POST .../anomaly/learn`` leaves a learning request there, which the worker picks up within a
second; ``GET .../anomaly`` reads the state the worker wrote (learning progress, the model's
version, footage range and objects) and shows a request not picked up yet as learning.
Learning again while a model exists re-learns: the old model keeps scoring until the new one
is ready.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import Field

from crowdsight.analytics.object_anomaly_live import (
    AnomalyModelState,
    LearnedModel,
    LearningProgress,
    LearnRequest,
    ModelFiles,
)
from crowdsight.config.scene import AnomalyRule
from crowdsight.server.api_cameras import CAMERA_ID
from crowdsight.server.auth import audit, get_store, require_role
from crowdsight.server.schemas import Body, ErrorBody, User
from crowdsight.store.engine import data_dir

router = APIRouter(tags=["cameras"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Role too low."},
    404: {"model": ErrorBody, "description": "No such camera."},
}

#: Longest learning window one request may ask for (a day).
MAX_LEARN_S = 86_400.0


class LearnBody(Body):
    """How long to learn the camera's normal for, from now."""

    duration_s: float = Field(
        gt=0,
        le=MAX_LEARN_S,
        description="Seconds of footage to learn from (e.g. 600 for ten minutes). Choose a "
        "period of ordinary activity: whatever happens in it counts as normal.",
    )


class AnomalyStatus(Body):
    """A camera's object anomaly model: learning or ready, and what it learned from."""

    camera_id: str = Field(description="Camera.")
    state: str = Field(
        description="'idle' (no object model: the label-free cell model scores if enabled), "
        "'learning' (a window is under way or requested; an older model keeps scoring) or "
        "'ready' (the learned model scores every frame)."
    )
    model: LearnedModel | None = Field(None, description="The model scoring now, if any.")
    learning: LearningProgress | None = Field(None, description="The window under way.")
    requested: LearnRequest | None = Field(
        None, description="A learning request the camera has not picked up yet."
    )
    problem: str | None = Field(None, description="Why there is no model when there should be.")
    enter_score: float = Field(
        description="Score above which an Anomaly event opens, for the model that scores now "
        "(the chart's threshold line)."
    )
    updated_ts: float | None = Field(None, description="When the camera last reported it.")


def anomaly_root(request: Request) -> FsPath:
    """Where camera model folders are: the runner's ``anomaly_dir``, else the data dir's."""
    runner = request.app.state.runner
    configured = getattr(getattr(runner, "settings", None), "anomaly_dir", None)
    if isinstance(configured, FsPath):
        return configured
    return FsPath(request.app.state.settings.data_dir or data_dir()) / "anomaly"


def _camera(request: Request, camera_id: str) -> Any:
    camera = get_store(request).get_camera(camera_id)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
    return camera


def anomaly_status(camera: Any, files: ModelFiles) -> AnomalyStatus:
    """What the API shows: the camera's own report, with a pending request as learning."""
    written = files.read_state()
    if written is None:  # the camera never reported (not started yet): read the model file
        model, problem = files.load_model()
        written = AnomalyModelState(
            state="ready" if model is not None else "idle",
            model=files.model_info(model) if model is not None else None,
            problem=problem,
            updated_ts=0.0,
        )
    pending = files.pending_request()
    if pending is not None and pending.requested_ts < written.updated_ts and written.learning:
        pending = None  # picked up: the camera reports its progress
    state = "learning" if pending is not None else written.state
    scene = getattr(camera, "scene", None)
    rule: AnomalyRule = scene.rules.anomaly if scene is not None else AnomalyRule()
    return AnomalyStatus(
        camera_id=camera.id,
        state=state,
        model=written.model,
        learning=written.learning,
        requested=pending,
        problem=None if pending is not None else written.problem,
        enter_score=rule.objects_enter_score if written.model is not None else rule.enter_score,
        updated_ts=written.updated_ts or None,
    )


@router.get(
    "/api/cameras/{camera_id}/anomaly",
    responses=_ERRORS,
    summary="The camera's learned normal (object anomaly model)",
)
def get_anomaly(
    request: Request, camera_id: str = CAMERA_ID, _: User = Depends(require_role("viewer"))
) -> AnomalyStatus:
    """Learning (with progress) or ready (version, footage range, objects learned)."""
    camera = _camera(request, camera_id)
    return anomaly_status(camera, ModelFiles(anomaly_root(request) / camera_id))


@router.post(
    "/api/cameras/{camera_id}/anomaly/learn",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_ERRORS,
        409: {"model": ErrorBody, "description": "The camera is disabled."},
        503: {"model": ErrorBody, "description": "No camera runner attached."},
    },
    summary="Learn normal now (operator)",
)
def learn_anomaly(
    body: LearnBody,
    request: Request,
    camera_id: str = CAMERA_ID,
    user: User = Depends(require_role("operator")),
) -> AnomalyStatus:
    """Learn the camera's normal from the next ``duration_s`` seconds of its footage.

    A camera with a model keeps scoring with it until the new one is ready; asking again
    restarts the window.
    """
    camera = _camera(request, camera_id)
    if request.app.state.runner is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "no camera runner attached to this server: nothing can learn",
        )
    if getattr(camera, "enabled", True) is False:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"camera {camera_id!r} is disabled: enable it to learn"
        )
    files = ModelFiles(anomaly_root(request) / camera_id)
    files.request_learning(body.duration_s)
    audit(request, user, "anomaly.learn", f"{camera_id} for {body.duration_s:g} s")
    return anomaly_status(camera, files)
