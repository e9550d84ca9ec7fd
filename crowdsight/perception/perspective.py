"""Perspective from one frame's person boxes: how tall a person is at each image row.

In a camera looking down a scene, people higher in the image are farther away and smaller.
A line through (head row, box height) of the boxes a detector found in a frame is enough to
size a person anywhere in it (`crowdsight.perception.density_people`) and to tell where the
detector sees people large enough to count them one by one (`crowdsight.perception.fusion`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import FloatArray

#: Person width as a fraction of its height (upright pedestrians, COCO/MOT boxes ≈ 0.35–0.45).
WIDTH_RATIO = 0.4
#: Head centre below the box top as a fraction of the box height.
HEAD_OFFSET = 0.08


@dataclass(frozen=True)
class HeightModel:
    """Person height in pixels as a linear function of the head's y: ``h = a + b·y``."""

    a: float
    b: float

    def height_at(self, y: npt.ArrayLike) -> FloatArray:
        """Heights for head rows ``y`` (never below 8 px)."""
        return np.maximum(self.a + self.b * np.asarray(y, np.float64), 8.0).astype(np.float32)


def fit_heights(person_xyxy: npt.ArrayLike, min_boxes: int = 3) -> HeightModel | None:
    """Height against head row, fitted on this frame's person boxes (None: too few boxes).

    A least-squares line through (top y, height), with the slope kept ≥ 0 (in a camera looking
    down a scene people do not shrink towards the bottom); with boxes all at one height the
    line is flat at their median.
    """
    boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4)
    if len(boxes) < min_boxes:
        return None
    h = boxes[:, 3] - boxes[:, 1]
    y = head_rows(boxes).astype(np.float64)
    if np.ptp(y) < 1.0:
        return HeightModel(float(np.median(h)), 0.0)
    b, a = np.polyfit(y, h, 1)
    if b < 0:
        return HeightModel(float(np.median(h)), 0.0)
    return HeightModel(float(a), float(b))


def head_rows(person_xyxy: npt.ArrayLike) -> FloatArray:
    """The head's row (frame px) of each person box: `HEAD_OFFSET` of its height below the top."""
    boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4)
    return (boxes[:, 1] + HEAD_OFFSET * (boxes[:, 3] - boxes[:, 1])).astype(np.float32)


#: Height (m) of the nominal person the ground-plane model is written for.
NOMINAL_HEIGHT_M = 1.7
#: Shortest and tallest standing heights (m) a public space holds, a priori: 0.85 m is a
#: small child (or a seated adult, about half a standing one); 1.95 m a very tall adult.
SHORTEST_M, TALLEST_M = 0.85, 1.95
#: A box fits the ground plane when its head row is within this share of the person's
#: height (in nominal-person units) of the line: adult heights vary ±10 % (2 s.d. ≈ ±8 %) and
#: detector boxes a few % more. A priori, not tuned.
GROUND_TOLERANCE = 0.15
#: Share of the boxes that must fit the ground plane before it is believed: a majority.
GROUND_MIN_INLIERS = 0.5
#: How far (in person heights) from head height a camera may be to count as eye level:
#: mounted at 1.3–2.1 m, a street or handheld camera. A priori.
EYE_LEVEL_TOLERANCE = 0.25
#: Widest box (width ÷ height) taken as a whole upright person for the floor fit: walking
#: people's boxes are 0.3–0.5 of their height (`WIDTH_RATIO` 0.4); a priori.
UPRIGHT_MAX_ASPECT = 0.6


@dataclass(frozen=True)
class GroundPlane:
    """Where people's heads can be, for a camera looking over a flat floor.

    Hoiem, Efros & Hebert ("Putting Objects in Perspective", CVPR 2006): for a camera at
    height ``k`` person-heights over a flat floor with its horizon at image row ``horizon``,
    a person of the nominal height who appears ``h`` px tall has the head at
    ``horizon + (k - 1)·h``; a person ``P`` m tall at ``horizon + (k·1.7/P - 1)·h``. So heads
    lie in a band of rows that only depends on how tall people may look there: nobody's head
    is above it (sky, tree tops, façades) and, for people shorter than a size, below it. A
    camera at head height (a street camera at eye level, ``k ≈ 1``) puts every far head on
    one row: the band is narrow and the density model's guesses on trees, walls and the
    pavement outside it are dropped.
    """

    horizon: float
    """Image row (px) of the floor's horizon."""
    k: float
    """Camera height over the floor, in nominal person heights (1: at head height)."""
    inliers: float
    """Share of the boxes the fit explains."""
    n_boxes: int

    @property
    def eye_level(self) -> bool:
        """Camera at head height (within `EYE_LEVEL_TOLERANCE`): the horizon is *seen*.

        Every far head lies on the horizon row, so the band is narrow and the boxes show it
        directly. From higher up the horizon is extrapolated from the people the detector
        finds — in a packed crowd only the near ones — and a band drawn from it would cut
        the far crowd.
        """
        return abs(self.k - 1.0) <= EYE_LEVEL_TOLERANCE

    def head_band(self, max_height_px: float) -> tuple[float, float]:
        """Rows (px) where heads of people at most ``max_height_px`` tall can be."""
        lo = self.k * NOMINAL_HEIGHT_M / TALLEST_M - 1.0
        hi = self.k * NOMINAL_HEIGHT_M / SHORTEST_M - 1.0
        return (
            self.horizon + min(0.0, lo) * max_height_px,
            self.horizon + max(0.0, hi) * max_height_px,
        )


