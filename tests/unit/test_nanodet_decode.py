"""GFL box decoding of NanoDet outputs (no model needed)."""

from __future__ import annotations

import doctest

import numpy as np

from crowdsight.perception import nanodet
from crowdsight.perception.nanodet import gfl_decode


def test_docstring_example() -> None:
    assert doctest.testmod(nanodet).failed == 0


def test_distance_is_the_distribution_mean_and_cell_centre_is_offset() -> None:
    bins = 11
    scores = np.zeros((6, 3), np.float32)
    scores[4, 2] = 0.8  # cell (x=1, y=1) of a 3×2 grid
    logits = np.full((6, 4, bins), -30.0, np.float32)
    logits[4, :, 2] = 0.0  # each side: half the mass on 2 bins, half on 4 -> mean 3
    logits[4, :, 4] = 0.0
    xyxy, sc, cl = gfl_decode(scores, logits.reshape(6, -1), 16, (3, 2), conf_threshold=0.5)
    centre = 1.5 * 16
    np.testing.assert_allclose(xyxy[0], [centre - 48, centre - 48, centre + 48, centre + 48])
    assert sc.tolist() == [np.float32(0.8)] and cl.tolist() == [2]
    shifted, _, _ = gfl_decode(
        scores, logits.reshape(6, -1), 16, (3, 2), conf_threshold=0.5, center_offset=0.0
    )
    np.testing.assert_allclose(shifted[0] - xyxy[0], -8.0)


def test_nothing_above_threshold_gives_empty_arrays() -> None:
    xyxy, sc, cl = gfl_decode(
        np.full((4, 2), 0.1, np.float32),
        np.zeros((4, 44), np.float32),
        8,
        (2, 2),
        conf_threshold=0.5,
    )
    assert xyxy.shape == (0, 4) and len(sc) == 0 and len(cl) == 0
