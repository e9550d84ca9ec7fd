"""Learned normality of motion per camera, and a frame-level anomaly score.

Feature: dense optical flow (Farnebäck) on a downscaled grey frame, averaged into a grid of
cells about one person in size: the mean flow magnitude per cell, in pixels per second at
the working width. Normal activity is summarised per cell by a robust baseline (median and
MAD-based scale), so a busy road in one corner does not make every frame "abnormal" while
a bicycle through a walkway does. The frame score is the largest robust z-score over cells:

    score = max_cells (magnitude − median) / max(1.4826·MAD, floor)

Where the baseline comes from:

* **learned** — `MotionNormality.fit` on a clip of normal footage (per camera);
* **training-free, live** — the first ``warmup_s`` of the stream seed the baseline, which
  then keeps learning from frames that did not score as anomalous (gated), so an incident
  does not teach itself as normal;
* **training-free, offline** — `fit_baseline` on the features of the footage being scored
  itself (no labels): anomalies are brief and local, so per-cell medians barely move.

CPU cost is low: flow at 180 px wide runs at several hundred frames per second per core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter1d
from scipy.stats import rankdata

from crowdsight.analytics.hysteresis import Hysteresis
from crowdsight.config.scene import AnomalyRule
from crowdsight.core.events import Anomaly, Event, Severity
from crowdsight.core.geometry import F64
from crowdsight.core.types import Detections

if TYPE_CHECKING:
    from crowdsight.analytics.object_anomaly import ObjectScores
    from crowdsight.analytics.object_anomaly_live import LiveObjectAnomaly

#: MAD → standard deviation for a normal distribution.
MAD_TO_SIGMA = 1.4826


class CellMotion:
    """Per-cell mean optical-flow magnitude between consecutive frames.

    Args:
        work_width: Frames are resized to this width first; flow cost grows with its
            square, and small widths still resolve people-sized motion.
        cell_px: Cell size at work width; near a person's size, so one fast object fills a
            cell instead of being averaged away.
    """

    def __init__(self, work_width: int = 180, cell_px: int = 15) -> None:
        self.work_width = work_width
        self.cell_px = cell_px
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame."""
        self._prev: npt.NDArray[np.uint8] | None = None
        self._prev_ts: float | None = None
        self.work_hw: tuple[int, int] = (0, 0)

    def cell_centre(self, row: int, col: int) -> tuple[float, float]:
        """Centre of a cell as fractions (x, y) of the frame's width and height."""
        h, w = self.work_hw
        k = self.cell_px
        return (col + 0.5) * k / max(w, 1), (row + 0.5) * k / max(h, 1)

    def _grey(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        g = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image)
        h, w = g.shape
        size = (self.work_width, max(1, round(h * self.work_width / w)))
        out: npt.NDArray[np.uint8] = np.asarray(
            cv2.resize(g, size, interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        return out

    def update(self, image: npt.NDArray[np.uint8], ts_s: float) -> F64 | None:
        """Cells (gh×gw, px/s at work width) for this frame; None for the first frame."""
        g = self._grey(image)
        self.work_hw = g.shape[0], g.shape[1]
        prev, prev_ts = self._prev, self._prev_ts
        self._prev, self._prev_ts = g, ts_s
        if prev is None or prev_ts is None or prev.shape != g.shape or ts_s <= prev_ts:
            return None
        flow = np.asarray(
            cv2.calcOpticalFlowFarneback(prev, g, None, 0.5, 3, 9, 3, 5, 1.1, 0)  # type: ignore[call-overload]
        )
        mag = np.hypot(flow[..., 0], flow[..., 1]) / (ts_s - prev_ts)
        k = self.cell_px
        gh, gw = mag.shape[0] // k, mag.shape[1] // k
        cells: F64 = (
            mag[: gh * k, : gw * k].reshape(gh, k, gw, k).mean(axis=(1, 3)).astype(np.float64)
        )
        return cells


@dataclass(frozen=True)
class CellBaseline:
    """Per-cell robust statistics of normal motion.

    Attributes:
        median: gh×gw median magnitude.
        scale: gh×gw robust spread (1.4826·MAD), before the floor.
        floor: Minimum spread (px/s): cells that never move would otherwise call any
            flicker an anomaly.
    """

    median: F64
    scale: F64
    floor: float

    def zmap(self, cells: F64) -> F64:
        """Robust z-score of every cell."""
        out: F64 = (cells - self.median) / np.maximum(self.scale, self.floor)
        return out

    def score(self, cells: F64) -> float:
        """The frame's anomaly score: the largest cell z-score."""
        return float(self.zmap(cells).max())

    def peak(self, cells: F64) -> tuple[float, int, int]:
        """(score, row, column) of the most anomalous cell."""
        z = self.zmap(cells)
        r, c = np.unravel_index(int(np.argmax(z)), z.shape)
        return float(z[r, c]), int(r), int(c)


def fit_baseline(features: Sequence[F64] | F64, floor: float = 1.0) -> CellBaseline:
    """Robust per-cell baseline from a stack of cell features (T×gh×gw)."""
    stack = np.asarray(features, dtype=np.float64)
    if stack.ndim != 3 or len(stack) == 0:
        raise ValueError(f"need a T×gh×gw stack of features, got shape {stack.shape}")
    med = np.median(stack, axis=0)
    mad = np.median(np.abs(stack - med), axis=0)
    return CellBaseline(med, MAD_TO_SIGMA * mad, floor)


class OnlineBaseline:
    """Training-free baseline learned from the stream itself, gated against anomalies.

    The first ``warmup_s`` of features seed it (scores are 0 until then); afterwards it is
    refitted every ``refit_every`` frames from the last ``memory`` frames that scored below
    ``learn_below``, so slow changes (a busier hour) are absorbed while an incident does not
    teach itself as normal.

    Args:
        floor_px_s: See `CellBaseline.floor`.
        warmup_s: Seconds of features before the first fit.
        learn_below: Only frames scoring below this teach the baseline.
        memory: Frames kept for refitting.
        refit_every: Frames between refits.
    """

    def __init__(
        self,
        floor_px_s: float = 1.0,
        warmup_s: float = 30.0,
        learn_below: float = 5.0,
        memory: int = 3000,
        refit_every: int = 100,
    ) -> None:
        self.floor_px_s = floor_px_s
        self.warmup_s = warmup_s
        self.learn_below = learn_below
        self.refit_every = refit_every
        self._memory: deque[F64] = deque(maxlen=memory)
        self.reset()

    def reset(self) -> None:
        """Forget everything learned."""
        self._memory.clear()
        self.baseline: CellBaseline | None = None
        self._start_ts: float | None = None
        self._since_fit = 0

    def update(self, cells: F64, ts_s: float) -> tuple[float, int, int]:
        """Score ``cells`` against the current baseline, then learn from them if normal.

        Returns:
            (score, row, column) of the most anomalous cell; score 0 while warming up.
        """
        if self._start_ts is None:
            self._start_ts = ts_s
        peak = self.baseline.peak(cells) if self.baseline is not None else (0.0, 0, 0)
        if self.baseline is None or peak[0] < self.learn_below:
            self._memory.append(cells)
            self._since_fit += 1
        warm = ts_s - self._start_ts >= self.warmup_s
        if warm and (self.baseline is None or self._since_fit >= self.refit_every):
            self.baseline = fit_baseline(list(self._memory), self.floor_px_s)
            self._since_fit = 0
        return peak


class MotionNormality:
    """A camera's model of normal motion, giving one anomaly score per frame.

    Use `fit` on normal footage (learned mode: a frozen `CellBaseline`), or just call
    `update` (training-free mode: an `OnlineBaseline` learned from the stream itself).

    Args:
        work_width: See `CellMotion`.
        cell_px: See `CellMotion`.
        floor_px_s: See `CellBaseline.floor`.
        warmup_s: See `OnlineBaseline`.
        learn_below: See `OnlineBaseline`.
    """

    def __init__(
        self,
        work_width: int = 180,
        cell_px: int = 15,
        floor_px_s: float = 1.0,
        warmup_s: float = 30.0,
        learn_below: float = 5.0,
    ) -> None:
        self.motion = CellMotion(work_width, cell_px)
        self.floor_px_s = floor_px_s
        self.online = OnlineBaseline(floor_px_s, warmup_s, learn_below)
        self.learned: CellBaseline | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the live state (a learned baseline from `fit` is kept)."""
        self.motion.reset()
        self.online.reset()
        #: Where the last scored frame was most anomalous, as (x, y) fractions of the frame.
        self.peak_xy: tuple[float, float] | None = None
        #: Why, in words (learned mode only), e.g. "motion 3.1× normal for this area".
        self.peak_reason: str | None = None

    def fit(self, images: Iterable[npt.NDArray[np.uint8]], fps: float = 10.0) -> CellBaseline:
        """Learn the baseline from normal footage and freeze it (learned mode)."""
        motion = CellMotion(self.motion.work_width, self.motion.cell_px)
        feats = [f for i, im in enumerate(images) if (f := motion.update(im, i / fps)) is not None]
        self.learned = fit_baseline(feats, self.floor_px_s)
        self.reset()
        return self.learned

    def update(self, image: npt.NDArray[np.uint8], ts_s: float) -> float:
        """Score one frame (0.0 for the first frame and while warming up)."""
        cells = self.motion.update(image, ts_s)
        if cells is None:
            return 0.0
        self.peak_reason = None
        if self.learned is not None:
            score, row, col = self.learned.peak(cells)
            if score > 0:
                self.peak_reason = motion_reason(cells[row, col], self.learned, row, col)
        else:
            score, row, col = self.online.update(cells, ts_s)
        self.peak_xy = self.motion.cell_centre(row, col) if score > 0 else None
        return score


def motion_reason(value: float, base: CellBaseline, row: int, col: int) -> str:
    """A cell's motion against its normal median, in words for an operator.

    The ratio's denominator is the larger of the cell's median and the baseline floor, so a
    cell that never moved in the normal footage reads "motion where normally still" rather
    than an absurd ratio.
    """
    normal = float(base.median[row, col])
    if normal < base.floor:
        return "motion where this area is normally still"
    return f"motion {value / normal:.1f}× normal for this area"


@dataclass(frozen=True)
class FramePeak:
    """The most abnormal thing of one frame, as an `Anomaly` event reports it.

    Attributes:
        score: The frame's score on its model's own scale.
        reason: Why, in words ("speed 3.1× normal for this area").
        xy: Where, as (x, y) fractions of the frame (names the zone), or None.
        xyxy: The abnormal object's box in frame pixels (object model), or None.
        class_name: The abnormal object's class (object model), or None.
    """

    score: float = 0.0
    reason: str = ""
    xy: tuple[float, float] | None = None
    xyxy: tuple[float, float, float, float] | None = None
    class_name: str | None = None


def object_peak(scores: ObjectScores, frame_wh: tuple[int, int]) -> FramePeak:
    """The `FramePeak` of an object-model frame: its most abnormal object, box and reason."""
    top = scores.top
    if top is None:
        return FramePeak()
    x0, y0, x1, y1 = (float(v) for v in scores.xyxy[top])
    w, h = frame_wh
    name, why = str(scores.class_name[top]), scores.reasons[top]
    return FramePeak(
        score=float(scores.total[top]),
        reason=why if why.startswith(f"a {name}:") else f"{name}: {why}",
        xy=((x0 + x1) / 2 / max(w, 1), (y0 + y1) / 2 / max(h, 1)),
        xyxy=(x0, y0, x1, y1),
        class_name=name,
    )


#: Which model scored a frame: ``objects`` (learned from a normal period) or ``cells``.
Method = Literal["objects", "cells"]


class AnomalyEvents:
    """The one event path of both anomaly models: per-frame score → `Anomaly` events.

    Each frame is scored by the camera's learned object model when it has one (also while
    a re-learn is under way), else — when ``cfg.enabled`` — by the label-free cell model, so
    a camera is covered from its first minute and gets the object model's named, boxed
    events once a normal period was learned. Hysteresis (enter/exit score held for
    ``min_duration_s``) uses the thresholds of the model that scores; when the scoring model
    changes, an open event is closed and the hysteresis starts afresh (the two scores are on
    different scales).

    Args:
        cfg: The scene's anomaly settings.
        objects: The camera's live object model (None: cells only).
    """

    def __init__(self, cfg: AnomalyRule, objects: LiveObjectAnomaly | None = None) -> None:
        self.cfg = cfg
        self.model = MotionNormality(
            cfg.work_width, cfg.cell_px, warmup_s=cfg.warmup_s, learn_below=cfg.exit_score
        )
        self.objects = objects
        self.reset()

    def reset(self) -> None:
        """Forget live state (keeps learned models)."""
        self.model.reset()
        if self.objects is not None:
            self.objects.reset()
        self.method: Method | None = None
        self._hyst = Hysteresis(self.cfg.enter_score, self.cfg.exit_score, self.cfg.min_duration_s)
        self._open: Anomaly | None = None
        self.last_score = 0.0
        #: The last frame's peak (its box is drawn on the event's snapshot).
        self.last_peak = FramePeak()

    def _score(
        self, image: npt.NDArray[np.uint8], ts_s: float, detections: Detections | None
    ) -> tuple[Method | None, FramePeak]:
        if self.objects is not None:
            scores = self.objects.update(image, ts_s, detections or Detections.empty())
            if scores is not None:
                h, w = image.shape[:2]
                return "objects", object_peak(scores, (w, h))
            if self.objects.model is not None:
                return "objects", FramePeak()  # first frame: no flow yet
        if not self.cfg.enabled:
            return None, FramePeak()
        score = self.model.update(image, ts_s)
        return "cells", FramePeak(score, self.model.peak_reason or "", self.model.peak_xy)

    def _switch(self, method: Method | None, ts_s: float) -> list[Event]:
        """Another model scores from now on: close what the previous one opened."""
        closed: list[Event] = []
        if self._open is not None:
            closed.append(self._open.closed(ts_s))
            self._open = None
        c = self.cfg
        enter, exit_ = (
            (c.objects_enter_score, c.objects_exit_score)
            if method == "objects"
            else (c.enter_score, c.exit_score)
        )
        self._hyst = Hysteresis(enter, exit_, c.min_duration_s)
        self.method = method
        return closed

    def update(
        self,
        camera_id: str,
        frame_index: int,
        image: npt.NDArray[np.uint8],
        ts_s: float,
        detections: Detections | None = None,
        zone_at: Callable[[float, float], str | None] | None = None,
    ) -> list[Event]:
        """Score the frame; returns an opened or closed `Anomaly`, if any.

        Args:
            camera_id: Camera name for the event.
            frame_index: Frame index for the event.
            image: The RGB frame.
            ts_s: Frame time.
            detections: The detector's boxes on this frame (the object model's objects).
            zone_at: Maps (x, y) fractions of the frame to a zone id, so an event names
                the zone where the most abnormal object or motion was when it opened.
        """
        method, peak = self._score(image, ts_s, detections)
        events = self._switch(method, ts_s) if method != self.method else []
        self.last_score, self.last_peak = peak.score, peak
        if method is None:
            return events
        tr = self._hyst.update("scene", peak.score, ts_s)
        if tr is not None and tr.kind == "open":
            self._open = Anomaly(
                camera_id=camera_id,
                start_ts_s=tr.ts_s,
                frame_index=frame_index,
                severity=Severity.WARNING,
                score=peak.score,
                zone_id=zone_at(*peak.xy) if zone_at is not None and peak.xy is not None else None,
                reason=peak.reason,
                method=method,
                xyxy=peak.xyxy,
                object_class=peak.class_name,
            )
            return [*events, self._open]
        if tr is not None and self._open is not None:
            ev, self._open = self._open.closed(tr.ts_s), None
            return [*events, ev]
        if self._open is not None and peak.score > self._open.score:
            self._open = replace(self._open, score=peak.score)
        return events


def build_anomaly(cfg: AnomalyRule, model_dir: Path | None = None) -> AnomalyEvents | None:
    """The anomaly stage a camera pipeline runs (None when there is nothing to run).

    Args:
        cfg: The scene's anomaly settings (a calibration window starts learning).
        model_dir: The camera's model folder (``crowdsight serve``: one per camera in the data
            dir; learned models persist there and the "learn normal now" action reaches the
            camera through it). None: an object model exists only when the scene has a
            calibration window, and lives in memory (``crowdsight analyze``).
    """
    from crowdsight.analytics.object_anomaly_live import LiveObjectAnomaly, ModelFiles

    window = cfg.learn_window
    objects = None
    if model_dir is not None or window is not None:
        files = ModelFiles(model_dir) if model_dir is not None else None
        objects = LiveObjectAnomaly(files=files)
        if window is not None:
            objects.calibrate(*window)
    if objects is None and not cfg.enabled:
        return None
    return AnomalyEvents(cfg, objects)


# --- offline scoring and evaluation -------------------------------------------------------


def clip_features(
    paths: Sequence[Path], work_width: int = 180, cell_px: int = 15, fps: float = 10.0
) -> F64:
    """Cell features (T×gh×gw) for the frames of one clip; frame 0 copies frame 1's."""
    motion = CellMotion(work_width, cell_px)
    feats: list[F64] = []
    for i, p in enumerate(paths):
        read = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if read is None:
            raise ValueError(f"cannot read image {p}")
        f = motion.update(np.asarray(read, dtype=np.uint8), i / fps)
        if f is not None:
            feats.append(f)
    if not feats:
        raise ValueError("a clip needs at least 2 frames")
    return np.stack([feats[0], *feats])


def smooth_scores(scores: F64, sigma_frames: float = 3.0) -> F64:
    """Gaussian temporal smoothing (offline, non-causal), as in the anomaly literature."""
    if sigma_frames <= 0:
        return scores
    out: F64 = gaussian_filter1d(scores.astype(np.float64), sigma_frames, mode="nearest")
    return out


def minmax(scores: F64) -> F64:
    """Scale to [0, 1] (per clip, as most Ped2/Avenue papers do before pooling)."""
    lo, hi = float(scores.min()), float(scores.max())
    out: F64 = (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)
    return out


def frame_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """ROC AUC (0–1) of scores against 0/1 labels, by ranks (Mann–Whitney U); ties averaged.

    Example:
        >>> frame_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.shape[0]} scores but {y.shape[0]} labels")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both normal and abnormal frames")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
