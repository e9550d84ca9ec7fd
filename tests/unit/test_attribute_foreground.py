"""Person-pixel colour features (GrabCut mask, gray world); what descriptions state about bags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from crowdsight.cli.eval_attributes import _carrying_stated, _stated_report
from crowdsight.describe import peta
from crowdsight.describe.colours import COLOUR_NAMES
from crowdsight.describe.features import (
    FEATURE_WH,
    HSV_BINS,
    foreground_colour_features,
    gray_world,
    n_foreground_features,
    person_mask,
)
from crowdsight.describe.heads import AttributeScores
from tests.unit.test_attribute_heads import _toy_heads


def _person_on_wall() -> np.ndarray:
    """A 64×128 crop: a red-topped, blue-legged 'person' in the middle of a green wall."""
    w, h = FEATURE_WH
    rng = np.random.default_rng(0)
    crop = np.empty((h, w, 3), np.uint8)
    crop[:] = (40, 160, 60)
    crop[20:64, 18:46] = (200, 30, 30)  # torso
    crop[64:118, 22:42] = (30, 40, 190)  # legs
    noise = rng.integers(-6, 7, crop.shape)
    return np.clip(crop.astype(int) + noise, 0, 255).astype(np.uint8)


def test_grabcut_mask_keeps_the_person_and_drops_the_wall() -> None:
    crop = _person_on_wall()
    mask = person_mask(crop)
    assert mask.shape == crop.shape[:2]
    assert mask[30:60, 22:42].mean() > 0.9  # torso kept
    assert mask[:, :14].mean() < 0.1 and mask[:, 50:].mean() < 0.1  # wall dropped
    np.testing.assert_array_equal(mask, person_mask(crop))  # deterministic
    assert person_mask(np.full((128, 64, 3), 90, np.uint8)).any()  # flat crop: rectangle


def _hue_share(hist_sqrt: np.ndarray, hue_bin: int) -> float:
    """Share of the HSV histogram (Hellinger-rooted) in one hue bin."""
    h = (hist_sqrt**2).reshape(HSV_BINS)
    return float(h[hue_bin].sum() / h.sum())


def test_foreground_histograms_see_the_clothes_not_the_background() -> None:
    crop = _person_on_wall()
    f = foreground_colour_features(crop)
    assert f.shape == (n_foreground_features(),)
    n_hsv = int(np.prod(HSV_BINS))
    torso_hsv = f[:n_hsv]
    # red (hue bin 0 of 12) dominates the masked torso; green (bins 3–4) almost absent
    assert _hue_share(torso_hsv, 0) + _hue_share(torso_hsv, 11) > 0.9
    assert _hue_share(torso_hsv, 3) + _hue_share(torso_hsv, 4) < 0.05


def test_gray_world_removes_a_colour_cast() -> None:
    crop = _person_on_wall()
    cast = np.clip(crop * np.array([1.0, 1.0, 0.55]), 0, 255).astype(np.uint8)  # yellowish
    fixed = gray_world(cast)
    means = fixed.reshape(-1, 3).mean(axis=0)
    assert means.max() - means.min() < 3  # channel means equalised
    assert gray_world(np.zeros((8, 8, 3), np.uint8)).max() == 0  # black stays black


def test_stated_report_counts_what_the_text_says() -> None:
    stated = np.array([1, 1, 0, 0, 0, 1], bool)
    truth = np.array([1, 0, 1, 0, 0, 0], bool)
    rep = _stated_report(stated, truth)
    assert rep["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert rep["recall"] == 0.5 and rep["n_stated"] == 3 and rep["positives"] == 2
    assert rep["accuracy"] == pytest.approx(0.5) and rep["baseline"] == pytest.approx(4 / 6, 1e-3)
    assert _stated_report(np.zeros(4, bool), truth[:4])["precision"] is None


def test_carrying_stated_per_kind_and_any_bag() -> None:
    heads = dataclasses.replace(
        _toy_heads(4),
        binary_names=("hat", "backpack", "luggage"),
        text=np.array([0.6, 0.6, 0.8], np.float32),
        carrying_text=0.5,
    )
    scores = AttributeScores(
        upper=np.full((3, len(COLOUR_NAMES)), 1 / len(COLOUR_NAMES), np.float32),
        lower=np.full((3, len(COLOUR_NAMES)), 1 / len(COLOUR_NAMES), np.float32),
        # crop 0: backpack said; crop 1: luggage 0.7 < 0.8 not said, but any bag 0.79 ≥ 0.5
        binary=np.array([[0.9, 0.7, 0.0], [0.0, 0.3, 0.7], [0.9, 0.1, 0.1]], np.float32),
        binary_names=heads.binary_names,
    )
    items = [
        peta.PetaItem("S", str(i), Path("x.png"), frozenset(), frozenset(), attributes=frozenset(a))
        for i, a in enumerate(({"backpack"}, {"luggage"}, {"hat"}))
    ]
    out = _carrying_stated(scores, heads, items)
    assert set(out) == {"backpack", "luggage", "any_bag"}  # hat is no bag
    assert out["backpack"]["n_stated"] == 1 and out["backpack"]["precision"] == 1.0
    assert out["luggage"]["n_stated"] == 0 and out["luggage"]["recall"] == 0.0
    assert out["any_bag"]["n_stated"] == 2 and out["any_bag"]["recall"] == 1.0
