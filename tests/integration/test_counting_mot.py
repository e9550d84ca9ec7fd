"""`crowdsight eval counting --format mot` on a real 1080p street frame (MOT17-04)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.models, pytest.mark.data]


def _eval(seq: Path, *flags: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "crowdsight", "eval", "counting", "--images", str(seq)]
    proc = subprocess.run(
        [*cmd, "--format", "mot", "--range", "1-1", "--json", *flags],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_auto_scale_shrinks_street_frame_and_lowers_overcount(
    shared_data: Path, csrnet: None
) -> None:
    seq = shared_data / "mot17_mini" / "MOT17-04-FRCNN"
    auto = _eval(seq)
    native = _eval(seq, "--no-auto-scale", "--no-fuse")
    a, n = auto["items"][0], native["items"][0]
    assert a["gt"] == n["gt"] == 42
    # Pedestrians ~190 px tall are brought towards TARGET_PERSON_PX: scale well below 1.
    assert 0.5 < a["scale"] < 0.8 and n["scale"] == 1.0
    assert a["detection"] > 10  # the detector sees the large people
    # Native resolution reads this frame as a crowd of ~170; auto-scale at least halves it.
    assert n["pred"] > 120
    assert a["pred"] < n["pred"] / 2
    # The frame shows many people taller than RELIABLE_HEIGHT_PX: most rows are the detection
    # zone, where the density model's texture mass is dropped and boxes count one each
    # (measured: fused 35.1, density alone 100.4, boxes 36; per-box fusion alone 97).
    assert a["zone_rows"] > 0
    assert abs(a["pred"] - 42) / 42 < 0.25
    assert auto["per_box_only"]["mae"] > 2 * auto["mae"]


def test_eye_level_street_drops_density_where_no_head_can_be(
    shared_data: Path, csrnet: None
) -> None:
    # MOT17-02: a camera at head height; the density model reads the tree above the square
    # and the pavement as a crowd of ~180. The person boxes agree on a floor whose horizon is
    # the row of the far heads; density outside the band where heads can be is dropped.
    seq = shared_data / "mot17_mini" / "MOT17-02-FRCNN"
    out = _eval(seq)
    item = out["items"][0]
    assert item["gt"] == 22
    assert item["horizon_px"] is not None and 380 < item["horizon_px"] < 520
    assert item["density"] > 120  # the model alone
    assert abs(item["pred"] - 22) / 22 < 0.5  # measured 28.4
    assert out["per_box_only"]["mae"] > 4 * out["mae"]
