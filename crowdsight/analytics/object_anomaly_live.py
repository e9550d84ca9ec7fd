"""Live object anomaly for one camera: learn "normal" during a chosen period, then score.

An operator starts a learning window ("learn normal now for 10 minutes" from the API or the
dashboard, or a calibration window in the scene config); the camera's objects of that window
become its `ObjectNormality` model, stored in the camera's model folder with its version and
footage time range, and every later frame is scored against it. Learning again re-learns: the
old model keeps scoring until the new one is ready. `crowdsight.analytics.anomaly.AnomalyEvents`
turns the scores into `Anomaly` events (one event path for both anomaly models).

The camera's model folder (`ModelFiles`, ``<data dir>/anomaly/<camera id>/`` under
``crowdsight serve``) is also how the service and the camera's worker process talk: the API
writes a learning request (``learn.json``), the worker picks it up within a second, and
writes its state (``state.json``: learning progress, the model's footage range) for the API
to read. A request survives a restart of the service: a worker that starts with a pending
request resumes learning for what is left of its window.

Example:
    >>> live = LiveObjectAnomaly()
    >>> live.state
    'idle'
    >>> live.learn(ts_s=0.0, duration_s=600.0)
    >>> live.state
    'learning'
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowdsight.analytics.object_anomaly import (
    MODEL_VERSION,
    FrameObjects,
    ObjectAnomalyParams,
    ObjectMotion,
    ObjectNormality,
    ObjectScores,
)
from crowdsight.core.types import Detections

log = logging.getLogger(__name__)

State = Literal["idle", "learning", "ready"]


# --- what the service and the worker exchange (files in the camera's model folder) ---------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LearnRequest(_Record):
    """An operator's "learn normal now for ``duration_s``" (``learn.json``)."""

    request_id: str = Field(description="Unique id of this request.")
    duration_s: float = Field(gt=0, description="Seconds of footage to learn from.")
    requested_ts: float = Field(description="When it was asked for (epoch seconds).")


class LearnedModel(_Record):
    """The model a camera scores with."""

    version: int = Field(description="Model format version (another one must be re-learned).")
    footage_start_ts: float = Field(description="Start of the normal footage (frame time).")
    footage_end_ts: float = Field(description="End of the normal footage (frame time).")
    objects: int = Field(description="Normal objects learned (detections and motion regions).")
    classes: list[str] = Field(description="Object classes seen in the normal footage.")
    frame_wh: tuple[int, int] = Field(description="Frame size it was learned at.")
    ready_since_ts: float = Field(description="When it was saved (epoch seconds).")


class LearningProgress(_Record):
    """A learning window under way."""

    start_ts: float | None = Field(description="Window start (frame time); None: next frame.")
    duration_s: float = Field(description="Window length in seconds.")
    learned_s: float = Field(description="Seconds of the window seen so far.")
    objects: int = Field(description="Objects collected so far.")
    request_id: str | None = Field(None, description="The learning request it fulfils, if any.")


class AnomalyModelState(_Record):
    """What a camera's object anomaly model is doing (``state.json``; the API shows it)."""

    state: State = Field(
        description="'idle' (no object model), 'learning' (a window is under way; an older "
        "model, if any, keeps scoring) or 'ready' (scoring with the learned model)."
    )
    model: LearnedModel | None = Field(None, description="The model scoring now, if any.")
    learning: LearningProgress | None = Field(None, description="The window under way, if any.")
    problem: str | None = Field(None, description="Why there is no model, when there should be.")
    updated_ts: float = Field(0.0, description="When the camera wrote this (epoch seconds).")


def _write_json(path: Path, text: str) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class ModelFiles:
    """A camera's model folder: ``model.npz``, ``learn.json`` (request), ``state.json``.

    Args:
        folder: The camera's own folder (created when first written).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.model = self.folder / "model.npz"
        self.request = self.folder / "learn.json"
        self.state = self.folder / "state.json"

    def request_learning(self, duration_s: float, now_ts: float | None = None) -> LearnRequest:
        """Ask the camera to learn normal for ``duration_s`` from now (replaces a pending ask)."""
        req = LearnRequest(
            request_id=uuid.uuid4().hex,
            duration_s=duration_s,
            requested_ts=time.time() if now_ts is None else now_ts,
        )
        _write_json(self.request, req.model_dump_json())
        return req

    def pending_request(self) -> LearnRequest | None:
        """The learning request not yet fulfilled (None: none, or an unreadable file)."""
        try:
            return LearnRequest.model_validate_json(self.request.read_text(encoding="utf-8"))
        except (OSError, ValidationError):
            return None

    def finish_request(self, request_id: str) -> None:
        """Remove the request file if it still holds ``request_id`` (a newer ask stays)."""
        pending = self.pending_request()
        if pending is not None and pending.request_id == request_id:
            with contextlib.suppress(OSError):
                self.request.unlink()

    def write_state(self, state: AnomalyModelState) -> None:
        """Publish the camera's state for the API."""
        _write_json(self.state, state.model_dump_json())

    def read_state(self) -> AnomalyModelState | None:
        """The state the camera last wrote (None: never, or unreadable)."""
        try:
            return AnomalyModelState.model_validate_json(self.state.read_text(encoding="utf-8"))
        except (OSError, ValidationError):
            return None

    def load_model(self) -> tuple[ObjectNormality | None, str | None]:
        """(the saved model, None) or (None, why it cannot be used); (None, None): none saved."""
        if not self.model.exists():
            return None, None
        try:
            return ObjectNormality.load(self.model), None
        except ValueError as exc:
            # Shown to every dashboard user: the file's name, not the server's folders.
            why = str(exc).replace(str(self.model), self.model.name)
            return None, why if why.endswith("learn normal again") else f"{why}: learn normal again"

    def model_info(self, model: ObjectNormality) -> LearnedModel:
        """`LearnedModel` of ``model`` (its save time from the file, when saved)."""
        try:
            saved = self.model.stat().st_mtime
        except OSError:
            saved = 0.0
        return learned_model_info(model, saved)


