"""`BatchingRuntime`: concurrent callers share model calls and each gets its own rows back."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from crowdsight.core.errors import ModelError
from crowdsight.models.batching import BatchingRuntime, batch_buckets


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


class StaticRecorder(Recorder):
    """A `Recorder` that declares a fixed input shape (what `warm` builds its example from)."""

    def __init__(self, shape: tuple[Any, ...] = ("batch", 3, 4, 4)) -> None:
        super().__init__()
        from crowdsight.models.spec import TensorSpec

        self.inputs = (TensorSpec("image", shape),)


def test_buckets_pad_a_batch_to_the_next_size_and_drop_the_padding() -> None:
    model = Recorder()
    x = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    with BatchingRuntime(model, max_batch=8, max_wait_ms=0, buckets=(1, 2, 4, 8)) as rt:
        doubled, total = rt.run({"image": x})
        stats = rt.stats()
    assert model.calls == [4]  # three rows ran as a batch of four
    assert np.array_equal(doubled, 2 * x) and total.tolist() == x.sum(axis=1).tolist()
    assert (stats.rows, stats.padded_rows, stats.batches) == (3, 1, 1)


def test_without_buckets_batches_run_at_their_own_size() -> None:
    model = Recorder()
    with BatchingRuntime(model, max_batch=8, max_wait_ms=0) as rt:
        rt.run({"image": np.ones((3, 2), np.float32)})
        assert rt.warm() == 0  # nothing to warm either
        assert rt.stats().padded_rows == 0
    assert model.calls == [3]


def test_a_batch_above_the_largest_bucket_runs_unpadded() -> None:
    model = Recorder()
    with BatchingRuntime(model, max_batch=16, max_wait_ms=0, buckets=(1, 2, 4)) as rt:
        rt.run({"image": np.ones((6, 2), np.float32)})
    assert model.calls == [6]


def test_warm_runs_each_bucket_once_from_the_declared_shape_and_is_not_counted() -> None:
    model = StaticRecorder()
    with BatchingRuntime(model, max_batch=8, max_wait_ms=50, buckets=batch_buckets(8)) as rt:
        assert rt.warm() == 4
        stats = rt.stats()
    assert model.calls == [1, 2, 4, 8]
    assert (stats.batches, stats.rows, stats.busy_s) == (0, 0, 0.0)


def test_warm_needs_fixed_axes_or_an_example() -> None:
    model = StaticRecorder(("batch", 3, "height", "width"))
    with BatchingRuntime(model, max_batch=4, max_wait_ms=0, buckets=(1, 2, 4)) as rt:
        assert rt.warm() == 0 and model.calls == []
        assert rt.warm({"image": np.zeros((1, 3, 8, 8), np.float32)}) == 3
    assert model.calls == [1, 2, 4]


@pytest.mark.parametrize("buckets", [(), (0, 2), (4, 2), (2, 2)])
def test_bad_buckets_are_refused(buckets: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="buckets"):
        BatchingRuntime(Recorder(), buckets=buckets)


def test_batch_buckets() -> None:
    assert batch_buckets(1) == (1,)
    assert batch_buckets(64) == (1, 2, 4, 8, 16, 32, 64)
    assert batch_buckets(48) == (1, 2, 4, 8, 16, 32, 48)
    with pytest.raises(ValueError):
        batch_buckets(0)
