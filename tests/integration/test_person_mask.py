"""BlazePose's person mask on real PETA training crops (the installed ``blazepose`` model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_model

pytestmark = [pytest.mark.data, pytest.mark.models]

#: Two training crops (VIPeR: a man in a grey jumper against foliage; PRID: walking on a
#: pavement), each a single person filling the box's height.
CROPS = ("peta_train/VIPeR/archive/000_45_1.png", "peta_train/PRID/archive/0001_a.png")


@pytest.mark.parametrize("name", CROPS)
def test_mask_covers_the_person_and_not_the_corners(shared_data: Path, name: str) -> None:
    require_model("blazepose")
    from crowdsight.describe import peta
    from crowdsight.describe.features import FEATURE_WH, resize_crop
    from crowdsight.describe.pose import PersonMasker

    crop = resize_crop(peta.read_crop(shared_data / name))
    body = PersonMasker().one(crop)
    w, h = FEATURE_WH
    assert body.mask.shape == (h, w) and body.mask.dtype == np.float32
    assert body.flag > 0.5
    assert float(body.mask[40:60, 24:40].mean()) > 0.8  # the torso
    for corner in (body.mask[:10, :8], body.mask[:10, -8:]):  # the background above the shoulders
        assert float(corner.mean()) < 0.05
    # Shoulder, hip and ankle rows in order, where a box of a whole standing person has them.
    assert body.rows is not None
    shoulders, hips, ankles = body.rows
    assert 10 < shoulders < 45 < hips < 80 < ankles < 128
    # The mask follows the crop when the box is wider than tall (offsets of the square pad).
    wide = np.ascontiguousarray(np.concatenate([crop, crop], axis=1)[:64])
    assert PersonMasker().one(wide).mask.shape == wide.shape[:2]
