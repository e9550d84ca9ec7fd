"""CSRNet counting error on a fixed subset of ShanghaiTech A test (stored band).

The full 182-image figure is produced by `crowdsight eval counting` (see the README); this
subset keeps CI fast. Band measured with the converted weights, full resolution, ImageNet
normalisation, RGB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.data]

# The first 12 ShanghaiTech A test images in sorted file-name order (IMG_1, IMG_10, IMG_100..109).
SUBSET = "1-12"
# Measured with the defaults (NanoDet boxes for --auto-scale, --fuse with the detection zone
# limited to rows that show tall people): MAE 71.40 on these 12 (IMG_1, 172 people, where the
# zone had hidden the density model's over-count, now reads 327); full 182: MAE 73.89
# (density alone 75.38). Before the zone was limited: 64.21 on these 12, 76.75 on all 182.
MAE_BAND = (67.8, 78.5)


def test_eval_counting_subset(shared_data: Path, csrnet: None) -> None:
    root = shared_data / "shanghaitech_partA_test"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdsight",
            "eval",
            "counting",
            "--images",
            str(root / "images"),
            "--points",
            str(root / "ground-truth"),
            "--format",
            "shanghaitech",
            "--range",
            SUBSET,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["n"] == 12
    assert len(res["items"]) == 12
    for item in res["items"]:
        assert item["gt"] > 0 and item["pred"] > 0
    lo, hi = MAE_BAND
    assert lo <= res["mae"] <= hi, res["mae"]
