"""Pure, vectorized geometry for zones, lines and ground-plane measurements.

Every function takes numpy arrays of points (``N×2``, ``x, y`` in image pixels unless the
name says metres) and returns arrays; nothing here keeps state. Analytics build on these:
zones use `points_in_polygon`, line counters use `side_of_line` / `crossings`, density per
m² uses `Homography` and `polygon_area`.

Conventions:
    * Image coordinates: x to the right, y down, origin at the top-left pixel corner.
    * A polygon is a ``K×2`` array of vertices (closed implicitly, any orientation).
    * The anchor of a box is its bottom-centre (where a person stands on the ground).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PointsLike = npt.ArrayLike


def as_points(points: PointsLike) -> F64:
    """``points`` as an ``N×2`` float64 array (one point ``(x, y)`` becomes ``1×2``).

    Raises:
        ValueError: If the input is not shaped ``(2,)`` or ``(N, 2)``.
    """
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"expected N×2 points, got shape {arr.shape}")
    return arr


def box_anchors(xyxy: PointsLike) -> F64:
    """Bottom-centre of each ``x1, y1, x2, y2`` box: where a standing person touches the floor.

    Example:
        >>> box_anchors([[0, 0, 10, 20]]).tolist()
        [[5.0, 20.0]]
    """
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2.0, b[:, 3]], axis=1)


def points_in_polygon(points: PointsLike, polygon: PointsLike) -> BoolArray:
    """Which of ``N`` points lie inside a polygon (even-odd rule, all points at once).

    Points exactly on an edge may fall either side; zones are drawn by hand, so a pixel's
    ambiguity on the border does not matter, but speed does (this is one numpy pass over
    the K edges, O(N·K)).

    Args:
        points: ``N×2`` points.
        polygon: ``K×2`` vertices, K ≥ 3.

    Returns:
        Boolean array of length N.

    Example:
        >>> points_in_polygon([[1, 1], [5, 5]], [[0, 0], [2, 0], [2, 2], [0, 2]]).tolist()
        [True, False]
    """
    p = as_points(points)
    poly = as_points(polygon)
    if len(poly) < 3:
        raise ValueError("a polygon needs at least 3 vertices")
    x, y = p[:, 0:1], p[:, 1:2]  # N×1, broadcast against the K edges
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hits = straddles & (x < x_cross)
    inside: BoolArray = (np.count_nonzero(hits, axis=1) % 2) == 1
    return inside


def polygon_mask(polygon: PointsLike, resolution_wh: tuple[int, int]) -> BoolArray:
    """A ``H×W`` boolean mask of the pixels whose centres fall inside ``polygon``.

    The same even-odd rule as `points_in_polygon`, by scanlines: each row's edge crossings
    toggle a running parity, so memory is O(H·W) and time O(H·K + H·W) even at 4K.

    Args:
        polygon: ``K×2`` vertices in pixels of the target resolution.
        resolution_wh: (width, height) of the mask.

    Example:
        >>> polygon_mask([[0, 0], [2, 0], [2, 2], [0, 2]], (3, 3)).sum()
        np.int64(4)
    """
    w, h = resolution_wh
    poly = as_points(polygon)
    if len(poly) < 3:
        raise ValueError("a polygon needs at least 3 vertices")
    y = np.arange(h, dtype=np.float64)[:, None] + 0.5  # H×1 row centres
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)  # H×K
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    rows, edges = np.nonzero(straddles)
    # Pixel i (centre i + 0.5) has this crossing at or left of it from i = ceil(x - 0.5) on.
    start = np.clip(np.ceil(x_cross[rows, edges] - 0.5), 0, w).astype(np.int64)
    toggles = np.zeros((h, w + 1), dtype=np.int64)
    np.add.at(toggles, (rows, start), 1)
    left_of = np.cumsum(toggles[:, :w], axis=1)
    # Crossings per row are even, so "odd to the right" equals "odd at or to the left".
    mask: BoolArray = (left_of % 2) == 1
    return mask


def scale_polygon(polygon: PointsLike, from_wh: tuple[int, int], to_wh: tuple[int, int]) -> F64:
    """A polygon drawn at one resolution, expressed at another (e.g. a density map's)."""
    poly = as_points(polygon)
    sx, sy = to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]
    out: F64 = poly * np.array([sx, sy])
    return out


