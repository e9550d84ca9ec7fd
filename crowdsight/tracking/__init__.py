"""Multi-object tracking: `Tracker` (ByteTrack, per camera) and `TrackHistory` (trails)."""

from __future__ import annotations

from crowdsight.tracking.history import TrackHistory, Trail
from crowdsight.tracking.tracker import Tracker

__all__ = ["TrackHistory", "Tracker", "Trail", "make_tracker"]


def make_tracker(*, frame_rate: float = 25.0, lost_track_buffer_s: float | None = None) -> Tracker:
    """A `Tracker` with crowdsight's default settings for one camera.

    Args:
        frame_rate: Nominal frame rate of the camera (frames per second).
        lost_track_buffer_s: Seconds a lost track can take its id back (None: the
            tracker's default, max(1 s, 6 frames)).

    Returns:
        A fresh tracker; ids start at 1.
    """
    return Tracker(frame_rate=frame_rate, lost_track_buffer_s=lost_track_buffer_s)
