"""What descriptions state about bags: `eval attributes`' ``carrying_stated`` figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from crowdsight.cli.eval_attributes import _carrying_stated, _stated_report
from crowdsight.describe import peta
from crowdsight.describe.colours import COLOUR_NAMES
from crowdsight.describe.heads import AttributeScores
from tests.unit.test_attribute_heads import _toy_heads


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


def test_colour_stated_scores_only_confident_labelled_crops() -> None:
    from crowdsight.cli.eval_attributes import _colour_stated

    heads = dataclasses.replace(_toy_heads(4), colour_text=np.array([0.8, 0.8], np.float32))
    upper = np.full((4, len(COLOUR_NAMES)), 0.01, np.float32)
    black, blue = COLOUR_NAMES.index("black"), COLOUR_NAMES.index("blue")
    upper[0, black] = 0.9  # stated, right
    upper[1, black] = 0.9  # stated, wrong (labelled blue)
    upper[2, blue] = 0.5  # not confident: not stated
    upper[3, black] = 0.95  # no label for the part: not scored
    scores = AttributeScores(
        upper=upper, lower=upper.copy(), binary=np.zeros((4, 0), np.float32), binary_names=()
    )
    labels = [frozenset({"black"}), frozenset({"blue"}), frozenset({"blue"}), frozenset()]
    items = [
        peta.PetaItem("S", str(i), Path("x.png"), lab, lab, attributes=frozenset())
        for i, lab in enumerate(labels)
    ]
    out = _colour_stated(scores, heads, items)
    assert out["upper"]["n_stated"] == 2
    assert out["upper"]["share_stated"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["upper"]["accuracy_stated"] == 0.5
