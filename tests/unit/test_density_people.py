"""Density peaks as people the detector missed (synthetic maps, no model needed)."""

from __future__ import annotations

import numpy as np

from crowdsight.core.types import CLASS_NAME, DensityMap, Detections
from crowdsight.perception.density_people import (
    ORIGIN,
    density_peaks,
    fit_heights,
    missed_people,
    with_missed_people,
)
from crowdsight.perception.fusion import person_boxes


def blob_map(cells: list[tuple[int, int]], shape=(60, 80)) -> DensityMap:
    """A map with one person (mass 1, Gaussian σ = 1 cell) at each (row, col)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    d = np.zeros(shape, np.float32)
    for r, c in cells:
        g = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 2.0)
        d += (g / g.sum()).astype(np.float32)
    return DensityMap(d, (shape[1] * 8, shape[0] * 8))


def people(boxes: list[list[float]]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.zeros(len(boxes), int),
        data={CLASS_NAME: np.full(len(boxes), "person")},
    )


def test_the_maps_count_decides_how_many_peaks() -> None:
    dm = blob_map([(10, 10), (30, 40), (50, 70)])
    pts, mass = density_peaks(dm)
    assert len(pts) == 3
    want = {(10 * 8 + 4, 10 * 8 + 4), (40 * 8 + 4, 30 * 8 + 4), (70 * 8 + 4, 50 * 8 + 4)}
    assert {tuple(p) for p in pts.astype(int).tolist()} == want
    assert (mass > 0.5).all()
    assert len(density_peaks(dm, min_mass=2.0)[0]) == 0


def test_uncovered_peaks_become_person_boxes_sized_by_perspective() -> None:
    dm = blob_map([(10, 10), (30, 40), (50, 70)])
    # The detector found the person at (40, 30) cells = (324, 244) px, plus two others
    # elsewhere that set the perspective: 40 px tall near the top, 120 px near the bottom.
    dets = people([[304, 226, 344, 306], [600, 20, 616, 60], [440, 330, 488, 450]])
    extra = missed_people(dm, dets)
    assert len(extra) == 2
    assert set(extra.data[ORIGIN]) == {"density"}
    heights = extra.xyxy[:, 3] - extra.xyxy[:, 1]
    tops = extra.xyxy[:, 1]
    assert heights[np.argmax(tops)] > heights[np.argmin(tops)]  # lower in frame: taller
    for (x, y), box in zip([(84, 84), (564, 404)], sorted(extra.xyxy.tolist()), strict=True):
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3]


def test_too_few_boxes_for_perspective_adds_nothing() -> None:
    dm = blob_map([(10, 10), (30, 40)])
    assert fit_heights(np.zeros((2, 4))) is None
    assert len(missed_people(dm, people([[0, 0, 10, 30]]))) == 0


def test_merged_rows_are_marked_and_kept_out_of_fusion() -> None:
    dm = blob_map([(10, 10), (30, 40), (50, 70)])
    dets = people([[304, 226, 344, 306], [600, 20, 616, 60], [440, 330, 488, 450]])
    merged = with_missed_people(dm, dets)
    assert len(merged) == 5
    assert merged.data[ORIGIN].tolist().count("detector") == 3
    assert len(person_boxes(merged)) == 3  # density-made boxes never feed fusion or scale
    assert with_missed_people(None, dets) is dets
