"""`InferenceServer`: models in their own process, called through shared memory by many threads."""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ModelError
from crowdsight.models.inference_process import (
    ChannelSpec,
    InferenceServer,
    ModelEntry,
    connect,
    onnx_model,
)
from crowdsight.models.runtime import OrtRuntime
from tests.conftest import require_model
from tests.unit import inference_models


def _server(**kw: Any) -> InferenceServer:
    entry = ModelEntry("double", inference_models.doubler, max_batch=8, max_wait_ms=300)
    return InferenceServer([entry], start_timeout_s=120, **kw)


def _concurrently(fn: Any, n: int) -> list[Any]:
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # recorded for the assertions
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.models
def test_outputs_equal_a_direct_run_of_the_model() -> None:
    require_model("people-ssdlite")
    from crowdsight.models.install import model_path

    path = Path(model_path("people-ssdlite", "ssdlite_people.onnx"))
    cfg = RuntimeConfig(providers=("CPUExecutionProvider",), threads=1, dynamic_batch=True)
    x = (np.random.default_rng(0).random((1, 3, 300, 300)) * 255).astype(np.float32)
    want = OrtRuntime(path, cfg).run({"image": x})
    with InferenceServer([onnx_model("det", path, cfg)], start_timeout_s=120) as server:
        rt = server.runtime("det")
        assert [s.name for s in rt.inputs] == ["image"]
        got = rt.run({"image": x})
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_concurrent_callers_are_batched_and_get_their_own_rows() -> None:
    with _server() as server:
        rt = server.runtime("double")
        arrays = [np.full((1, 3, 8, 8), i, np.float32) for i in range(8)]
        results = _concurrently(lambda i: rt.run({"image": arrays[i]}), 8)
        stats = server.stats()["double"]
    for i, (doubled, total) in enumerate(results):
        np.testing.assert_array_equal(doubled, arrays[i] * 2)
        assert total.tolist() == [i * 3 * 8 * 8]
    assert stats.rows == 8
    assert stats.max_rows > 1  # several cameras' frames went through one model call


def test_a_request_larger_than_a_slot_goes_through_the_pipe() -> None:
    with _server(slot_bytes=4096, slots=2) as server:
        client = server.client()
        x = np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32)  # 24 KiB
        doubled, total = client.runtime("double").run({"image": x})
        assert client.inline_requests == 1
    np.testing.assert_allclose(doubled, x * 2)
    np.testing.assert_allclose(total, x.sum(axis=(1, 2, 3)), rtol=1e-6)


def test_full_frames_use_the_large_slots_and_tiles_the_small_ones() -> None:
    with _server(slot_bytes=4096, slots=1, large_slots=1, large_slot_bytes=64 << 10) as server:
        client = server.client()
        rt = client.runtime("double")
        frame = np.random.default_rng(2).random((2, 3, 32, 32)).astype(np.float32)  # 24 KiB
        tile = np.ones((1, 3, 8, 8), np.float32)  # 768 bytes
        results = _concurrently(lambda i: rt.run({"image": [frame, tile][i]}), 2)
        assert client.inline_requests == 0
    np.testing.assert_allclose(results[0][0], frame * 2)
    np.testing.assert_array_equal(results[1][0], tile * 2)


def test_too_little_shared_memory_is_one_clear_error_before_starting() -> None:
    with pytest.raises(ModelError, match=r"MiB of shared memory .* --shm-size"):
        _server(slots=4, slot_bytes=1 << 50)


def test_model_errors_reach_the_caller_and_the_server_keeps_serving() -> None:
    with _server() as server:
        rt = server.runtime("double")
        with pytest.raises(ModelError, match="negative pixels"):
            rt.run({"image": -np.ones((1, 3, 4, 4), np.float32)})
        assert rt.run({"image": np.ones((1, 3, 4, 4), np.float32)})[1].tolist() == [48.0]


def test_a_model_that_cannot_load_is_one_clear_error() -> None:
    with pytest.raises(ModelError, match="could not load its models: FileNotFoundError"):
        InferenceServer([ModelEntry("x", inference_models.broken)], start_timeout_s=120)


def test_a_dead_server_fails_pending_and_later_calls_instead_of_hanging() -> None:
    with _server() as server:
        rt = server.runtime("double")
        gate = [np.ones((1, 3, 4, 4), np.float32)] * 3 + [np.full((1, 3, 4, 4), 1e9, np.float32)]
        results = _concurrently(lambda i: rt.run({"image": gate[i]}), 4)
        assert all(isinstance(r, ModelError) for r in results), results
        assert "stopped" in str(results[-1])
        server.process.join(10)
        assert not server.alive and server.process.exitcode == 3
        with pytest.raises(ModelError, match="inference server stopped"):
            rt.run({"image": np.ones((1, 3, 4, 4), np.float32)})


def test_close_stops_the_process_and_frees_the_shared_memory() -> None:
    server = _server(channels=2)
    names = [spec.shm_name for spec in server.specs]
    rt = server.runtime("double")
    rt.run({"image": np.ones((1, 3, 4, 4), np.float32)})
    server.close()
    assert not server.alive and server.process.exitcode == 0
    for name in names:
        with pytest.raises(FileNotFoundError):
            SharedMemory(name=name)
    with pytest.raises(ModelError, match="closed"):
        rt.run({"image": np.ones((1, 3, 4, 4), np.float32)})


def _worker(spec: ChannelSpec, value: float, out: Any) -> None:
    client = connect(spec)
    doubled, _ = client.runtime("double").run({"image": np.full((1, 3, 4, 4), value, np.float32)})
    out.put(float(doubled.max()))
    client.close()


def test_a_worker_process_reaches_the_server_through_its_channel() -> None:
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    with _server(channels=2) as server:
        proc = ctx.Process(target=_worker, args=(server.channel(1), 5.0, out))
        proc.start()
        assert out.get(timeout=120) == 10.0
        proc.join(30)
        assert proc.exitcode == 0


def test_a_bucketed_model_is_warmed_at_start_and_pads_batches() -> None:
    entry = ModelEntry(
        "count", inference_models.call_counter, max_batch=8, max_wait_ms=0, buckets=(1, 2, 4, 8)
    )
    with InferenceServer([entry], start_timeout_s=120) as server:
        batch, calls = server.runtime("count").run({"image": np.zeros((3, 3, 4, 4), np.float32)})
        stats = server.stats()["count"]
    assert batch.tolist() == [4, 4, 4]  # three rows ran padded to the bucket of four
    assert calls.tolist() == [5, 5, 5]  # after one warm-up call per bucket, before any caller
    assert (stats.batches, stats.rows, stats.padded_rows) == (1, 3, 1)


def test_onnx_models_get_buckets_only_on_an_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdsight.models import batching

    cfg = RuntimeConfig(providers=("CPUExecutionProvider",))
    assert onnx_model("det", Path("det.onnx"), cfg, max_batch=16).buckets is None
    monkeypatch.setattr(batching, "uses_accelerator", lambda config: True)
    entry = onnx_model("det", Path("det.onnx"), cfg, max_batch=16)
    assert entry.buckets == (1, 2, 4, 8, 16)