def fit_ground_plane(
    person_xyxy: npt.ArrayLike,
    min_boxes: int = 8,
    tolerance: float = GROUND_TOLERANCE,
    min_inliers: float = GROUND_MIN_INLIERS,
) -> GroundPlane | None:
    """The floor's horizon and camera height from person boxes (None: they do not agree).

    A consensus line through (box height, head row): least squares, then three rounds of
    keeping the boxes within ``tolerance`` of a person's height of it and refitting. Believed
    only when at least ``min_boxes`` and a ``min_inliers`` share of the whole, upright
    people's boxes (`UPRIGHT_MAX_ASPECT`) fit, no box has its head where the floor says none
    can be, and the camera is at least at half a person's height.
    The ``min_boxes`` default is the same a-priori minimum as the density scale's.
    """
    boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4)
    h = boxes[:, 3] - boxes[:, 1]
    # Only whole, upright people: the model needs a person's full height, and a box of head
    # and shoulders (a packed crowd, or a person cut by the frame) is wider than it is tall.
    upright = (h > 1.0) & (boxes[:, 2] - boxes[:, 0] <= UPRIGHT_MAX_ASPECT * h)
    all_heads, all_h = head_rows(boxes).astype(np.float64), h
    y, h = all_heads[upright], h[upright]
    if len(h) < min_boxes or np.ptp(h) < 1.0:
        return None
    keep = np.ones(len(h), bool)
    c = v0 = 0.0
    for _ in range(3):
        c, v0 = (float(v) for v in np.polyfit(h[keep], y[keep], 1))
        keep = np.abs(y - (v0 + c * h)) <= tolerance * max(c + 1.0, 0.5) * h
        if keep.sum() < min_boxes:
            return None
    share = float(keep.mean())
    if share < min_inliers or c + 1.0 < 0.5:
        return None
    plane = GroundPlane(v0, c + 1.0, round(share, 3), len(h))
    # A person seen where the floor says no head can be (above the band of people as tall
    # as the tallest box) means another level, a slope or a wrong fit: believe the person.
    if (all_heads < plane.head_band(float(all_h.max()))[0] - tolerance * all_h).any():
        return None
    return plane


class GroundPlaneEstimate:
    """A camera's floor, fitted on the person boxes of its recent frames.

    One frame holds too few people to trust a floor everywhere; a fixed camera's boxes from
    many frames all stand on the same floor. Keeps the last ``window`` boxes and refits at
    most every ``every_s`` seconds (the fit is a few small least-squares lines).
    """

    def __init__(self, window: int = 2000, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._boxes: deque[tuple[float, float, float, float]] = deque(maxlen=window)
        self._fitted_at: float | None = None
        self._new = 0
        self.plane: GroundPlane | None = None
        """The floor in use (None: the boxes do not agree on one yet)."""

    def observe(self, person_xyxy: npt.ArrayLike, ts_s: float) -> GroundPlane | None:
        """Add one frame's person boxes seen at ``ts_s`` seconds; the floor in use after it."""
        boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4)
        self._boxes.extend((float(a), float(b), float(c), float(d)) for a, b, c, d in boxes)
        self._new += len(boxes)
        last = self._fitted_at
        if self._new and (last is None or ts_s < last or ts_s - last >= self.every_s):
            self.plane = fit_ground_plane(np.array(self._boxes, np.float64))
            self._fitted_at, self._new = ts_s, 0
        return self.plane

    def reset(self) -> None:
        """Forget the boxes (the camera was re-aimed or its resolution changed)."""
        self._boxes.clear()
        self._fitted_at, self._new, self.plane = None, 0, None