def side_of_line(points: PointsLike, a: PointsLike, b: PointsLike) -> F64:
    """Signed side of each point relative to the directed line ``a → b``.

    Positive on the left of ``a → b`` as drawn on screen (y down), i.e. the sign of the
    2-D cross product ``(b − a) × (p − a)``; zero on the line. The magnitude is twice the
    triangle area, so compare signs, not values.

    Example:
        >>> side_of_line([[0, -1], [0, 1]], [-1, 0], [1, 0]).tolist()
        [-2.0, 2.0]
    """
    p = as_points(points)
    a_ = as_points(a)[0]
    b_ = as_points(b)[0]
    d = b_ - a_
    out: F64 = d[0] * (p[:, 1] - a_[1]) - d[1] * (p[:, 0] - a_[0])
    return out


def segments_intersect(p0: PointsLike, p1: PointsLike, a: PointsLike, b: PointsLike) -> BoolArray:
    """Whether each movement segment ``p0[i] → p1[i]`` crosses the segment ``a–b``.

    Proper crossings only: a movement that starts or ends exactly on the line is not a
    crossing. Callers that follow tracks keep each track's last position *off* the line as
    ``p0`` (as `crowdsight.analytics.lines.LineCounter` does), so a track that pauses on
    the line is still counted once when it leaves it.
    """
    q0, q1 = as_points(p0), as_points(p1)
    s0 = np.sign(side_of_line(q0, a, b))
    s1 = np.sign(side_of_line(q1, a, b))
    a_ = as_points(a)
    b_ = as_points(b)
    t0 = np.sign(_cross(q1 - q0, a_ - q0))
    t1 = np.sign(_cross(q1 - q0, b_ - q0))
    out: BoolArray = (s0 * s1 < 0) & (t0 * t1 <= 0) & ~((t0 == 0) & (t1 == 0))
    return out


def _cross(u: F64, v: F64) -> F64:
    out: F64 = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    return out


def crossings(
    prev: PointsLike, curr: PointsLike, a: PointsLike, b: PointsLike, in_side: int = 1
) -> npt.NDArray[np.int8]:
    """Line crossings between two positions of N tracks: +1 in, −1 out, 0 none.

    Args:
        prev: ``N×2`` positions at the previous step.
        curr: ``N×2`` positions now (same track order).
        a, b: End points of the counting line (the segment, not the infinite line).
        in_side: ``+1`` if the "in" side is the left of ``a → b`` (positive
            `side_of_line`), ``-1`` if it is the right.

    Example:
        >>> crossings([[0, -1]], [[0, 1]], [-1, 0], [1, 0]).tolist()
        [1]
    """
    hit = segments_intersect(prev, curr, a, b)
    to_side = np.sign(side_of_line(curr, a, b)) * in_side
    out: npt.NDArray[np.int8] = np.where(hit, to_side, 0).astype(np.int8)
    return out


