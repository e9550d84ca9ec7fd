"""DensityMap invariants and the tiling plan (pure, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsight.core.types import DensityMap
from crowdsight.perception.density import _mask_to_cells, plan_tiles


@pytest.mark.parametrize("shape", [(4, 4), (60, 80), (135, 240)])
def test_count_is_sum_and_survives_upsampling(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    d = rng.gamma(0.3, 0.05, shape).astype(np.float32)
    dm = DensityMap(d, (shape[1] * 8, shape[0] * 8))
    assert dm.count == pytest.approx(float(d.sum(dtype=np.float64)), rel=1e-9)
    assert float(dm.to_image_resolution().sum(dtype=np.float64)) == pytest.approx(
        dm.count, rel=1e-4
    )
    assert dm.scale_xy == (8.0, 8.0)


def test_count_in_mask_splits_the_total() -> None:
    d = np.zeros((10, 10), np.float32)
    d[:, :5] = 1.0
    dm = DensityMap(d, (80, 80))
    left = np.zeros((80, 80), bool)
    left[:, :40] = True
    assert dm.count_in_mask(left) == pytest.approx(50.0, rel=1e-3)
    assert dm.count_in_mask(~left) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError):
        dm.count_in_mask(np.ones((8, 8), bool))


def test_density_must_be_2d() -> None:
    with pytest.raises(ValueError):
        DensityMap(np.zeros((1, 4, 4), np.float32), (32, 32))


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"),
    [(10, 10, 16, 4), (100, 37, 32, 8), (135, 240, 64, 16), (257, 129, 128, 16), (64, 64, 64, 8)],
)
def test_tile_keep_regions_partition_the_grid(h: int, w: int, tile: int, overlap: int) -> None:
    cover = np.zeros((h, w), np.int32)
    for t in plan_tiles(h, w, tile, overlap):
        assert 0 <= t.y0 <= t.keep_y0 < t.keep_y1 <= t.y0 + t.h <= h
        assert 0 <= t.x0 <= t.keep_x0 < t.keep_x1 <= t.x0 + t.w <= w
        cover[t.keep_y0 : t.keep_y1, t.keep_x0 : t.keep_x1] += 1
    assert (cover == 1).all()


def test_mask_to_cells_majority() -> None:
    m = np.zeros((16, 16), bool)
    m[:, :6] = True  # 6 of 8 columns of the first cell column
    cells = _mask_to_cells(m, 2, 2)
    assert cells.tolist() == [[True, False], [True, False]]
