"""The description sheet: crops with their generated descriptions, heads blurred."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsight.describe import TrackDescriber
from crowdsight.describe.sheet import CROP_WH, DescriptionSheet
from crowdsight.privacy.redaction import Redactor
from tests.unit.test_attribute_heads import _FeatureStub, _toy_heads


def _sheet(cols: int = 2) -> DescriptionSheet:
    describer = TrackDescriber(heads=_toy_heads(4), features=_FeatureStub())
    return DescriptionSheet(describer, Redactor(mode="blur", faces=None, motion=False), cols)


def _crop(rgb: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    crop = np.zeros((128, 64, 3), np.uint8)
    crop[...] = rgb
    crop[:24] = rng.integers(0, 256, (24, 64, 3))  # a detailed "head" at the top
    return crop


def test_each_crop_gets_its_own_description_and_a_blurred_head() -> None:
    sheet = _sheet()
    red_text, red_shown = sheet.describe(_crop((255, 0, 255)))
    green_text, _ = sheet.describe(_crop((0, 255, 0)))
    assert red_text.startswith("person: red top (0.")
    assert "red" not in green_text and "blue legwear" in green_text  # no votes carried over
    head = lambda im: float(np.abs(np.diff(im[2:20, 20:44].astype(float), axis=1)).mean())  # noqa: E731
    assert head(red_shown) < 0.5 * head(_crop((255, 0, 255)))  # the head is blurred ...
    assert np.array_equal(red_shown[80:], _crop((255, 0, 255))[80:])  # ... the clothes are not


def test_sheet_lays_out_tiles_with_text_and_captions() -> None:
    crops = [_crop((255, 0, 255)), _crop((0, 255, 0)), _crop((90, 90, 90))]
    image = _sheet(cols=2).render(crops, ["labels: red top", "labels: green"])
    tile_h = image.shape[0] // 2
    assert image.shape[0] == 2 * tile_h and image.shape[1] % 2 == 0  # 3 tiles → 2 rows of 2
    tile_w = image.shape[1] // 2
    text_area = image[:20, CROP_WH[0] + 10 : tile_w]
    caption_area = image[CROP_WH[1] + 8 : tile_h, :tile_w]
    empty_tile = image[tile_h:, tile_w:]
    assert (text_area < 128).any() and (caption_area < 200).any()
    assert (empty_tile == 255).all()
    with pytest.raises(ValueError, match="at least one"):
        _sheet().render([])
