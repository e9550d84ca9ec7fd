"""Score thresholds from the detector's own score distribution (Otsu's split)."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsight.core.types import Detections
from crowdsight.tracking import Tracker
from crowdsight.tracking.scores import MIN_BOXES, OtsuScoreSplit


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.9, 0.85, 0.2, 0.25], 0.555),  # two classes with a gap: split in the gap
        ([0.45, 0.5, 0.1, 0.15], 0.305),  # same shape on a lower scale: split moves down
        ([0.5], 0.5),  # one value: nothing to split, everything confident
    ],
)
def test_split_follows_the_score_scale(scores: list[float], expected: float) -> None:
    split = OtsuScoreSplit()
    split.add(np.tile(scores, MIN_BOXES))
    assert split.threshold() == pytest.approx(expected)


def test_no_split_before_enough_scores_and_reset_forgets() -> None:
    split = OtsuScoreSplit()
    split.add(np.full(MIN_BOXES - 1, 0.9))
    assert split.threshold() is None
    split.add(np.array([0.1]))
    assert split.threshold() is not None
    split.reset()
    assert len(split) == 0 and split.threshold() is None


def _walkers(score: float, frames: int) -> list[Detections]:
    out = []
    for i in range(frames):
        xyxy = np.array(
            [[100.0 * k + 2 * i, 50.0, 100.0 * k + 2 * i + 40, 150.0] for k in range(5)]
        )
        out.append(
            Detections(
                xyxy=xyxy.astype(np.float32),
                confidence=np.full(5, score, np.float32),
                class_id=np.zeros(5, int),
            )
        )
    return out


def test_a_low_scoring_detector_gets_tracks_only_with_adaptive_thresholds() -> None:
    # A detector whose person scores run 0.3-0.45: ByteTrack's 0.7 never starts a track.
    frames = [*_walkers(0.3, 20), *_walkers(0.45, 20)]
    fixed, adaptive = Tracker(), Tracker(adaptive_scores=True)
    got_fixed = [fixed.update(d, ts_s=i / 25) for i, d in enumerate(frames)]
    got_adaptive = [adaptive.update(d, ts_s=i / 25) for i, d in enumerate(frames)]
    assert sum(len(d) for d in got_fixed) == 0
    assert len(got_adaptive[-1]) == 5
    assert adaptive.high_conf_det_threshold == adaptive.track_activation_threshold < 0.45