def learned_model_info(model: ObjectNormality, ready_since_ts: float) -> LearnedModel:
    """What the API shows of a model."""
    return LearnedModel(
        version=MODEL_VERSION,
        footage_start_ts=model.footage[0],
        footage_end_ts=model.footage[1],
        objects=len(model.velocity),
        classes=list(model.classes),
        frame_wh=model.frame_wh,
        ready_since_ts=ready_since_ts,
    )


# --- the live learner/scorer ----------------------------------------------------------------


class LiveObjectAnomaly:
    """Per-camera learner and scorer of objects (state belongs to the instance).

    Args:
        params: Model hyperparameters (a priori defaults).
        model: A model learned before (otherwise the one in ``files``, if any, is loaded).
        files: The camera's model folder: the model is saved there, learning requests are
            read from it and the state is written to it (None: memory only).
        max_objects: Cap on objects kept while learning (memory: about 100 bytes each);
            later frames of a long window are then ignored.
        poll_s: Seconds (wall clock) between looks at the request file.
        clock: Wall clock (epoch seconds); tests pass their own.
    """

    def __init__(
        self,
        params: ObjectAnomalyParams | None = None,
        model: ObjectNormality | None = None,
        files: ModelFiles | None = None,
        max_objects: int = 500_000,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params or ObjectAnomalyParams()
        self.files = files
        self.max_objects = max_objects
        self.poll_s = poll_s
        self.clock = clock
        self.motion = ObjectMotion(self.params)
        self.problem: str | None = None
        self.model = model
        if model is None and files is not None:
            self.model, self.problem = files.load_model()
        self._started_ts = clock()
        self._schedule: tuple[float | None, float] | None = None
        self._window: tuple[float, float] | None = None
        self._request_id: str | None = None
        self._handled: str | None = None
        self._seen: list[FrameObjects] = []
        self._last_ts: float | None = None
        self.reset()

    @property
    def state(self) -> State:
        """``learning`` inside a window, else ``ready`` with a model, else ``idle``."""
        if self._window is not None or self._schedule is not None:
            return "learning"
        return "ready" if self.model is not None else "idle"

    def learn(self, ts_s: float, duration_s: float, request_id: str | None = None) -> None:
        """Start (or restart) learning normal from ``ts_s`` for ``duration_s`` seconds."""
        if duration_s <= 0:
            raise ValueError(f"learning needs a positive duration, got {duration_s} s")
        self._window = (ts_s, ts_s + duration_s)
        self._request_id = request_id
        self._seen = []
        self._n_seen = 0
        self._publish(force=True)

    def calibrate(self, start_ts: float | None, duration_s: float) -> None:
        """The scene's calibration window: learn then, unless the model already came from it.

        Args:
            start_ts: Window start (epoch seconds, the frames' clock), or None for the first
                frame the camera sees; with None, a camera that has a model keeps it.
            duration_s: Window length.
        """
        if self.model is not None and (start_ts is None or self.model.footage[0] == start_ts):
            return
        self._schedule = (start_ts, duration_s)

    def reset(self) -> None:
        """Forget the previous frame and any unfinished learning window (keeps the model)."""
        self.motion.reset()
        self._window = None
        self._request_id = None
        self._handled = None
        self._seen = []
        self._n_seen = 0
        self._next_poll = 0.0
        self._next_publish = 0.0
        self._published = False
        self._last_ts = None

    def status(self) -> AnomalyModelState:
        """The state the API shows (also written to ``state.json``)."""
        learning = None
        if self._window is not None:
            start, end = self._window
            now = start if self._last_ts is None else self._last_ts
            seen = min(max(now - start, 0.0), end - start)
            learning = LearningProgress(
                start_ts=start,
                duration_s=end - start,
                learned_s=seen,
                objects=self._n_seen,
                request_id=self._request_id,
            )
        elif self._schedule is not None:
            learning = LearningProgress(
                start_ts=self._schedule[0], duration_s=self._schedule[1], learned_s=0.0, objects=0
            )
        model = None
        if self.model is not None:
            model = (
                self.files.model_info(self.model)
                if self.files is not None
                else learned_model_info(self.model, 0.0)
            )
        return AnomalyModelState(
            state=self.state,
            model=model,
            learning=learning,
            problem=self.problem,
            updated_ts=self.clock(),
        )

    def update(
        self, image: npt.NDArray[np.uint8], ts_s: float, detections: Detections
    ) -> ObjectScores | None:
        """Measure this frame's objects; learn from them and/or score them.

        Returns:
            Per-object scores when a model exists (also while a re-learn is under way);
            None on the first frame, while learning the first model, and when idle (no
            flow is computed then: an idle camera costs nothing here).
        """
        self._last_ts = ts_s
        self._poll(ts_s)
        self._start_scheduled(ts_s)
        self._refuse_other_size(image)
        if self._window is None and self.model is None:
            self.motion.reset()
            self._publish()
            return None
        objs = self.motion.update(image, ts_s, detections)
        if self._window is not None:
            start, end = self._window
            if objs is not None and start <= ts_s and self._n_seen < self.max_objects:
                self._seen.append(objs)
                self._n_seen += len(objs)
            if ts_s >= end:
                self._finish(start, ts_s)
        self._publish()
        if objs is None or self.model is None:
            return None
        return self.model.score(objs)

    def _refuse_other_size(self, image: npt.NDArray[np.uint8]) -> None:
        """Drop a model learned at another frame size (another camera or stream profile)."""
        if self.model is None:
            return
        h, w = image.shape[:2]
        mw, mh = self.model.frame_wh
        if (w, h) == (mw, mh) or 0 in (mw, mh):
            return
        self.problem = (
            f"frames are {w}×{h} but the normal model was learned at {mw}×{mh}: learn normal again"
        )
        log.warning("object anomaly model not used: %s", self.problem)
        self.model = None
        self._publish(force=True)

    # --- requests, calibration window, state ----------------------------------------------

    def _poll(self, ts_s: float) -> None:
        """Pick up a new learning request from the model folder (at most every ``poll_s``)."""
        now = self.clock()
        if self.files is None or now < self._next_poll:
            return
        self._next_poll = now + self.poll_s
        req = self.files.pending_request()
        if req is None or req.request_id in (self._handled, self._request_id):
            return
        self._handled = req.request_id
        left = req.duration_s
        before = self.files.read_state() if req.requested_ts < self._started_ts else None
        if before is not None and before.learning and before.learning.request_id == req.request_id:
            # A previous process was learning for it (the service restarted meanwhile): learn
            # for what is left of the window, or drop it when it has passed.
            left = req.requested_ts + req.duration_s - now
            if left <= 0:
                self.files.finish_request(req.request_id)
                self.problem = "learning was cut short by a restart: learn normal again"
                self._publish(force=True)
                return
        self.problem = None
        self.learn(ts_s, left, req.request_id)

    def _start_scheduled(self, ts_s: float) -> None:
        """Turn the scene's calibration window into a learning window once it is reachable."""
        if self._schedule is None or self._window is not None:
            return
        start, duration = self._schedule
        self._schedule = None
        start = ts_s if start is None else start
        if start + duration <= ts_s:
            if self.model is None:
                self.problem = (
                    "the calibration window (learn_from + learn_for_s) ended before the camera "
                    "ran: move it or learn normal now"
                )
            self._publish(force=True)
            return
        self.learn(start, duration)

    def _publish(self, force: bool = False) -> None:
        """Write ``state.json`` on changes, and every second while learning."""
        now = self.clock()
        force = force or not self._published  # a (re)started camera says where it stands
        if self.files is None or (not force and (self._window is None or now < self._next_publish)):
            return
        self._next_publish, self._published = now + 1.0, True
        try:
            self.files.write_state(self.status())
        except OSError as exc:
            log.warning("cannot write the anomaly state: %s", exc)

    def _finish(self, start: float, end: float) -> None:
        self._window = None
        request_id, self._request_id = self._request_id, None
        seen, self._seen, self._n_seen = self._seen, [], 0
        try:
            model = ObjectNormality.fit([seen], self.params, footage=(start, end))
        except ValueError as exc:
            # Nothing (or no person) seen: keep the previous model, if any, and say why.
            self.problem = f"nothing learned from {start:.0f}–{end:.0f}: {exc}"
        else:
            self.model, self.problem = model, None
            if self.files is not None:
                self.files.folder.mkdir(parents=True, exist_ok=True)
                tmp = self.files.folder / f".model.{uuid.uuid4().hex[:8]}.npz"
                model.save(tmp)
                os.replace(tmp, self.files.model)
        if self.files is not None and request_id is not None:
            self.files.finish_request(request_id)
        self._publish(force=True)
