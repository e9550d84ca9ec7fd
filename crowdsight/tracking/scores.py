"""Score thresholds that follow the detector's own score distribution (Otsu's split).

ByteTrack splits detections into confident boxes (which can start tracks and are
matched first) and weak ones (which can only continue tracks), at fixed scores chosen
for one detector (0.6 / 0.7 for YOLOX on MOT17). Another detector's scores live on
another scale: NanoDet's person scores on Mall run 0.35-0.85, so ByteTrack's 0.7 lets
fewer than one box in five start a track. `OtsuScoreSplit` instead keeps a histogram of
every score this camera's detector gave and splits it where Otsu's method (1979) puts
the boundary between two classes: the threshold that maximises the between-class
variance. It has no parameter fitted to any sequence; the histogram has 100 bins over
0-1 and the split is used once at least `MIN_BOXES` scores were seen (before that, the
tracker's fixed thresholds).

Both thresholds take the split: ByteTrack's code starts tracks 0.1 above its confident
threshold, but 0.1 is a distance on YOLOX's scale, not on every detector's; a new track
still needs ``minimum_consecutive_frames`` matches before it gets an id.

Measured on Mall training frames 1-800 at 2 fps with NanoDet treated as a detector that
publishes no thresholds (``python benchmarks/tracker_mall.py --range 1-800 --detector
nanodet``, variants ``unknown_detector_fixed`` / ``unknown_detector_adaptive``), fixed
0.7 / 0.6 → the Otsu split (0.58 there): head points covered by confirmed tracks 0.437 →
0.539, implausible jumps 0.30 → 0.19 per 100 steps, mean track 6.96 → 6.41 s, tracks per
person-minute 3.97 → 5.42 (more people tracked at all). NanoDet's own thresholds (0.5 /
0.35, chosen on Mall 1-400) do better still there (coverage 0.647), so the split is
opt-in (``Tracker(adaptive_scores=True)``, ``crowdsight eval tracking
--adaptive-scores``): for a detector with no thresholds of its own.

Example:
    >>> split = OtsuScoreSplit()
    >>> split.add(np.array([0.9, 0.85, 0.2, 0.25] * 50))
    >>> split.threshold()  # the middle of the empty stretch between the two classes
    0.555
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Scores seen before the split is trusted (a priori: a few seconds of a small crowd).
MIN_BOXES = 100
_BINS = 100


class OtsuScoreSplit:
    """Running histogram of one camera's detection scores and its Otsu threshold."""

    def __init__(self) -> None:
        self._hist = np.zeros(_BINS, np.float64)

    def reset(self) -> None:
        """Forget every score."""
        self._hist[:] = 0.0

    def __len__(self) -> int:
        return int(self._hist.sum())

    def add(self, scores: npt.NDArray[np.floating]) -> None:
        """Count this frame's scores (clipped to 0-1)."""
        if len(scores) == 0:
            return
        idx = np.clip((np.asarray(scores, np.float64) * _BINS).astype(np.int64), 0, _BINS - 1)
        self._hist += np.bincount(idx, minlength=_BINS)

    def threshold(self) -> float | None:
        """Lowest score of the upper class (a bin edge), or None before `MIN_BOXES` scores.

        Scores at or above it are "confident". When the classes are separated by empty
        bins, the split lies in the middle of the gap. When every score falls in one bin
        there is nothing to split and that bin's lower edge is returned (all confident).
        """
        total = self._hist.sum()
        if total < MIN_BOXES:
            return None
        p = self._hist / total
        centres = (np.arange(_BINS) + 0.5) / _BINS
        w0 = np.cumsum(p)[:-1]  # weight of bins 0..k (the lower class, split after k)
        mu = np.cumsum(p * centres)[:-1]
        mu_t = float((p * centres).sum())
        w1 = 1.0 - w0
        valid = (w0 > 0) & (w1 > 0)
        if not valid.any():
            return float(np.flatnonzero(self._hist)[0]) / _BINS
        between = np.where(valid, (mu_t * w0 - mu) ** 2 / np.where(valid, w0 * w1, 1.0), -1.0)
        # A flat maximum (an empty stretch between the classes): split in its middle.
        best = np.flatnonzero(between >= between.max() * (1.0 - 1e-9))
        return (int(best[0]) + int(best[-1]) + 2) / (2 * _BINS)
