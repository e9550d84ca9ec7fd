"""A short-lived, non-biometric appearance cue for association inside one camera.

Each box is summarised by the colour of what the person wears: an HSV histogram of the
box's upper half (top, jacket) and one of its lower half (trousers, skirt), 8 hue x
3 saturation x 3 value bins each. The top 15 % of the box, where the head is, is left
out, so no face or hair enters the cue. The two histograms are L1-normalised and
square-rooted, so the dot product of two signatures is the Bhattacharyya coefficient of
their colour distributions (1: same colours, 0: nothing in common) and
``1 - dot`` is a distance in [0, 1].

The signature is a coarse colour summary, not a template: it cannot tell two people in
black coats apart and says nothing about who anyone is. The tracker keeps one per live
track (an exponential moving average) and drops it with the track; it is never stored,
exported or compared across cameras.

Example:
    >>> sig = colour_signatures(frame.image, detections.xyxy)  # doctest: +SKIP
    >>> sig.shape  # doctest: +SKIP
    (12, 144)
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_H_BINS, _S_BINS, _V_BINS = 8, 3, 3
_BINS = _H_BINS * _S_BINS * _V_BINS
#: Length of one signature: two halves of ``_BINS`` bins.
SIGNATURE_SIZE = 2 * _BINS
_HEAD_SHARE = 0.15  # top of a person box left out: the head (an adult is ~7.5 heads tall)
_MIN_SIDE_PX = 2  # a half narrower or shorter than this has no usable colour


def colour_signatures(image: npt.NDArray[np.uint8], xyxy: npt.ArrayLike) -> FloatArray:
    """Clothing-colour signatures of boxes in one RGB frame.

    Args:
        image: H x W x 3 uint8 RGB frame (crowdsight's `Frame.image`).
        xyxy: N x 4 boxes in pixels; parts outside the frame are clipped.

    Returns:
        N x `SIGNATURE_SIZE` float array, each row of unit length (square roots of two
        L1-normalised histograms, scaled by 1/sqrt(2)); a row of zeros where a box has
        no usable pixels (the tracker then ignores the cue for that box).
    """
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), SIGNATURE_SIZE))
    if len(boxes) == 0:
        return out
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"colour_signatures needs an H x W x 3 image, got shape {image.shape}")
    h, w = image.shape[:2]
    x1 = np.clip(np.floor(boxes[:, 0]), 0, w).astype(int)
    x2 = np.clip(np.ceil(boxes[:, 2]), 0, w).astype(int)
    top = boxes[:, 1] + _HEAD_SHARE * (boxes[:, 3] - boxes[:, 1])
    mid = (top + boxes[:, 3]) / 2.0
    y1 = np.clip(np.floor(top), 0, h).astype(int)
    ym = np.clip(np.round(mid), 0, h).astype(int)
    y2 = np.clip(np.ceil(boxes[:, 3]), 0, h).astype(int)
    # Colour-convert only the region the boxes span (often far less than the frame).
    left, right = int(x1.min()), int(x2.max())
    low, high = int(y1.min()), int(y2.max())
    if right <= left or high <= low:
        return out
    # Every ``step``-th pixel and row: ~64 rows per box are plenty for 72 bins.
    step = max(1, int(np.median(y2 - y1)) // 64)
    region = np.ascontiguousarray(image[low:high:step, left:right:step])
    hsv = np.asarray(cv2.cvtColor(region, cv2.COLOR_RGB2HSV), np.uint8)
    x1, x2 = (x1 - left) // step, -(-(x2 - left) // step)
    y1, ym, y2 = (y1 - low) // step, (ym - low) // step, -(-(y2 - low) // step)
    for i in range(len(boxes)):
        if x2[i] - x1[i] < _MIN_SIDE_PX:
            continue
        upper = hsv[y1[i] : ym[i], x1[i] : x2[i]]
        lower = hsv[ym[i] : y2[i], x1[i] : x2[i]]
        if min(upper.shape[0], lower.shape[0]) < _MIN_SIDE_PX:
            continue
        out[i, :_BINS] = np.sqrt(_histogram(upper))
        out[i, _BINS:] = np.sqrt(_histogram(lower))
    out /= np.sqrt(2.0)  # each half has unit length, so the whole row has too
    return out


def signature_distance(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise ``1 - Bhattacharyya coefficient`` (M x N); 0 where either row is empty.

    An empty (all-zero) signature means "no cue", so it never vetoes a match.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    dist = 1.0 - a @ b.T
    known = (np.abs(a).sum(1) > 0)[:, None] & (np.abs(b).sum(1) > 0)[None, :]
    return np.where(known, np.clip(dist, 0.0, 1.0), 0.0)


def _histogram(hsv: npt.NDArray[np.uint8]) -> FloatArray:
    """L1-normalised 8 x 3 x 3 HSV histogram; greys, black and white binned by value only."""
    hist = cv2.calcHist([hsv], [0, 1, 2], None, _HIST_SIZE, _HIST_RANGES)
    hist = np.asarray(hist, np.float64).reshape(_H_BINS, _S_BINS, _V_BINS)
    # Unsaturated pixels have no meaningful hue: pool them into hue bin 0.
    hist[0, 0, :] = hist[:, 0, :].sum(axis=0)
    hist[1:, 0, :] = 0.0
    flat = np.asarray(hist, np.float64).ravel()
    return flat / max(float(flat.sum()), 1.0)


_HIST_SIZE = [_H_BINS, _S_BINS, _V_BINS]
_HIST_RANGES = [0, 180, 0, 256, 0, 256]  # OpenCV's 8-bit hue runs 0-179
