"""`crowdsight calibrate counting` on real Mall training frames, then `eval counting` with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.models, pytest.mark.data]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crowdsight", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def calibration(shared_data: Path, csrnet: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cal") / "mall.json"
    mall = shared_data / "mall"
    proc = _cli(
        "calibrate", "counting", "--frames", str(mall / "frames"),
        "--points", str(mall / "mall_gt.mat"), "--format", "mall",
        "--range", "1-200", "--step", "5", "--no-auto-scale", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_calibration_tries_every_kind_and_keeps_what_holds_out(calibration: Path) -> None:
    cal: dict[str, Any] = json.loads(calibration.read_text())
    assert cal["n_frames"] == 40 and cal["resolution_wh"] == [640, 480]
    kinds = {row["target"] for row in cal["cv"]}
    assert kinds == {"none", "total", "bands", "cells"}
    assert sum(row["target"] == "cells" for row in cal["cv"]) == 18  # 6 widths x 3 ridges
    best = min(row["mae"] for row in cal["cv"])
    assert cal["cv_mae_calibrated"] <= best * 1.01 + 1e-9
    # On Mall the density model's output layer is what a camera can correct (400 training
    # frames: held out 3.51 -> 2.71); 40 frames already show it.
    assert cal["target"] == "cells" and len(cal["output_layer"]["weights"]) == 64
    assert cal["cv_mae_calibrated"] < 0.9 * cal["cv_mae_uncalibrated"]


def test_eval_counting_applies_the_refitted_layer(shared_data: Path, calibration: Path) -> None:
    mall = shared_data / "mall"
    args = ["--images", str(mall / "frames"), "--points", str(mall / "mall_gt.mat")]
    args += ["--format", "mall", "--range", "201-260", "--step", "10", "--no-auto-scale"]
    proc = _cli("eval", "counting", *args, "--no-fuse", "--calibration", str(calibration), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    plain = _cli("eval", "counting", *args, "--no-fuse", "--json")
    assert plain.returncode == 0, plain.stderr
    before = json.loads(plain.stdout.strip().splitlines()[-1])
    assert out["n"] == before["n"] == 6
    # The uncalibrated figure reported next to the calibrated one is the plain command's.
    assert out["uncalibrated"]["mae"] == pytest.approx(before["mae"], abs=0.02)
    assert [i["pred"] for i in out["items"]] != [i["pred"] for i in before["items"]]


def test_calibration_refuses_more_features_than_memory_allows(
    shared_data: Path, csrnet: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from crowdsight.cli import _register, app, calibrate
    from crowdsight.core.errors import InputError

    _register()
    monkeypatch.setattr(calibrate, "MAX_FEATURE_BYTES", 1_000_000)  # one Mall frame: 0.6 MB
    mall = shared_data / "mall"
    res = CliRunner().invoke(
        app,
        [
            "calibrate", "counting", "--frames", str(mall / "frames"),
            "--points", str(mall / "mall_gt.mat"), "--format", "mall", "--range", "1-10",
            "--step", "5", "--no-auto-scale", "--out", str(tmp_path / "cal.json"),
        ],
    )  # fmt: skip
    assert isinstance(res.exception, InputError)
    # 2 frames x 0.6 MB over 1 MB: every 2nd of them, --step 10, fits.
    assert "use a larger --step (--step 10 fits" in str(res.exception)
    assert not (tmp_path / "cal.json").exists()
