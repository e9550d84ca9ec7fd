"""Training-free motion anomaly score on UCSD Ped2 test clips 01–06 (stored AUC floor).

`crowdsight eval anomaly` on clips 01–06 (1,020 frames), no Ped2 training frames: the
per-cell baseline is fitted on the evaluated clips themselves, without labels. Measured
99.5 % frame AUC (per-clip min-max) and 99.5 % on raw pooled scores; floors sit below.

Standard protocol (``--train-frames``: the per-cell baseline learned from the normal Ped2
training clips 01–10, test labels unseen): measured 96.6 % (per-clip min-max) and 96.5 %
raw pooled on clips 01–06; floors sit below. Note the cell size, floor and smoothing were
chosen on these clips before, so this is not an unseen-footage figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.data]

CLIPS = ("01", "02", "03", "04", "05", "06")
N_FRAMES = 180 + 180 + 150 + 180 + 150 + 180  # 1,020
AUC_FLOOR = 97.0
AUC_RAW_FLOOR = 97.0
TRAIN_AUC_FLOOR = 95.0
TRAIN_AUC_RAW_FLOOR = 95.0


def _labels_01_06(root: Path, out: Path) -> Path:
    """The 01–06 label file, or the first 1,020 labels of the 12-clip file."""
    direct = root / "frame_labels_ped2_01_06.npy"
    if direct.is_file():
        return direct
    full = root / "frame_labels_ped2.npy"
    if not full.is_file():
        pytest.skip(f"no Ped2 frame labels in {root}")
    np.save(out, np.load(full).ravel()[:N_FRAMES])
    return out


def _frames_01_06(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Links to test clips 01–06 and their labels (skips without the data)."""
    root = shared_data / "ucsd_ped2_test"
    if not (root / "frames" / "01").is_dir():
        pytest.skip(f"UCSD Ped2 test frames not found under {root}")
    frames = tmp_path / "frames"
    frames.mkdir()
    for clip in CLIPS:  # links, not copies: only clips 01–06 are scored
        (frames / clip).symlink_to(root / "frames" / clip, target_is_directory=True)
    labels = _labels_01_06(root, tmp_path / "labels_01_06.npy")
    assert np.load(labels).size == N_FRAMES
    return frames, labels


def _eval(frames: Path, labels: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "crowdsight", "eval", "anomaly", "--frames", str(frames)]
    cmd += ["--labels", str(labels), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return res


def test_eval_anomaly_ped2_01_06(shared_data: Path, tmp_path: Path) -> None:
    frames, labels = _frames_01_06(shared_data, tmp_path)
    res = _eval(frames, labels)
    assert (res["frames"], res["clips"]) == (N_FRAMES, len(CLIPS))
    assert res["training_frames_used"] is False
    assert res["auc"] >= AUC_FLOOR, res
    assert res["auc_raw"] >= AUC_RAW_FLOOR, res


def test_eval_anomaly_ped2_01_06_trained(shared_data: Path, tmp_path: Path) -> None:
    """Standard protocol: normal motion learned from the Ped2 training clips only."""
    train = shared_data / "ucsd_ped2_train" / "frames"
    if not (train / "01").is_dir():
        pytest.skip(f"UCSD Ped2 training frames not found under {train}")
    frames, labels = _frames_01_06(shared_data, tmp_path)
    res = _eval(frames, labels, "--train-frames", str(train))
    assert (res["frames"], res["clips"]) == (N_FRAMES, len(CLIPS))
    assert res["training_frames_used"] is True
    assert res["baseline"] == "train"
    assert res["auc"] >= TRAIN_AUC_FLOOR, res
    assert res["auc_raw"] >= TRAIN_AUC_RAW_FLOOR, res
