"""Short per-track histories (anchor, box size, class) that rules read speeds from.

Only the last few seconds of each live track are kept, keyed by the tracker's id, and a
track is forgotten as soon as it is lost: this is anonymous, short-lived state, never a
record of a person.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crowdsight.core.geometry import (
    F64,
    Homography,
    box_anchors,
    speed_from_history,
    velocity_from_history,
)
from crowdsight.core.types import CLASS_NAME, Detections


@dataclass(slots=True)
class TrackSample:
    """One observation of a track."""

    ts_s: float
    anchor: tuple[float, float]
    width: float
    height: float


@dataclass(slots=True)
class Track:
    """The recent history of one tracked object."""

    track_id: int
    class_name: str
    first_ts_s: float
    samples: deque[TrackSample] = field(default_factory=deque)

    @property
    def last(self) -> TrackSample:
        """The newest sample."""
        return self.samples[-1]

    def arrays(self) -> tuple[F64, F64]:
        """(timestamps T, anchors T×2) of the history."""
        ts = np.fromiter((s.ts_s for s in self.samples), np.float64, len(self.samples))
        pts = np.array([s.anchor for s in self.samples], dtype=np.float64).reshape(-1, 2)
        return ts, pts

    def speed(self, window_s: float, homography: Homography | None = None) -> float:
        """Speed over the last ``window_s`` (m/s with a homography, else px/s)."""
        ts, pts = self.arrays()
        return speed_from_history(ts, pts, window_s, homography)

    def velocity(self, window_s: float, homography: Homography | None = None) -> F64:
        """Velocity vector over the last ``window_s`` (m/s with a homography, else px/s)."""
        ts, pts = self.arrays()
        return velocity_from_history(ts, pts, window_s, homography)


@dataclass(frozen=True, slots=True)
class FrameTracks:
    """This frame's tracked rows as arrays, in detection order."""

    ids: npt.NDArray[np.int64]
    xyxy: F64
    anchors: F64
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_detections(cls, detections: Detections) -> FrameTracks:
        """Rows with a tracker id (untracked rows are ignored by track rules)."""
        if detections.tracker_id is None or len(detections) == 0:
            return cls(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 2)), [])
        keep = np.asarray(detections.tracker_id) >= 0
        ids = np.asarray(detections.tracker_id)[keep].astype(np.int64)
        xyxy = np.asarray(detections.xyxy, dtype=np.float64)[keep]
        names_arr = detections.data.get(CLASS_NAME)
        if names_arr is None:
            names = ["person"] * len(ids)
        else:
            names = [str(n) for n in np.asarray(names_arr)[keep]]
        return cls(ids, xyxy, box_anchors(xyxy), names)


class TrackHistory:
    """Rolling histories of live tracks.

    Args:
        keep_s: Seconds of samples kept per track (enough for the longest rule window).
        max_age_s: A track unseen for this long is dropped (the tracker lost it).
    """

    def __init__(self, keep_s: float = 5.0, max_age_s: float = 1.0) -> None:
        self.keep_s = keep_s
        self.max_age_s = max_age_s
        self.tracks: dict[int, Track] = {}

    def reset(self) -> None:
        """Forget every track."""
        self.tracks.clear()

    def update(self, ts_s: float, frame_tracks: FrameTracks) -> list[Track]:
        """Add this frame's observations; returns the tracks dropped as lost."""
        for i, tid in enumerate(frame_tracks.ids.tolist()):
            x1, y1, x2, y2 = frame_tracks.xyxy[i]
            ax, ay = frame_tracks.anchors[i]
            tr = self.tracks.get(tid)
            if tr is None:
                tr = self.tracks[tid] = Track(tid, frame_tracks.class_names[i], ts_s)
            if tr.samples and tr.samples[-1].ts_s >= ts_s:
                continue  # repeated detections (detector not run this frame)
            tr.samples.append(TrackSample(ts_s, (float(ax), float(ay)), x2 - x1, y2 - y1))
            while tr.samples and tr.samples[0].ts_s < ts_s - self.keep_s:
                tr.samples.popleft()
        lost = [t for t in self.tracks.values() if ts_s - t.last.ts_s > self.max_age_s]
        for t in lost:
            del self.tracks[t.track_id]
        return lost
