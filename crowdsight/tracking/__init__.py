"""Multi-object tracking: `Tracker` (ByteTrack, per camera) and `TrackHistory` (trails).

Recordings (never the live path) get offline post-processing from
`crowdsight.tracking.offline`: tentative starts, tracklet linking, ByteTrack's linear gap
filling and (opt-in) StrongSORT's Gaussian smoothing.
"""

from __future__ import annotations

from crowdsight.tracking.history import TrackHistory, Trail
from crowdsight.tracking.tracker import Tracker

__all__ = ["TrackHistory", "Tracker", "Trail", "make_tracker"]


def make_tracker(
    *,
    frame_rate: float = 25.0,
    lost_track_buffer_s: float | None = None,
    score_thresholds: tuple[float, float] | None = None,
) -> Tracker:
    """A `Tracker` with crowdsight's default settings for one camera.

    Args:
        frame_rate: Nominal frame rate of the camera (frames per second).
        lost_track_buffer_s: Seconds a lost track can take its id back (None: the
            tracker's default, max(1 s, 6 frames)).
        score_thresholds: (track activation, high-confidence split) on the detector's own
            score scale (detectors publish theirs as ``track_thresholds``; None: ByteTrack's
            0.7 / 0.6, which suit the SSD's scores).

    Returns:
        A fresh tracker; ids start at 1.
    """
    if score_thresholds is None:
        return Tracker(frame_rate=frame_rate, lost_track_buffer_s=lost_track_buffer_s)
    activation, high = score_thresholds
    return Tracker(
        frame_rate=frame_rate,
        lost_track_buffer_s=lost_track_buffer_s,
        track_activation_threshold=activation,
        high_conf_det_threshold=high,
    )
