"""Which input scale the density model should see a camera's frames at.

CSRNet (trained on ShanghaiTech A) counts people well only near the sizes it was trained on:
a 1080p street camera whose pedestrians are 150–250 px tall reads as a crowd of ~180 where
42 people walk. The fix is to resize each camera's frames so its people look like the ones
the model counts well. That size is `TARGET_PERSON_PX`; a camera's person size comes from
what crowdsight already measures:

* the detector's person boxes over the first seconds of footage (median box height), or
* the scene's ground-plane calibration: the image height of a 1.7 m person standing at
  sample floor positions (`heights_from_calibration`).

`DensityScale` keeps that estimate per camera: it fixes the scale after the first
`warmup_s` seconds (or `min_boxes` boxes), then re-estimates it slowly (a step of
`rate` in log-scale every `every_s` seconds towards the recent boxes), so a camera that is
re-aimed or zoomed is followed without the count jumping. A configured scale overrides it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

#: Median person-box height (px) at which the density model counts well. Chosen a priori on
#: training footage, Mall frames 1–800 (every 20th, 640×480): there CSRNet counts best at its
#: native scale (MAE 4.14 at scale 1 vs 4.71 at 0.75 and 15.8 at 1.25), and the bundled
#: SSDLite detector's person boxes have a median height of 125.6 px (199 boxes; both printed
#: by ``benchmarks/density_scale.py --part scale``). Resizing a camera so its median person
#: box is this tall puts its people in that regime. Never tuned on a test split.
TARGET_PERSON_PX = 126.0

#: Scales are clipped to this range: below 0.2 a 1080p frame is under 400 px wide and heads
#: vanish; above 1.0 the model would be asked to count people smaller than its training
#: crowds, which it already does natively (dense crowds), at 1/s² more compute.
MIN_SCALE, MAX_SCALE = 0.2, 1.0

#: Height of the reference person for ground-plane calibrations (metres).
PERSON_HEIGHT_M = 1.7

ScaleSource = Literal["default", "boxes", "calibration", "config"]


def scale_for_heights(
    heights_px: npt.ArrayLike, target_px: float = TARGET_PERSON_PX, min_boxes: int = 8
) -> float | None:
    """Input scale that brings the median person height to ``target_px`` (None: too few).

    Example:
        >>> scale_for_heights([252.0] * 10)
        0.5
        >>> scale_for_heights([40.0] * 10)    # already small people: never upscaled
        1.0
        >>> scale_for_heights([252.0] * 3) is None
        True
    """
    h = np.asarray(heights_px, np.float64).ravel()
    h = h[np.isfinite(h) & (h > 0)]
    if h.size < min_boxes:
        return None
    return float(np.clip(target_px / float(np.median(h)), MIN_SCALE, MAX_SCALE))


def heights_from_calibration(
    image_to_ground: npt.NDArray[np.float64],
    feet_xy: npt.ArrayLike,
    person_m: float = PERSON_HEIGHT_M,
) -> npt.NDArray[np.float64]:
    """Image height (px) of a ``person_m`` person standing at each image point ``feet_xy``.

    Uses the local ground scale of the image→ground homography: at a floor point, one metre
    on the floor spans ``1 / sqrt(|det J|)`` pixels (J: the homography's Jacobian there), and
    a standing person is taken to span ``person_m`` times that. This is exact for a camera
    looking straight down the vertical and a fair approximation for the oblique views of
    CCTV, where it is used only for a median.
    """
    hm = np.asarray(image_to_ground, np.float64).reshape(3, 3)
    pts = np.asarray(feet_xy, np.float64).reshape(-1, 2)
    out = np.empty(len(pts), np.float64)
    for i, (x, y) in enumerate(pts):
        u, v, w = hm @ np.array([x, y, 1.0])
        # d(u/w)/dx etc. by the quotient rule.
        j = np.array(
            [
                [(hm[0, 0] * w - u * hm[2, 0]) / w**2, (hm[0, 1] * w - u * hm[2, 1]) / w**2],
                [(hm[1, 0] * w - v * hm[2, 0]) / w**2, (hm[1, 1] * w - v * hm[2, 1]) / w**2],
            ]
        )
        det = abs(float(np.linalg.det(j)))  # m² per px²
        out[i] = person_m / math.sqrt(det) if det > 0 else np.nan
    return out


@dataclass(frozen=True)
class ScaleStatus:
    """What the dashboard shows: "density scale 0.5, from 240 person boxes"."""

    scale: float
    source: ScaleSource
    n_boxes: int

    def describe(self) -> str:
        """Example:
        >>> ScaleStatus(0.5, "boxes", 240).describe()
        'density scale 0.5, from 240 person boxes'
        """
        where = {
            "boxes": f"from {self.n_boxes} person boxes",
            "calibration": "from the ground-plane calibration",
            "config": "set in config",
            "default": "default (no people seen yet)",
        }[self.source]
        return f"density scale {self.scale:.2g}, {where}"


class DensityScale:
    """Per-camera density input scale, learned from person boxes or fixed.

    Args:
        fixed: A configured scale (overrides everything; source "config").
        calibration_heights_px: Person heights from the ground-plane calibration; used from
            the start (source "calibration") until enough boxes have been seen.
        warmup_s: Seconds of boxes collected before the first box-based estimate.
        min_boxes: Boxes needed for an estimate.
        every_s, rate: After warm-up, every ``every_s`` seconds move ``rate`` of the way (in
            log-scale) towards the estimate from the last ``window`` boxes; 60 s and 0.2
            mean a re-aimed camera is followed within ~10 minutes and a passing group of
            children or a bus queue barely moves the scale.
        window: Recent box heights kept for re-estimation.
    """

    def __init__(
        self,
        fixed: float | None = None,
        *,
        calibration_heights_px: Sequence[float] | None = None,
        warmup_s: float = 5.0,
        min_boxes: int = 8,
        every_s: float = 60.0,
        rate: float = 0.2,
        window: int = 2000,
    ) -> None:
        if fixed is not None and fixed <= 0:
            raise ValueError(f"density scale must be > 0, got {fixed}")
        self.fixed = fixed
        self.warmup_s, self.min_boxes = warmup_s, min_boxes
        self.every_s, self.rate = every_s, rate
        self._calib = (
            scale_for_heights(calibration_heights_px, min_boxes=1)
            if calibration_heights_px is not None
            else None
        )
        self._heights: deque[float] = deque(maxlen=window)
        self.reset()

    def set_calibration(self, heights_px: Sequence[float] | npt.ArrayLike) -> None:
        """Person heights (px) from a ground-plane calibration: the scale until boxes decide."""
        self._calib = scale_for_heights(heights_px, min_boxes=1)

    def reset(self) -> None:
        """Forget boxes seen (a configured or calibrated scale stays)."""
        self._heights.clear()
        self._n_boxes = 0
        self._t0: float | None = None
        self._last_update: float | None = None
        self._learned: float | None = None

    def observe(self, heights_px: npt.ArrayLike, ts_s: float) -> None:
        """Add this frame's person box heights (px) seen at ``ts_s`` seconds."""
        if self.fixed is not None:
            return
        h = np.asarray(heights_px, np.float64).ravel()
        self._heights.extend(float(v) for v in h if v > 0)
        self._n_boxes += int((h > 0).sum())
        if self._t0 is None or ts_s < self._t0:
            self._t0 = ts_s
        if self._learned is None:
            if ts_s - self._t0 >= self.warmup_s or len(self._heights) >= 20 * self.min_boxes:
                est = scale_for_heights(self._heights, min_boxes=self.min_boxes)
                if est is not None:
                    self._learned, self._last_update = est, ts_s
            return
        assert self._last_update is not None
        if ts_s - self._last_update >= self.every_s or ts_s < self._last_update:
            est = scale_for_heights(self._heights, min_boxes=self.min_boxes)
            if est is not None:
                log_s = (1 - self.rate) * math.log(self._learned) + self.rate * math.log(est)
                self._learned = math.exp(log_s)
            self._last_update = ts_s

    @property
    def status(self) -> ScaleStatus:
        """The scale to use now and where it came from."""
        if self.fixed is not None:
            return ScaleStatus(self.fixed, "config", 0)
        if self._learned is not None:
            return ScaleStatus(round(self._learned, 3), "boxes", self._n_boxes)
        if self._calib is not None:
            return ScaleStatus(round(self._calib, 3), "calibration", self._n_boxes)
        return ScaleStatus(1.0, "default", self._n_boxes)

    @property
    def scale(self) -> float:
        return self.status.scale
