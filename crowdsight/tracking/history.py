"""Short per-track history (anchor points + timestamps) for trails, speeds and analytics.

Only geometry and time are kept, for the last few points of each live track, and a track
is forgotten a while after it leaves: nothing here can describe or re-identify a person.

Example:
    >>> history = TrackHistory(max_points=30)
    >>> history.update(tracked, ts_s=frame.ts_s)  # doctest: +SKIP
    >>> history.trail(7).points_xy  # doctest: +SKIP
    array([[312., 240.], [314., 241.], ...], dtype=float32)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

from crowdsight.core.types import Detections


@dataclass(frozen=True, slots=True)
class Trail:
    """The recent path of one track, oldest point first.

    Attributes:
        tracker_id: The track.
        points_xy: K×2 float32 anchor points in image pixels.
        ts_s: K float64 timestamps in seconds, increasing.
    """

    tracker_id: int
    points_xy: npt.NDArray[np.float32]
    ts_s: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ts_s)


class TrackHistory:
    """Last ``max_points`` anchor points of every live track, keyed by tracker id.

    Args:
        max_points: Points kept per track. More gives smoother speeds and longer trails,
            at ``16 bytes × max_points`` per live track.
        anchor: Which point of the box to record. ``CENTER`` suits drawing trails;
            ``BOTTOM_CENTER`` (the feet) is the one to map onto a ground plane for speeds
            in m/s and for zone membership.
        forget_after_s: A track not seen for this long is dropped. Keep it at least as
            long as the tracker's lost buffer, so a track that comes back keeps its trail.
    """

    def __init__(
        self,
        *,
        max_points: int = 30,
        anchor: sv.Position = sv.Position.CENTER,
        forget_after_s: float = 5.0,
    ) -> None:
        if max_points < 1:
            raise ValueError("max_points must be >= 1")
        self.max_points = max_points
        self.anchor = anchor
        self.forget_after_s = forget_after_s
        self._points: dict[int, deque[tuple[float, float, float]]] = {}

    def reset(self) -> None:
        """Forget every track."""
        self._points.clear()

    def update(self, detections: Detections, ts_s: float) -> None:
        """Append this frame's anchor point of every tracked row; forget stale tracks.

        Args:
            detections: Tracked detections (rows with ``tracker_id < 0`` are skipped).
            ts_s: Frame timestamp in seconds.
        """
        if detections.tracker_id is not None and len(detections) > 0:
            xy = detections.get_anchors_coordinates(self.anchor)
            for tid, (x, y) in zip(detections.tracker_id.tolist(), xy.tolist(), strict=True):
                if tid < 0:
                    continue
                points = self._points.get(tid)
                if points is None:
                    points = self._points[tid] = deque(maxlen=self.max_points)
                points.append((ts_s, float(x), float(y)))
        horizon = ts_s - self.forget_after_s
        stale = [tid for tid, pts in self._points.items() if pts[-1][0] < horizon]
        for tid in stale:
            del self._points[tid]

    def trail(self, tracker_id: int) -> Trail | None:
        """The recent path of ``tracker_id``, or None if it is unknown or forgotten."""
        points = self._points.get(tracker_id)
        if points is None:
            return None
        arr = np.asarray(points, dtype=np.float64)
        return Trail(tracker_id, arr[:, 1:].astype(np.float32), arr[:, 0].copy())

    def tracker_ids(self) -> list[int]:
        """Ids currently remembered, in first-seen order."""
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def __contains__(self, tracker_id: object) -> bool:
        return tracker_id in self._points
