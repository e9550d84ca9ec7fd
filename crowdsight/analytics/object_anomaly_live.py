"""Live object anomaly for one camera: learn "normal" during a chosen period, then score.

An operator starts a learning window ("learn normal now for 10 minutes", or a calibration
window in the scene config); the camera's objects of that window become its
`ObjectNormality` model, stored per camera with its version and footage time range, and every
later frame is scored against it. `LiveObjectAnomaly.learn` again re-learns (the old model keeps
scoring until the new one is ready). `ObjectAnomalyEvents` turns the scores into `Anomaly`
events that name the object and the reason.

Example:
    >>> live = LiveObjectAnomaly()
    >>> live.state
    'idle'
    >>> live.learn(ts_s=0.0, duration_s=600.0)
    >>> live.state
    'learning'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from crowdsight.analytics.hysteresis import Hysteresis
from crowdsight.analytics.object_anomaly import (
    FrameObjects,
    ObjectAnomalyParams,
    ObjectMotion,
    ObjectNormality,
    ObjectScores,
)
from crowdsight.core.events import Anomaly, Event, Severity
from crowdsight.core.types import Detections

State = Literal["idle", "learning", "scoring"]


class LiveObjectAnomaly:
    """Per-camera learner and scorer of objects (state belongs to the instance).

    Args:
        params: Model hyperparameters (a priori defaults).
        model: A model learned before (e.g. `ObjectNormality.load` of the camera's file).
        model_path: Where a newly learned model is saved (None: kept in memory only).
        max_objects: Cap on objects kept while learning (memory: about 100 bytes each);
            later frames of a long window are then ignored.
    """

    def __init__(
        self,
        params: ObjectAnomalyParams | None = None,
        model: ObjectNormality | None = None,
        model_path: Path | None = None,
        max_objects: int = 500_000,
    ) -> None:
        self.params = params or ObjectAnomalyParams()
        self.model = model
        self.model_path = model_path
        self.max_objects = max_objects
        self.motion = ObjectMotion(self.params)
        self._window: tuple[float, float] | None = None
        self._seen: list[FrameObjects] = []
        self._n_seen = 0

    @property
    def state(self) -> State:
        """``learning`` inside a window, else ``scoring`` with a model, else ``idle``."""
        if self._window is not None:
            return "learning"
        return "scoring" if self.model is not None else "idle"

    def learn(self, ts_s: float, duration_s: float) -> None:
        """Start (or restart) learning normal from ``ts_s`` for ``duration_s`` seconds."""
        if duration_s <= 0:
            raise ValueError(f"learning needs a positive duration, got {duration_s} s")
        self._window = (ts_s, ts_s + duration_s)
        self._seen = []
        self._n_seen = 0

    def reset(self) -> None:
        """Forget the previous frame and any unfinished learning window (keeps the model)."""
        self.motion.reset()
        self._window = None
        self._seen = []
        self._n_seen = 0

    def update(
        self, image: npt.NDArray[np.uint8], ts_s: float, detections: Detections
    ) -> ObjectScores | None:
        """Measure this frame's objects; learn from them or score them.

        Returns:
            Per-object scores when a model exists (also while a re-learn is under way);
            None on the first frame and while learning the first model.
        """
        objs = self.motion.update(image, ts_s, detections)
        if self._window is not None:
            start, end = self._window
            if objs is not None and start <= ts_s and self._n_seen < self.max_objects:
                self._seen.append(objs)
                self._n_seen += len(objs)
            if ts_s >= end:
                self._finish(start, ts_s)
        if objs is None or self.model is None:
            return None
        return self.model.score(objs)

    def _finish(self, start: float, end: float) -> None:
        self._window = None
        seen, self._seen, self._n_seen = self._seen, [], 0
        try:
            model = ObjectNormality.fit([seen], self.params, footage=(start, end))
        except ValueError:
            return  # nothing (or no person) seen: keep the previous model, if any
        self.model = model
        if self.model_path is not None:
            self.model_path.parent.mkdir(parents=True, exist_ok=True)
            model.save(self.model_path)


@dataclass(frozen=True)
class ObjectAnomalyThresholds:
    """When a frame's most abnormal object opens and closes an `Anomaly` event.

    Scores are sums of per-group distances in units of the 99th percentile of normal
    objects, so a frame of ~20 normal objects often peaks near 1–3. Fixed a priori:
    ``enter`` 5 (five times the tail of normal on one attribute), ``exit`` 3, held 1 s.
    """

    enter: float = 5.0
    exit: float = 3.0
    min_duration_s: float = 1.0


class ObjectAnomalyEvents:
    """Turns `LiveObjectAnomaly` scores into `Anomaly` events naming the object and why."""

    def __init__(
        self, live: LiveObjectAnomaly, thresholds: ObjectAnomalyThresholds | None = None
    ) -> None:
        t = thresholds or ObjectAnomalyThresholds()
        self.live = live
        self._hyst = Hysteresis(t.enter, t.exit, t.min_duration_s)
        self._open: Anomaly | None = None
        self.last_score = 0.0
        #: Box (frame pixels) of the last frame's most abnormal object, for the snapshot.
        self.last_box: tuple[float, float, float, float] | None = None

    def reset(self) -> None:
        """Forget live state (keeps the learned model)."""
        self.live.reset()
        self._hyst.reset()
        self._open = None
        self.last_score = 0.0
        self.last_box = None

    def update(
        self,
        camera_id: str,
        frame_index: int,
        image: npt.NDArray[np.uint8],
        ts_s: float,
        detections: Detections,
    ) -> list[Event]:
        """Score the frame; returns an opened or closed `Anomaly`, if any."""
        scores = self.live.update(image, ts_s, detections)
        top = scores.top if scores is not None else None
        self.last_score = scores.frame_score if scores is not None else 0.0
        self.last_box = None
        reason = ""
        if scores is not None and top is not None:
            x0, y0, x1, y1 = (float(v) for v in scores.xyxy[top])
            self.last_box = (x0, y0, x1, y1)
            reason = f"{scores.class_name[top]}: {scores.reasons[top]}"
        tr = self._hyst.update("objects", self.last_score, ts_s)
        if tr is not None and tr.kind == "open":
            self._open = Anomaly(
                camera_id=camera_id,
                start_ts_s=tr.ts_s,
                frame_index=frame_index,
                severity=Severity.WARNING,
                score=self.last_score,
                reason=reason,
            )
            return [self._open]
        if tr is not None and self._open is not None:
            ev, self._open = self._open.closed(tr.ts_s), None
            return [ev]
        return []
