"""`BatchingRuntime`: concurrent callers share model calls and each gets its own rows back."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from crowdsight.core.errors import ModelError
from crowdsight.models.batching import BatchingRuntime


class Recorder:
    """A model that doubles its input and records the batch sizes it was called with."""

    def __init__(self, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.gate = gate

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if self.gate is not None:
            self.gate.wait(5)
        x = inputs["image"]
        self.calls.append(int(x.shape[0]))
        if self.fail:
            raise RuntimeError("model failed")
        return [x * 2, x.sum(axis=tuple(range(1, x.ndim)))]


def _call_concurrently(rt: BatchingRuntime, arrays: list[np.ndarray]) -> list[Any]:
    results: list[Any] = [None] * len(arrays)
    start = threading.Barrier(len(arrays))

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = rt.run({"image": arrays[i]})
        except Exception as exc:  # recorded for the assertions
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(arrays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_concurrent_callers_are_batched_and_get_their_own_rows() -> None:
    model = Recorder()
    arrays = [np.full((1, 3, 4, 4), i, np.float32) for i in range(8)]
    with BatchingRuntime(model, max_batch=8, max_wait_ms=200) as rt:
        results = _call_concurrently(rt, arrays)
        stats = rt.stats()
    for i, (doubled, total) in enumerate(results):
        assert doubled.shape == (1, 3, 4, 4)
        assert np.all(doubled == 2 * i)
        assert total.tolist() == [48.0 * i]
    assert sum(model.calls) == 8
    assert len(model.calls) < 8  # at least two callers shared a model call
    assert stats.rows == 8 and stats.batches == len(model.calls)
    assert stats.max_rows == max(model.calls)


def test_max_batch_caps_rows_per_call() -> None:
    model = Recorder()
    arrays = [np.ones((2, 3, 4, 4), np.float32) for _ in range(6)]
    with BatchingRuntime(model, max_batch=4, max_wait_ms=100) as rt:
        _call_concurrently(rt, arrays)
    assert max(model.calls) <= 4
    assert sum(model.calls) == 12


def test_different_shapes_are_never_stacked() -> None:
    model = Recorder()
    arrays = [np.ones((1, 3, 4 + (i % 2) * 4, 4), np.float32) for i in range(6)]
    with BatchingRuntime(model, max_batch=16, max_wait_ms=100) as rt:
        results = _call_concurrently(rt, arrays)
    for i, (doubled, _) in enumerate(results):
        assert doubled.shape == arrays[i].shape
    assert sum(model.calls) == 6


def test_lone_request_waits_at_most_max_wait() -> None:
    model = Recorder()
    with BatchingRuntime(model, max_batch=64, max_wait_ms=1) as rt:
        out = rt.run({"image": np.ones((1, 2), np.float32)})
    assert out[0].tolist() == [[2.0, 2.0]]
    assert model.calls == [1]


def test_model_errors_reach_every_caller_of_the_batch() -> None:
    model = Recorder(fail=True)
    arrays = [np.ones((1, 2), np.float32) for _ in range(3)]
    with BatchingRuntime(model, max_batch=8, max_wait_ms=100) as rt:
        results = _call_concurrently(rt, arrays)
        assert all(isinstance(r, RuntimeError) for r in results)
        # The service survives a failed batch.
        model.fail = False
        assert rt.run({"image": np.ones((1, 2), np.float32)})[0].tolist() == [[2.0, 2.0]]


def test_close_finishes_queued_requests_then_refuses_new_ones() -> None:
    gate = threading.Event()
    model = Recorder(gate=gate)
    rt = BatchingRuntime(model, max_batch=1, max_wait_ms=0)
    futures = [rt.submit({"image": np.full((1, 1), i, np.float32)}) for i in range(5)]
    gate.set()
    rt.close()
    assert [f.result(5)[0].item() for f in futures] == [0, 2, 4, 6, 8]
    with pytest.raises(ModelError, match="closed"):
        rt.submit({"image": np.ones((1, 1), np.float32)})


@pytest.mark.parametrize(
    ("inputs", "match"),
    [({}, "no inputs"), ({"a": np.ones((1, 2)), "b": np.ones((2, 2))}, "batch size")],
)
def test_bad_requests_are_refused(inputs: dict[str, np.ndarray], match: str) -> None:
    with BatchingRuntime(Recorder()) as rt, pytest.raises(ValueError, match=match):
        rt.submit(inputs)
