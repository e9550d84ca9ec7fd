"""`crowdsight eval attributes` on a held-out PETA subset, against a stored band."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.data

#: Measured with the shipped rules on CAVIAR4REID (held out from calibration): upper 0.5295,
#: lower 0.5656 (most-frequent baseline in the same run: 0.5328 / 0.4836).
STORED = {"upper_colour_accuracy": 0.5295, "lower_colour_accuracy": 0.5656}
TOLERANCE = 0.02


def test_eval_attributes_json_and_band(shared_data: Path) -> None:
    from crowdsight.cli import _register, app

    _register()
    res = CliRunner().invoke(
        app,
        [
            "eval", "attributes", "--peta", str(shared_data / "peta_subset"),
            "--subsets", "CAVIAR4REID", "--json",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n"] == 1220
    assert out["carrying_accuracy"] is None  # the bundled detector has no bag classes
    for key, value in STORED.items():
        assert out[key] >= value - TOLERANCE, (key, out[key])
    # the trivial baseline is measured in the same run
    assert 0 < out["baseline_upper_colour_accuracy"] < 1
    assert set(out["baseline_carrying_accuracy"]) == {"backpack", "handbag", "suitcase", "umbrella"}
    assert "personal" not in res.stdout.lower()


def test_unknown_subset_is_a_clear_error(shared_data: Path) -> None:
    from crowdsight.cli import _register, app

    _register()
    res = CliRunner().invoke(
        app, ["eval", "attributes", "--peta", str(shared_data / "peta_subset"), "--subsets", "X"]
    )
    assert res.exit_code != 0
