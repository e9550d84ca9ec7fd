"""Live view: the latest redacted, annotated frame of a camera, as a JPEG or an MJPEG stream.

The runner (`crowdsight.pipeline.runner.LocalRunner`) keeps the latest annotated JPEG of each
camera, with heads blurred and the density heatmap drawn on. This module serves it:

- ``GET /api/cameras/{id}/snapshot.jpg``: the latest JPEG (404 unknown camera, 503 none yet),
  with ``X-Frame-Index`` and ``X-Frame-Ts`` naming the source frame it shows;
- ``GET /api/cameras/{id}/live.json``: that frame's index and time, its size, the boxes drawn
  on the JPEG (in source pixels) and the counts in its header: one frame, one truth, so a
  client can check the picture against its own analysis of the frame, and show figures that
  agree with it;
- ``GET /api/cameras/{id}/live.mjpeg``: a ``multipart/x-mixed-replace`` stream of those JPEGs
  at a bounded rate, which an ``<img>`` tag plays natively; it ends when the client leaves.

Both need a signed-in viewer, and both write who watched which camera to the audit log (the
stream once when it opens, snapshots at most once a minute per user and camera, so a polling
client does not flood the log).

Defence in depth: images are redacted upstream, in the worker, which fails closed. If a runner
nevertheless reports that a camera's latest frame is *not* redacted (optional method
``latest_jpeg_redacted(camera_id) -> bool``), nothing is served unless the server setting
``live_allow_unredacted`` is explicitly true.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from crowdsight.server.auth import audit, require_role
from crowdsight.store import User

router = APIRouter(tags=["live"])

BOUNDARY = "crowdsightframe"
DEFAULT_LIVE_FPS = 5.0
SNAPSHOT_AUDIT_EVERY_S = 60.0


class LiveFrames(Protocol):
    """What the live view needs from the runner: the latest JPEG of a camera.

    (The stream reader is a different thing: `crowdsight.sources.stream.LiveSource`.)
    """

    def latest_jpeg(self, camera_id: str) -> bytes | None: ...


class LiveBox(BaseModel):
    """One box drawn on a live JPEG."""

    model_config = ConfigDict(extra="forbid")

    xyxy: tuple[float, float, float, float] = Field(
        description="Corners [x1, y1, x2, y2] in source-frame pixels."
    )
    track_id: int = Field(description="Track id drawn next to the box (-1: untracked).")
    class_name: str = Field(description="Class drawn next to the box, e.g. 'person'.")


class LiveFrameInfo(BaseModel):
    """The source frame a camera's latest live JPEG shows, and what is drawn on it."""

    model_config = ConfigDict(extra="forbid")

    camera_id: str = Field(description="Camera.")
    frame_index: int = Field(
        description="The source's frame index (looping files keep counting: the frame within "
        "the file is frame_index modulo its frame count)."
    )
    ts_s: float = Field(description="The frame's timestamp (s).")
    resolution_wh: tuple[int, int] = Field(description="Source frame size; boxes use it.")
    tracked: int = Field(description="Boxes drawn (the picture's 'tracked' figure).")
    detected: int | None = Field(
        description="Boxes the detector found on this frame, confirmed tracks or not (None: "
        "the detector did not run on it)."
    )
    boxes: list[LiveBox] = Field(description="The boxes drawn, in drawing order.")


class LiveFrameLike(Protocol):
    """What a runner says about the frame its live JPEG shows (`pipeline.worker.LiveFrame`)."""

    @property
    def frame_index(self) -> int: ...
    @property
    def ts_s(self) -> float: ...
    @property
    def resolution_wh(self) -> tuple[int, int]: ...
    @property
    def xyxy(self) -> tuple[tuple[float, float, float, float], ...]: ...
    @property
    def track_ids(self) -> tuple[int, ...]: ...
    @property
    def class_names(self) -> tuple[str, ...]: ...
    @property
    def detected(self) -> int | None: ...
    @property
    def tracked(self) -> int: ...


#: A live JPEG and the frame it shows (None: the runner does not say).
Latest = tuple[bytes, LiveFrameLike | None]


