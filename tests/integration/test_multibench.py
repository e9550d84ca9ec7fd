"""Many-camera bench: live-paced streams through shared batched models, local and on Ray."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from crowdsight.pipeline.multibench import MultiBenchConfig, result_line, run_multi_bench
from tests.conftest import require_model

KEYS = [
    "cameras",
    "runner",
    "backend",
    "per_camera_fps",
    "aggregate_fps",
    "dropped_frames",
    "p95_latency_ms",
    "events_stored",
    "events_lost",
    "gpu_util",
    "ratio",
]


@pytest.fixture(scope="module")
def models() -> None:
    require_model("people-ssdlite")
    require_model("csrnet")


def _check(r: dict[str, Any], cameras: int, runner: str, backend: str) -> None:
    line = result_line(r)
    assert list(line)[: len(KEYS)] == KEYS
    assert (line["cameras"], line["runner"], line["backend"]) == (cameras, runner, backend)
    assert len(line["per_camera_fps"]) == cameras
    assert all(f > 0 for f in line["per_camera_fps"])
    assert line["events_lost"] == 0
    assert r["store_errors"] == 0
    assert r["density_maps"] >= 1
    assert line["ratio"] is not None and line["ratio"] > 0
    # Every camera's detector call went through the shared batching service.
    assert (
        sum(b["rows"] for b in r["detector_batches"])
        >= sum(round(f * 4) for f in line["per_camera_fps"]) - cameras
    )


@pytest.mark.models
@pytest.mark.slow
def test_local_runner_two_cameras_share_batched_models(shared_data: Path, models: None) -> None:
    cfg = MultiBenchConfig(
        cameras=2,
        fps=2.0,
        seconds=4.0,
        size=(320, 240),
        workers=1,
        density_every_s=2.0,
        warmup_s=20.0,
    )
    r = run_multi_bench(shared_data / "mall" / "frames", cfg, n_source_frames=8)
    _check(r, 2, "local", "onnxruntime")
    # Both cameras of the one worker were served by one detector service.
    assert len(r["detector_batches"]) == 1


@pytest.mark.models
@pytest.mark.slow
def test_process_inference_serves_every_worker_from_one_server(
    shared_data: Path, models: None
) -> None:
    cfg = MultiBenchConfig(
        cameras=2,
        fps=2.0,
        seconds=4.0,
        size=(320, 240),
        workers=2,
        density_every_s=2.0,
        warmup_s=30.0,
        inference="process",
    )
    r = run_multi_bench(shared_data / "mall" / "frames", cfg, n_source_frames=8)
    _check(r, 2, "local", "onnxruntime")
    # Two worker processes, one inference server: one set of batch statistics.
    assert r["inference"] == "process" and r["workers"] == 2
    assert len(r["detector_batches"]) == 1 and len(r["density_batches"]) == 1
    assert r["density_batches"][0]["rows"] >= 2
    # Tiles and full frames all travelled through shared-memory slots, none pickled.
    assert r["inline_requests"] == 0


@pytest.mark.models
@pytest.mark.slow
def test_torch_backend_runs_the_same_bench(shared_data: Path, models: None) -> None:
    pytest.importorskip("torch", reason="the torch backend is optional: crowdsight[gpu]")
    cfg = MultiBenchConfig(
        cameras=2,
        fps=2.0,
        seconds=4.0,
        size=(320, 240),
        workers=1,
        density_every_s=2.0,
        backend="torch",
        warmup_s=25.0,
    )
    r = run_multi_bench(shared_data / "mall" / "frames", cfg, n_source_frames=8)
    _check(r, 2, "local", "torch")


@pytest.mark.models
@pytest.mark.slow
def test_ray_runner_spreads_cameras_over_actors(shared_data: Path, models: None) -> None:
    address = os.environ.get("CROWDSIGHT_TEST_RAY_ADDRESS")
    if not address:
        pytest.importorskip("ray", reason="Ray is optional: pip install 'crowdsight[ray]'")
    import ray

    if ray.is_initialized():
        ray.shutdown()
    cfg = MultiBenchConfig(
        cameras=2,
        fps=2.0,
        seconds=4.0,
        size=(320, 240),
        workers=2,
        density_every_s=2.0,
        runner="ray",
        ray_address=address,
        warmup_s=60.0,  # Ray workers import and warm up in new processes: 52 s on a loaded VM
    )
    try:
        r = run_multi_bench(shared_data / "mall" / "frames", cfg, n_source_frames=8)
    finally:
        ray.shutdown()
    _check(r, 2, "ray", "onnxruntime")
    assert r["workers"] == 2 and len(r["detector_batches"]) == 2
