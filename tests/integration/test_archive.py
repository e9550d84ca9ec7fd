"""`crowdsight analyze FOLDER_OF_VIDEOS [--ray]`: per-video outputs plus one combined summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import pytest

from tests.conftest import require_model
from tests.unit.test_cli_errors import run_cli


def _archive(shared_data: Path, folder: Path) -> Path:
    frames = sorted((shared_data / "mall" / "frames").glob("*.jpg"))
    folder.mkdir()
    for i, start in enumerate((0, 300)):
        w = cv2.VideoWriter(
            str(folder / f"clip{i}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 2, (320, 240)
        )
        for f in frames[start : start + 4]:
            w.write(cv2.resize(cv2.imread(str(f)), (320, 240)))
        w.release()
    (folder / "broken.mp4").write_bytes(b"not a video")
    return folder


def _check(out: Path) -> None:
    combined = json.loads((out / "summary.json").read_text())
    assert (combined["videos"], combined["analysed"]) == (3, 2)
    assert [f["video"] for f in combined["failed"]] == ["broken.mp4"]
    assert "not a readable video" in combined["failed"][0]["error"]
    assert combined["frames"] == 8
    for name in ("clip0", "clip1"):
        one = json.loads((out / name / "summary.json").read_text())
        assert one["frames"] == 4
        assert (out / name / "counts.csv").exists()
    per = {p["video"]: p for p in combined["per_video"]}
    assert per["clip0.mp4"]["summary"]["frames"] == 4


@pytest.mark.models
def test_folder_of_videos_one_by_one(shared_data: Path, tmp_path: Path) -> None:
    require_model("nanodet")
    videos = _archive(shared_data, tmp_path / "videos")
    out = tmp_path / "out"
    r = run_cli("analyze", str(videos), "--out", str(out), "--no-density", "--no-video")
    assert r.returncode == 0, r.stderr
    _check(out)


@pytest.mark.models
@pytest.mark.slow
def test_folder_of_videos_on_ray_data(shared_data: Path, tmp_path: Path) -> None:
    require_model("nanodet")
    address = os.environ.get("CROWDSIGHT_TEST_RAY_ADDRESS")
    if not address:
        pytest.importorskip("ray.data", reason="Ray Data is optional: crowdsight[ray]")
    videos = _archive(shared_data, tmp_path / "videos")
    out = tmp_path / "out"
    args = ["analyze", str(videos), "--out", str(out), "--no-density", "--no-video", "--ray"]
    if address:
        args += ["--ray-address", address]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    _check(out)


def test_ray_needs_a_folder_of_videos(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    r = run_cli("analyze", str(tmp_path), "--ray")
    assert r.returncode != 0
    assert "folder of video files" in r.stderr
    assert "Traceback" not in r.stderr
