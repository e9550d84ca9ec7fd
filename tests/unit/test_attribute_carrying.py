""" "Carries a bag" (noisy-OR of the bag heads), accuracy thresholds, degraded training copies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdsight.core.errors import InputError
from crowdsight.core.types import Frame
from crowdsight.describe import TrackDescriber
from crowdsight.describe.features import CAST_CHANNEL_GAINS, CAST_EXPOSURE, cast_crop, degrade_crop
from crowdsight.describe.heads import AttributeHeads, carrying_probability
from crowdsight.describe.training import accuracy_threshold, best_threshold
from tests.unit.test_attribute_heads import _dets, _FeatureStub, _toy_heads


def test_carrying_probability_is_noisy_or_of_bag_heads_only() -> None:
    names = ("hat", "backpack", "messenger_bag", "luggage")
    p = np.array([[0.9, 0.5, 0.5, 0.0], [0.99, 0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(carrying_probability(p, names), [0.75, 0.0], atol=1e-6)
    assert carrying_probability(p, ("hat", "a", "b", "c")).tolist() == [0.0, 0.0]  # no bag head


def test_accuracy_threshold_differs_from_the_mA_threshold_on_rare_labels() -> None:
    # 10 % positives; scores overlap: mA is best at a low threshold, accuracy at a high one
    rng = np.random.default_rng(1)
    truth = np.r_[np.ones(100, bool), np.zeros(900, bool)]
    prob = np.r_[rng.uniform(0.3, 1.0, 100), rng.uniform(0.0, 0.7, 900)].astype(np.float32)
    t_acc, t_ma = accuracy_threshold(prob, truth), best_threshold(prob, truth)
    assert t_acc > t_ma
    acc = lambda t: float(((prob >= t) == truth).mean())  # noqa: E731
    assert acc(t_acc) >= max(acc(t_ma), acc(0.5), 0.9)  # at least the always-"no" answer


def test_describer_says_carrying_a_bag_when_no_single_kind_is_sure() -> None:
    heads = dataclasses.replace(
        _toy_heads(4),
        binary_names=("backpack", "messenger_bag"),
        binary_w=np.zeros((2, 4), np.float32),
        binary_b=np.full(2, -0.2, np.float32),  # each bag 0.45: below its own text threshold
        carrying_text=0.6,  # any bag: 1 - 0.55² = 0.70
    )
    d = TrackDescriber(heads=heads, features=_FeatureStub())
    img = np.full((300, 300, 3), 128, np.uint8)
    d.describe(Frame("cam", 0, 0.0, img), _dets([50.0, 20.0, 110.0, 200.0], 0.9))
    desc = d.descriptions()[3]
    assert "carrying a bag (0.70)" in desc.text
    assert desc.confidences["carrying"] == pytest.approx(0.6975, abs=1e-3)
    assert "carrying" in desc.fields["stated"] and "backpack" not in desc.text
    strict_heads = dataclasses.replace(heads, carrying_text=0.8)
    strict = TrackDescriber(heads=strict_heads, features=_FeatureStub())
    strict.describe(Frame("cam", 0, 0.0, img), _dets([50.0, 20.0, 110.0, 200.0], 0.9))
    assert "carrying" not in strict.descriptions()[3].text


def test_heads_without_carrying_thresholds_are_refused(tmp_path: Path) -> None:
    _toy_heads(4).save(tmp_path / "h.npz")
    with np.load(tmp_path / "h.npz") as z:
        old = {k: z[k] for k in z.files if k not in ("carrying", "accuracy_decision")}
    np.savez(tmp_path / "old.npz", **old)
    with pytest.raises(InputError, match="retrain"):
        AttributeHeads.load(tmp_path / "old.npz")
    back = AttributeHeads.load(tmp_path / "h.npz")
    assert (back.carrying_decision, back.carrying_text) == pytest.approx((0.4, 0.6))


def test_degraded_copy_keeps_size_and_colour_but_loses_fine_detail() -> None:
    crop = np.zeros((128, 64, 3), np.uint8)
    crop[:, :, 0] = 200  # red cloth ...
    crop[::2, :, 1] = 120  # ... with a one-pixel stripe pattern
    out = degrade_crop(crop)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert abs(float(out[..., 0].mean()) - 200) < 8  # the colour survives
    assert abs(float(out[..., 1].mean()) - 60) < 8
    stripes = lambda im: float(np.abs(np.diff(im[:, :, 1].astype(float), axis=0)).mean())  # noqa: E731
    assert stripes(out) < 0.2 * stripes(crop)  # the stripes are gone
    assert degrade_crop(out[:40, :20]).shape == (40, 20, 3)  # smaller than the target: as is


def test_cast_copy_shifts_colour_within_its_ranges_and_is_reproducible() -> None:
    crop = np.full((128, 64, 3), 100, np.uint8)  # mid grey: every gain shows, none clips
    casts = [cast_crop(crop, np.random.default_rng(seed)) for seed in range(40)]
    means = np.array([c.reshape(-1, 3).mean(axis=0) for c in casts]) / 100
    lo = CAST_CHANNEL_GAINS[0] * CAST_EXPOSURE[0]
    hi = CAST_CHANNEL_GAINS[1] * CAST_EXPOSURE[1]
    assert casts[0].shape == crop.shape and casts[0].dtype == np.uint8
    assert means.min() > lo - 0.03 and means.max() < hi + 0.03
    # A cast, not only a brightness change: the channels move apart, both ways.
    spread = means.max(axis=1) / means.min(axis=1)
    assert spread.max() > 1.15
    assert (means[:, 0] > means[:, 2]).any() and (means[:, 0] < means[:, 2]).any()
    again = cast_crop(crop, np.random.default_rng(7))
    assert np.array_equal(again, casts[7])


def test_training_copies_add_degraded_and_cast_readers_in_order(tmp_path: Path) -> None:
    from crowdsight.cli.train_attributes import training_copies

    img = np.zeros((128, 64, 3), np.uint8)
    img[:, :, 0] = 180
    path = tmp_path / "SUB" / "0001_a.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), img[:, :, ::-1])
    assert [v for v, _ in training_copies()] == [""]
    copies = training_copies(degraded=True, cast=True)
    assert [v for v, _ in copies][:2] == ["", "degraded"]
    assert copies[2][0].startswith("cast-") and f"{CAST_EXPOSURE[1]:g}" in copies[2][0]
    plain, _, cast = (read(path) for _, read in copies)
    assert np.array_equal(plain, img)
    assert np.array_equal(cast, copies[2][1](path))  # the same cast on every read
    assert np.abs(cast.astype(int) - img).max() > 5
