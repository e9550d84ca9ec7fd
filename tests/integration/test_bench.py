"""`crowdsight bench`: one run, both fps figures on the same frames, JSON last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_model

pytestmark = [pytest.mark.models]


def _bench(*args: str, cwd: Path, env_data: str) -> dict[str, object]:
    import os

    env = {**os.environ, "CROWDSIGHT_SHARED_DATA": env_data}
    proc = subprocess.run(
        [sys.executable, "-m", "crowdsight", "bench", "--json", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=cwd,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_bench_on_a_synthetic_clip(tmp_path: Path) -> None:
    require_model("nanodet")
    # No --input and no shared data: the command makes its own 640x480 clip.
    r = _bench("--frames", "30", "--no-density", cwd=tmp_path, env_data=str(tmp_path / "none"))
    assert r["frames"] == 30
    assert r["resolution"] == "640x480"
    assert str(r["input"]).endswith("synthetic.mp4")
    model_fps, pipeline_fps = float(r["model_fps"]), float(r["pipeline_fps"])  # type: ignore[arg-type]
    assert model_fps > 0 and pipeline_fps > 0
    # fps are printed rounded to 0.1; the ratio comes from the unrounded values.
    assert float(r["ratio"]) == pytest.approx(pipeline_fps / model_fps, rel=0.02)  # type: ignore[arg-type]
    assert r["density_maps"] == 0
    assert 0 < float(r["tracker_ms_50"]) < float(r["tracker_ms_500"])  # type: ignore[arg-type]
    assert float(r["peak_rss_mb"]) > 50  # type: ignore[arg-type]


def test_bench_resizes_and_runs_density(tmp_path: Path, shared_data: Path) -> None:
    require_model("nanodet")
    require_model("csrnet")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(1, 21):
        name = f"seq_{i:06d}.jpg"
        (frames / name).symlink_to(shared_data / "mall/frames" / name)
    r = _bench(
        "--input",
        str(frames),
        "--frames",
        "20",
        "--size",
        "320x240",
        "--no-density-async",
        "--density-every-s",
        "0.4",
        "--fps",
        "25",
        cwd=tmp_path,
        env_data=str(shared_data),
    )
    assert r["resolution"] == "320x240"
    # Synchronous density every 10 frames of 25 fps: frames 0 and 10 (warm-up excluded).
    assert r["density_maps"] == 2
    assert r["density_async"] is False


def test_bad_size_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crowdsight", "bench", "--size", "big"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "--size 'big'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreachable_ray_address_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is optional: pip install 'crowdsight[ray]'")
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--cameras", "2", "--runner", "ray", "--ray-address", f"127.0.0.1:{port}", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "crowdsight", "bench", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,  # ray.init on such an address was still retrying after 5 minutes
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in proc.stderr
    assert "ray start --head" in proc.stderr and "Traceback" not in proc.stderr