def _latest_live(runner: LiveFrames, camera_id: str) -> Latest | None:
    """(JPEG, its frame) from a runner with ``latest_live`` (`LocalRunner`); else (JPEG, None)."""
    latest = getattr(runner, "latest_live", None)
    if callable(latest):
        got: Latest | None = latest(camera_id)
        return got
    jpeg = runner.latest_jpeg(camera_id)
    return None if jpeg is None else (jpeg, None)


def _frame_headers(live: LiveFrameLike | None) -> dict[str, str]:
    if live is None:
        return {}
    return {"X-Frame-Index": str(live.frame_index), "X-Frame-Ts": f"{live.ts_s:.3f}"}


@dataclass
class LiveLimits:
    """Per-app live-view state: stream rate and the snapshot audit throttle.

    Attributes:
        fps: Highest frame rate of an MJPEG stream; the runner refreshes its JPEG about twice
            a second by default, so more than ~5 fps only resends the same image.
        audit_every_s: Shortest gap between two snapshot audit entries of one user and camera.
        last_audit: When each (user, camera) snapshot view was last audited (monotonic s).
    """

    fps: float = DEFAULT_LIVE_FPS
    audit_every_s: float = SNAPSHOT_AUDIT_EVERY_S
    last_audit: dict[tuple[str, str], float] = field(default_factory=dict)

    def should_audit(self, username: str, camera_id: str, now: float) -> bool:
        """True when this snapshot view is the first of the user on the camera in a while."""
        key = (username, camera_id)
        last = self.last_audit.get(key)
        if last is not None and now - last < self.audit_every_s:
            return False
        self.last_audit[key] = now
        return True

    def reset(self) -> None:
        """Forget the audit throttle."""
        self.last_audit.clear()


def _limits(request: Request) -> LiveLimits:
    """The app's `LiveLimits`, created on first use from the server settings."""
    state = request.app.state
    limits: LiveLimits | None = getattr(state, "live_limits", None)
    if limits is None:
        settings = getattr(state, "settings", None)
        fps = float(getattr(settings, "live_fps", DEFAULT_LIVE_FPS) or DEFAULT_LIVE_FPS)
        limits = LiveLimits(fps=max(0.2, min(fps, 30.0)))
        state.live_limits = limits
    return limits


def _runner(request: Request, camera_id: str) -> LiveFrames:
    """The runner, after checking that the camera exists (404) and live video is on (503)."""
    store = getattr(request.app.state, "store", None)
    runner: LiveFrames | None = getattr(request.app.state, "runner", None)
    known_to_runner = False
    if runner is not None:
        ids = getattr(runner, "camera_ids", None)
        known_to_runner = callable(ids) and camera_id in ids()
    if not known_to_runner and (store is None or store.get_camera(camera_id) is None):
        raise HTTPException(404, f"unknown camera {camera_id!r}: see GET /api/cameras")
    if runner is None:
        raise HTTPException(503, "live video is unavailable: this server runs no cameras")
    return runner


def _allows_unredacted(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return getattr(settings, "live_allow_unredacted", False) is True


def _servable_jpeg(runner: LiveFrames, camera_id: str, allow_unredacted: bool) -> bytes | None:
    """The latest JPEG, or None when there is none or it must not leave the server.

    Raises:
        HTTPException: 503 when the runner marks the frame as not redacted and the server
            does not explicitly allow unredacted live video.
    """
    got = _servable_live(runner, camera_id, allow_unredacted)
    return None if got is None else got[0]


def _servable_live(runner: LiveFrames, camera_id: str, allow_unredacted: bool) -> Latest | None:
    """`_servable_jpeg` with the `LiveFrame` of that JPEG (None when the runner has none)."""
    got = _latest_live(runner, camera_id)
    if got is None:
        return None
    is_redacted = getattr(runner, "latest_jpeg_redacted", None)
    if callable(is_redacted) and is_redacted(camera_id) is False and not allow_unredacted:
        raise HTTPException(
            503,
            f"camera {camera_id!r}: the latest frame is not redacted, so it is not served "
            "(set live_allow_unredacted in the server settings to override)",
        )
    return got


_NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}


