"""The converted CSRNet on real images: tiling, ROI, padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsight.perception.density import DensityEstimator
from crowdsight.sources.files import read_image

pytestmark = [pytest.mark.models, pytest.mark.data]


@pytest.fixture(scope="module")
def image(shared_data: Path, csrnet: None) -> np.ndarray:
    return read_image(shared_data / "shanghaitech_partA_test/images/IMG_3.jpg")


def test_tiled_agrees_with_untiled_within_1_percent(image: np.ndarray) -> None:
    whole = DensityEstimator().estimate(image)
    tiled = DensityEstimator(max_tile_px=50_000, tile_px=256, overlap_px=128).estimate(image)
    assert tiled.density.shape == whole.density.shape
    assert abs(tiled.count - whole.count) / whole.count < 0.01


def test_odd_sizes_are_padded_and_cropped(image: np.ndarray) -> None:
    crop = image[:203, :301]
    dm = DensityEstimator().estimate(crop)
    assert dm.density.shape == (26, 38)
    assert dm.resolution_wh == (301, 203)
    assert dm.count > 0


def test_roi_mask_counts_only_inside(image: np.ndarray) -> None:
    est = DensityEstimator()
    full = est.estimate(image)
    h, w = image.shape[:2]
    top = np.zeros((h, w), bool)
    top[: h // 2] = True
    upper = est.estimate(image, roi_mask=top)
    lower = est.estimate(image, roi_mask=~top)
    assert upper.count + lower.count == pytest.approx(full.count, rel=0.02)
    assert 0 < upper.count < full.count
