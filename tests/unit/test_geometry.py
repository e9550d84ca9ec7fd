"""Pure geometry: tables of (input, expected)."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsight.core.geometry import (
    Homography,
    angle_between_deg,
    box_anchors,
    crossings,
    points_in_polygon,
    polygon_area,
    polygon_mask,
    scale_polygon,
    side_of_line,
    speed_from_history,
)

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]
CONCAVE_U = [[0, 0], [3, 0], [3, 8], [7, 8], [7, 0], [10, 0], [10, 10], [0, 10]]


@pytest.mark.parametrize(
    ("points", "polygon", "expected"),
    [
        ([[5, 5]], SQUARE, [True]),
        ([[15, 5], [-1, 5], [5, 11]], SQUARE, [False, False, False]),
        ([[5, 4], [5, 9], [1, 1], [9, 1]], CONCAVE_U, [False, True, True, True]),
        ([[1, 1], [3, 3]], [[0, 0], [4, 0], [0, 4]], [True, False]),
        (np.zeros((0, 2)), SQUARE, []),
    ],
)
def test_points_in_polygon(points: object, polygon: object, expected: list[bool]) -> None:
    assert points_in_polygon(points, polygon).tolist() == expected  # type: ignore[arg-type]


def test_points_in_polygon_rejects_two_vertices() -> None:
    with pytest.raises(ValueError, match="3 vertices"):
        points_in_polygon([[0, 0]], [[0, 0], [1, 1]])


@pytest.mark.parametrize(("wh", "expected_true"), [((10, 10), 100), ((20, 20), 100), ((4, 4), 16)])
def test_polygon_mask_counts_pixel_centres(wh: tuple[int, int], expected_true: int) -> None:
    mask = polygon_mask(SQUARE, wh)
    assert mask.shape == (wh[1], wh[0])
    assert int(mask.sum()) == expected_true


@pytest.mark.parametrize("seed", range(5))
def test_polygon_mask_equals_point_test_at_pixel_centres(seed: int) -> None:
    # Random (often self-intersecting) polygons, some with integer vertices so edges pass
    # exactly through pixel-centre rows: the scanline mask must match the point test.
    rng = np.random.default_rng(seed)
    for k in range(20):
        poly = rng.uniform(-5, 45, size=(int(rng.integers(3, 9)), 2))
        if k % 2:
            poly = np.round(poly)
        ys, xs = np.mgrid[0:30, 0:40]
        centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
        expected = points_in_polygon(centres, poly).reshape(30, 40)
        np.testing.assert_array_equal(polygon_mask(poly, (40, 30)), expected)


@pytest.mark.parametrize(
    ("points", "expected_sign"),
    [([[0, 1]], [1]), ([[0, -1]], [-1]), ([[5, 0]], [0]), ([[3, 2], [3, -2]], [1, -1])],
)
def test_side_of_line_sign(points: list[list[float]], expected_sign: list[int]) -> None:
    # a → b along +x; on screen (y down) positive y is to the left of the direction of travel.
    assert np.sign(side_of_line(points, [-1, 0], [1, 0])).tolist() == expected_sign


@pytest.mark.parametrize(
    ("prev", "curr", "in_side", "expected"),
    [
        ([[0, -1]], [[0, 1]], 1, [1]),  # crosses to the positive side: in
        ([[0, 1]], [[0, -1]], 1, [-1]),  # back: out
        ([[0, -1]], [[0, 1]], -1, [-1]),  # in-side flipped
        ([[5, -1]], [[5, 1]], 1, [0]),  # passes beyond the segment's end
        ([[0, -2]], [[0, -1]], 1, [0]),  # same side
        ([[0, -1]], [[0, 0]], 1, [0]),  # ends on the line: not yet
        ([[0, -1], [0.5, 1]], [[0, 1], [0.5, -1]], 1, [1, -1]),
    ],
)
def test_crossings(
    prev: list[list[float]], curr: list[list[float]], in_side: int, expected: list[int]
) -> None:
    assert crossings(prev, curr, [-1, 0], [1, 0], in_side).tolist() == expected


@pytest.mark.parametrize(
    ("polygon", "area"),
    [(SQUARE, 100.0), ([[0, 0], [4, 0], [0, 3]], 6.0), (CONCAVE_U, 100.0 - 32.0)],
)
def test_polygon_area(polygon: list[list[float]], area: float) -> None:
    assert polygon_area(polygon) == pytest.approx(area)
    assert polygon_area(polygon[::-1]) == pytest.approx(area)


def test_box_anchor_is_bottom_centre() -> None:
    assert box_anchors([[10, 20, 30, 80], [0, 0, 2, 2]]).tolist() == [[20, 80], [1, 2]]


def test_scale_polygon() -> None:
    assert scale_polygon(SQUARE, (10, 10), (20, 5)).tolist() == [[0, 0], [20, 0], [20, 5], [0, 5]]


def test_homography_maps_pairs_and_areas() -> None:
    img = [[100, 400], [500, 400], [400, 200], [200, 200]]  # a trapezoid seen in perspective
    ground = [[0, 0], [4, 0], [4, 6], [0, 6]]
    h = Homography.fit(img, ground)
    np.testing.assert_allclose(h.to_ground(img), ground, atol=1e-6)
    assert h.area_m2(img) == pytest.approx(24.0, rel=1e-6)
    blocks = h.pixel_area_m2((600, 500), step=10)
    assert blocks.shape == (50, 60)
    # Far from the camera (top of the image) one pixel covers more floor.
    assert blocks[20, 30] > blocks[39, 30]


@pytest.mark.parametrize(
    ("img", "ground", "match"),
    [
        ([[0, 0], [1, 1], [2, 2], [3, 3]], [[0, 0], [1, 0], [1, 1], [0, 1]], "collinear"),
        ([[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 0], [1, 1]], "at least 4"),
        ([[0, 0], [1, 0], [1, 1], [0, 1]], [[0, 0], [1, 0], [2, 0], [3, 0]], "collinear"),
    ],
)
def test_homography_rejects_degenerate(img: object, ground: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Homography.fit(img, ground)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ts", "points", "window", "expected"),
    [
        ([0.0, 1.0], [[0, 0], [3, 4]], 1.0, 5.0),
        ([0.0, 0.5, 1.0, 1.5, 2.0], [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]], 1.0, 2.0),
        ([0.0, 1.0, 2.0], [[0, 0], [0, 0], [10, 0]], 1.0, 10.0),  # only the last second
        ([0.0], [[0, 0]], 1.0, 0.0),
        ([1.0, 1.0], [[0, 0], [5, 0]], 1.0, 0.0),
    ],
)
def test_speed_from_history(
    ts: list[float], points: list[list[float]], window: float, expected: float
) -> None:
    assert speed_from_history(ts, points, window) == pytest.approx(expected)


def test_speed_in_metres_with_homography() -> None:
    h = Homography.fit([[0, 0], [100, 0], [100, 100], [0, 100]], [[0, 0], [2, 0], [2, 2], [0, 2]])
    assert speed_from_history([0.0, 1.0], [[0, 0], [50, 0]], 1.0, h) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("u", "v", "deg"), [([1, 0], [1, 0], 0.0), ([1, 0], [0, 1], 90.0), ([1, 0], [-1, 0], 180.0)]
)
def test_angle_between(u: list[float], v: list[float], deg: float) -> None:
    assert angle_between_deg(u, v)[0] == pytest.approx(deg)