@router.get(
    "/api/cameras/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "Latest redacted frame."},
        404: {"description": "Unknown camera."},
        503: {"description": "No frame yet, or live video unavailable."},
    },
    summary="Latest redacted, annotated frame of a camera (JPEG)",
)
def snapshot_jpg(
    camera_id: str, request: Request, user: User = Depends(require_role("viewer"))
) -> Response:
    """The camera's latest annotated frame (heads blurred, density heatmap drawn)."""
    runner = _runner(request, camera_id)
    got = _servable_live(runner, camera_id, _allows_unredacted(request))
    if got is None:
        raise HTTPException(503, f"camera {camera_id!r} has no frame yet; retry in a second")
    if _limits(request).should_audit(user.username, camera_id, time.monotonic()):
        audit(request, user, "live.snapshot", camera_id)
    jpeg, live = got
    return Response(jpeg, media_type="image/jpeg", headers={**_NO_STORE, **_frame_headers(live)})


@router.get(
    "/api/cameras/{camera_id}/live.json",
    response_model=LiveFrameInfo,
    responses={
        404: {"description": "Unknown camera."},
        503: {"description": "No frame yet, or live video unavailable."},
    },
    summary="Which frame the latest live JPEG shows, and the boxes drawn on it",
)
def live_frame_info(
    camera_id: str, request: Request, _: User = Depends(require_role("viewer"))
) -> LiveFrameInfo:
    """The frame index, time and drawn boxes of the camera's latest live JPEG.

    Compare ``frame_index`` with the ``X-Frame-Index`` header of ``snapshot.jpg`` to pair a
    picture with its boxes (the JPEG changes about twice a second).
    """
    runner = _runner(request, camera_id)
    got = _servable_live(runner, camera_id, _allows_unredacted(request))
    live = None if got is None else got[1]
    if live is None:
        raise HTTPException(503, f"camera {camera_id!r} has no live frame yet; retry in a second")
    return LiveFrameInfo(
        camera_id=camera_id,
        frame_index=live.frame_index,
        ts_s=live.ts_s,
        resolution_wh=live.resolution_wh,
        tracked=live.tracked,
        detected=live.detected,
        boxes=[
            LiveBox(xyxy=xyxy, track_id=tid, class_name=name)
            for xyxy, tid, name in zip(live.xyxy, live.track_ids, live.class_names, strict=True)
        ],
    )


def _part(jpeg: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    ).encode("ascii")
    return head + jpeg + b"\r\n"


async def mjpeg_parts(
    request: Request, runner: LiveFrames, camera_id: str, fps: float, allow_unredacted: bool
) -> AsyncIterator[bytes]:
    """Yield one multipart part per new frame, at most ``fps`` a second, until disconnect.

    A frame is sent only when the runner has a new one (compared by identity, since the runner
    replaces the bytes object), so a stalled camera costs no bandwidth. The stream ends when
    the client disconnects, or when a frame may not be served (not redacted).
    """
    period_s = 1.0 / fps
    last: bytes | None = None
    while not await request.is_disconnected():
        try:
            jpeg = _servable_jpeg(runner, camera_id, allow_unredacted)
        except HTTPException:
            return
        if jpeg is not None and jpeg is not last:
            last = jpeg
            yield _part(jpeg)
        await asyncio.sleep(period_s)


@router.get(
    "/api/cameras/{camera_id}/live.mjpeg",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}},
            "description": "MJPEG stream of redacted frames.",
        },
        404: {"description": "Unknown camera."},
        503: {"description": "Live video unavailable."},
    },
    summary="Live MJPEG stream of a camera's redacted, annotated frames",
)
def live_mjpeg(
    camera_id: str, request: Request, user: User = Depends(require_role("viewer"))
) -> StreamingResponse:
    """Stream the camera's redacted frames; use it as the ``src`` of an ``<img>``."""
    runner = _runner(request, camera_id)
    allow_unredacted = _allows_unredacted(request)
    _servable_jpeg(runner, camera_id, allow_unredacted)  # refuse up front when not redacted
    audit(request, user, "live.view", camera_id)
    return StreamingResponse(
        mjpeg_parts(request, runner, camera_id, _limits(request).fps, allow_unredacted),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers=_NO_STORE,
    )