def angle_between_deg(u: PointsLike, v: PointsLike) -> F64:
    """Angle in degrees (0–180) between each row vector of ``u`` and ``v`` (broadcast)."""
    uu, vv = as_points(u), as_points(v)
    nu = np.linalg.norm(uu, axis=1)
    nv = np.linalg.norm(vv, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.sum(uu * vv, axis=1) / (nu * nv)
    out: F64 = np.degrees(np.arccos(np.clip(np.nan_to_num(cos, nan=1.0), -1.0, 1.0)))
    return out


def polygon_area(polygon: PointsLike) -> float:
    """Area of a simple polygon (shoelace formula), in the units of its coordinates squared."""
    p = as_points(polygon)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


@dataclass(frozen=True)
class Homography:
    """A 3×3 planar mapping from image pixels to ground-plane metres.

    Build it with `Homography.fit` from ≥4 image↔ground point pairs measured on the floor.
    Points off the ground plane (heads) map wrongly, which is why tracks use box anchors.

    Attributes:
        matrix: 3×3 image→ground matrix.
    """

    matrix: F64

    @classmethod
    def fit(cls, image_px: PointsLike, ground_m: PointsLike) -> Homography:
        """Least-squares homography from pairs (``cv2.findHomography``, method 0).

        Raises:
            ValueError: With fewer than 4 pairs, collinear points, or a singular result.
        """
        src, dst = as_points(image_px), as_points(ground_m)
        if len(src) != len(dst) or len(src) < 4:
            raise ValueError("need at least 4 image↔ground point pairs of equal length")
        for name, pts in (("image", src), ("ground", dst)):
            # Relative to the points' own extent (per axis: x and y may live far apart, as
            # UTM eastings and northings do).
            if _max_triangle_area(pts) < 1e-6 * max(1.0, float(np.ptp(pts, axis=0).max())) ** 2:
                raise ValueError(f"{name} points are collinear (degenerate calibration)")
        matrix, _ = cv2.findHomography(src, dst, 0)
        if matrix is None or not np.all(np.isfinite(matrix)):
            raise ValueError("no homography fits these point pairs")
        if abs(np.linalg.det(matrix)) < 1e-12:
            raise ValueError("the fitted homography is singular")
        return cls(np.asarray(matrix, dtype=np.float64))

    def to_ground(self, points_px: PointsLike) -> F64:
        """Map ``N×2`` image points to ground metres."""
        p = as_points(points_px)
        h = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ self.matrix.T
        out: F64 = h[:, :2] / h[:, 2:3]
        return out

    def area_m2(self, polygon_px: PointsLike) -> float:
        """Ground area of an image polygon in m² (the polygon's vertices are mapped)."""
        return polygon_area(self.to_ground(polygon_px))

    def pixel_area_m2(self, resolution_wh: tuple[int, int], step: int = 8) -> F64:
        """Ground area in m² covered by each ``step×step`` image block (for per-m² maps).

        Uses the local Jacobian of the mapping at each block centre.
        """
        w, h = resolution_wh
        ys, xs = np.mgrid[step / 2 : h : step, step / 2 : w : step]
        c = np.stack([xs.ravel(), ys.ravel()], axis=1)
        g0 = self.to_ground(c)
        gx = self.to_ground(c + np.array([1.0, 0.0]))
        gy = self.to_ground(c + np.array([0.0, 1.0]))
        jac = np.abs(_cross(gx - g0, gy - g0)) * step * step
        out: F64 = jac.reshape(xs.shape)
        return out


def _max_triangle_area(pts: F64) -> float:
    # Largest triangle among points: zero iff all points are collinear.
    centre = pts.mean(axis=0)
    far = pts[np.argmax(np.linalg.norm(pts - centre, axis=1))]
    d = pts - far
    far2 = pts[np.argmax(np.linalg.norm(d, axis=1))]
    u = far2 - far
    return float(np.max(np.abs(u[0] * d[:, 1] - u[1] * d[:, 0])) / 2.0)


def speed_from_history(
    ts_s: Sequence[float] | npt.ArrayLike,
    points: PointsLike,
    window_s: float = 1.0,
    homography: Homography | None = None,
) -> float:
    """Speed over the last ``window_s`` seconds of a track's anchor history.

    Uses displacement between the oldest point inside the window and the newest, divided by
    the time between them: a longer window averages out box jitter (walkers don't look like
    runners) but reacts later to a sprint.

    Args:
        ts_s: Timestamps in seconds (increasing), length T.
        points: ``T×2`` anchors in image pixels.
        window_s: Look-back window.
        homography: When given, speed is in m/s on the ground plane; otherwise px/s.

    Returns:
        The speed, or 0.0 with fewer than two samples or no elapsed time.

    Example:
        >>> speed_from_history([0.0, 1.0], [[0, 0], [3, 4]])
        5.0
    """
    t = np.asarray(ts_s, dtype=np.float64).ravel()
    p = as_points(points) if len(t) else np.zeros((0, 2))
    if len(t) < 2:
        return 0.0
    if homography is not None:
        p = homography.to_ground(p)
    start = int(np.searchsorted(t, t[-1] - window_s - 1e-9, side="left"))
    start = min(start, len(t) - 2)
    dt = t[-1] - t[start]
    if dt <= 0:
        return 0.0
    return float(np.linalg.norm(p[-1] - p[start]) / dt)


def velocity_from_history(
    ts_s: Sequence[float] | npt.ArrayLike,
    points: PointsLike,
    window_s: float = 1.0,
    homography: Homography | None = None,
) -> F64:
    """Mean velocity vector (units/s) over the last ``window_s`` seconds; zeros if undefined."""
    t = np.asarray(ts_s, dtype=np.float64).ravel()
    if len(t) < 2:
        return np.zeros(2)
    p = as_points(points)
    if homography is not None:
        p = homography.to_ground(p)
    start = min(int(np.searchsorted(t, t[-1] - window_s - 1e-9, side="left")), len(t) - 2)
    dt = t[-1] - t[start]
    if dt <= 0:
        return np.zeros(2)
    out: F64 = (p[-1] - p[start]) / dt
    return out
