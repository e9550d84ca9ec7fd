"""`crowdsight eval tracking` on MOT15 TUD sequences (no images: GT + public detections).

Two checks per sequence:
1. Metric implementation: scoring CEM's published output reproduces the MOTChallenge
   devkit / py-motmetrics reference figures (PROVENANCE.md of mot15_tud_gt_dets).
2. Tracker regression: crowdsight's tracker on SORT's Faster R-CNN detections stays above a
   stored MOTA floor set a little under the value measured when the defaults were chosen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.data]


@dataclass(frozen=True)
class Reference:
    """Devkit figures for CEM_test.txt and our tracker's MOTA floor on one sequence."""

    mota: float
    idf1: float
    id_switches: int
    false_positives: int
    false_negatives: int
    tracker_mota_floor: float


REFERENCES = {
    # Measured online 70.8 MOTA / 76.1 IDF1 / 52.8 HOTA / 13 IDs with OCR+ORU (plain
    # ByteTrack: 71.0 / 76.2 / 52.9 / 12; SORT code: 71.7); with the default offline
    # post-processing then (tentative starts + linear gap filling) 73.2 / 75.8 / 53.6 / 14;
    # with tracklet linking (today's default, fixed on Mall training frames) 77.4 / 82.6 / 57.4 / 8.
    "TUD-Stadtmitte": Reference(56.4, 64.5, 7, 45, 452, tracker_mota_floor=70.0),
    # Not measured here (sequence absent when the defaults were set); SORT's published
    # MOTA on it is 62.7, so the floor sits a few points under that.
    "TUD-Campus": Reference(52.6, 55.8, 7, 13, 150, tracker_mota_floor=58.0),
}


def _sequence(shared_data: Path, name: str) -> Path:
    seq = shared_data / "mot15_tud_gt_dets" / name
    if not (seq / "gt" / "gt.txt").is_file():
        pytest.skip(f"{name} not found under {seq.parent}")
    return seq


def _eval(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "crowdsight", "eval", "tracking", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_cem_output_reproduces_devkit_figures(shared_data: Path, name: str) -> None:
    seq = _sequence(shared_data, name)
    ref = REFERENCES[name]
    got = _eval("--gt", str(seq / "gt/gt.txt"), "--results", str(seq / "results/CEM_test.txt"))
    assert got["mota"] == pytest.approx(ref.mota, abs=0.1)
    assert got["idf1"] == pytest.approx(ref.idf1, abs=0.1)
    assert got["id_switches"] == ref.id_switches
    assert got["false_positives"] == ref.false_positives
    assert got["false_negatives"] == ref.false_negatives


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_tracker_mota_above_floor(shared_data: Path, name: str) -> None:
    seq = _sequence(shared_data, name)
    got = _eval("--gt", str(seq / "gt/gt.txt"), "--detections", str(seq / "det/det_sort_frcnn.txt"))
    assert got["mota"] >= REFERENCES[name].tracker_mota_floor
    assert 0.0 <= got["hota"] <= 100.0 and got["idf1"] > 50.0


def test_offline_post_processing_is_named_and_can_be_switched_off(shared_data: Path) -> None:
    seq = _sequence(shared_data, "TUD-Stadtmitte")
    args = ("--gt", str(seq / "gt/gt.txt"), "--detections", str(seq / "det/det_sort_frcnn.txt"))
    offline = _eval(*args)
    linear = _eval(*args, "--offline", "linear")
    online = _eval(*args, "--no-interpolate")
    assert offline["offline"] == "link" and linear["offline"] == "linear"
    assert online["offline"] == "none"
    assert online["rows_tentative"] == online["rows_filled"] == online["linked_joins"] == 0
    assert offline["rows_online"] == online["rows_online"]
    assert offline["rows_tentative"] > 0 and offline["rows_filled"] > 0
    # Linking joins tracklets (fewer ids) and fills across the joins; linear never joins.
    assert offline["linked_joins"] > 0 and offline["rows_bridged"] > 0
    assert linear["linked_joins"] == linear["rows_bridged"] == 0
    # Added rows are boxes the detector never gave: fewer misses, never more.
    assert offline["false_negatives"] < linear["false_negatives"] < online["false_negatives"]


def test_unknown_offline_mode_is_one_clear_error(shared_data: Path) -> None:
    seq = _sequence(shared_data, "TUD-Stadtmitte")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdsight",
            "eval",
            "tracking",
            "--gt",
            str(seq / "gt/gt.txt"),
            "--detections",
            str(seq / "det/det_sort_frcnn.txt"),
            "--offline",
            "smooth",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "--offline 'smooth': use one of none, linear, link, gsi" in proc.stderr
