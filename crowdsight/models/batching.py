"""Cross-camera batching: one model runtime shared by many cameras, called in batches.

A GPU is fast per *batch*, not per call: one 300×300 detector pass costs about as much as
sixteen. `BatchingRuntime` sits in front of any runtime with ``run({name: array}) ->
[outputs]`` (ONNX Runtime or torch); camera threads call its `run` as if it were the model,
and a service thread gathers the requests that arrive within ``max_wait_ms`` (up to
``max_batch`` images), runs them as one batch and hands each caller its own rows back.

Trade-off of the two knobs: ``max_wait_ms`` adds at most that much latency to a lone request
and lets more cameras join a batch; ``max_batch`` caps GPU memory and the latency of the
largest batch. Requests with different input shapes (e.g. density maps of cameras with
different resolutions) are batched separately, in arrival order.

On a GPU the first call at each new batch size is slow: measured on an H200 (torch backend,
float16, channels-last), SSDLite took 2.8–4.1 s for the first batch of 2, 5, 7, 16, 44 or 64
tiles, then 6–16 ms; CSRNet 50 ms. With batches of every size from 1 to 64 the service spent
its time there (50 streams: 56 batches in 87 s, 4 of 250 frames/s). ``buckets`` pads each
batch up to the next of a few sizes (`batch_buckets`: powers of two up to ``max_batch``, by
repeating its last row; the padded rows' outputs are dropped), and `warm` runs each once
before callers arrive, so the slow first calls happen at start and never again.

Example:
    >>> shared = BatchingRuntime(TorchRuntime(path), max_batch=32, max_wait_ms=4)   # doctest: +SKIP
    >>> shared.run({"image": x})            # from any camera thread          # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ModelError
from crowdsight.models.runtime import Runtime, TensorSpec, uses_accelerator

Array = npt.NDArray[Any]


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes a padded batch is rounded up to: powers of two below ``max_batch``, then
    ``max_batch`` (at most twice the work of the real rows, and log2(max_batch) + 1 shapes).

    Example:
        >>> batch_buckets(64)
        (1, 2, 4, 8, 16, 32, 64)
        >>> batch_buckets(12)
        (1, 2, 4, 8, 12)
    """
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    sizes = [1 << k for k in range(max_batch.bit_length()) if 1 << k < max_batch]
    return (*sizes, max_batch)


def buckets_for(config: RuntimeConfig, max_batch: int) -> tuple[int, ...] | None:
    """`batch_buckets` for models that run on an accelerator under ``config`` (where each new
    batch size costs a slow first call), None on a CPU (where padding is only extra work)."""
    return batch_buckets(max_batch) if uses_accelerator(config) else None


@dataclass
class _Request:
    inputs: Mapping[str, Array]
    rows: int
    key: tuple[tuple[str, tuple[int, ...], str], ...]
    future: Future[list[Array]] = field(default_factory=Future)
    t_in: float = field(default_factory=time.perf_counter)
    warm: bool = False


@dataclass
class BatchStats:
    """What the service did so far (read with `BatchingRuntime.stats`)."""

    batches: int = 0
    rows: int = 0
    busy_s: float = 0.0
    max_rows: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    padded_rows: int = 0
    """Rows added to round batches up to a bucket (computed, then dropped)."""

    @property
    def mean_rows(self) -> float:
        """Mean images per model call."""
        return self.rows / self.batches if self.batches else 0.0

    @property
    def model_rows_per_s(self) -> float:
        """Images per second of model time (the batched model-only throughput)."""
        return self.rows / self.busy_s if self.busy_s > 0 else 0.0


class BatchingRuntime:
    """Batches concurrent `run` calls of many threads into few calls of one runtime.

    Args:
        runtime: The shared model (`crowdsight.models.torch_backend.TorchRuntime`, an ONNX
            Runtime wrapper, ...). Only the service thread calls it.
        max_batch: Most images per model call.
        max_wait_ms: How long the first request of a batch waits for company.
        name: Thread name (shows in profilers).
        buckets: Batch sizes to pad each batch up to (ascending; `batch_buckets`), or None
            to run batches at their own size (the right choice on a CPU, where padding is
            only extra work). A batch larger than the largest bucket runs unpadded.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        name: str = "batching-runtime",
        buckets: tuple[int, ...] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        if buckets is not None and (
            not buckets or buckets[0] < 1 or list(buckets) != sorted(set(buckets))
        ):
            raise ValueError(f"buckets must be ascending sizes >= 1, got {buckets}")
        self.runtime = runtime
        self.buckets = buckets
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._held: list[_Request] = []
        self._stats = BatchStats()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The shared runtime's inputs (a `BatchingRuntime` is itself a `Runtime`)."""
        return self.runtime.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The shared runtime's outputs."""
        return self.runtime.outputs

    def run(self, inputs: Mapping[str, Array]) -> list[Array]:
        """The runtime's outputs for these inputs, computed in a batch with other callers.

        Blocks until the batch ran. Errors of the model are raised in every caller of
        that batch.
        """
        return self.submit(inputs).result()

    def submit(self, inputs: Mapping[str, Array]) -> Future[list[Array]]:
        """Queue one request; the future resolves to its outputs."""
        req = self._request(inputs)
        self._queue.put(req)
        return req.future

    def _request(self, inputs: Mapping[str, Array]) -> _Request:
        if self._closed:
            raise ModelError("the batching runtime is closed")
        if not inputs:
            raise ValueError("no inputs")
        rows = {int(a.shape[0]) for a in inputs.values()}
        if len(rows) != 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(rows)}")
        key = tuple(
            sorted((k, tuple(int(d) for d in a.shape[1:]), a.dtype.str) for k, a in inputs.items())
        )
        return _Request(inputs, rows.pop(), key)

    def warm(self, inputs: Mapping[str, Array] | None = None) -> int:
        """Run one batch of each bucket size now, so no caller waits for a first call.

        ``inputs``: one example request (its first row is repeated); by default zeros of the
        runtime's declared input shapes, when every axis but the batch is fixed. Returns the
        number of sizes run (0: no buckets, or no example and a free input axis). Warm-up
        batches do not count in `stats`.
        """
        if not self.buckets:
            return 0
        if inputs is None:
            example = _static_example(self.runtime.inputs)
            if example is None:
                return 0
            inputs = example
        for size in self.buckets:
            if size > self.max_batch:
                break
            batch = {k: np.repeat(np.asarray(a)[:1], size, axis=0) for k, a in inputs.items()}
            req = self._request(batch)
            req.warm = True
            self._queue.put(req)
            req.future.result()
        return sum(1 for b in self.buckets if b <= self.max_batch)

    def stats(self) -> BatchStats:
        """A copy of the counters (batches, images, model time, batch-size histogram)."""
        with self._lock:
            s = self._stats
            return BatchStats(s.batches, s.rows, s.busy_s, s.max_rows, dict(s.sizes), s.padded_rows)

    def close(self) -> None:
        """Finish what is queued, then stop the service thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> BatchingRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # service thread -----------------------------------------------------------------

    def _next(self, timeout: float | None) -> _Request | None:
        if self._held:
            return self._held.pop(0)
        return self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()

    def _serve(self) -> None:
        stopping = False
        while not (stopping and not self._held and self._queue.empty()):
            try:
                first = self._next(None if not stopping else 0)
            except queue.Empty:
                break
            if first is None:
                stopping = True
                continue
            batch, rows = [first], first.rows
            deadline = first.t_in + self.max_wait_s
            while rows < self.max_batch and not first.warm:  # a warm-up batch runs alone
                wait = deadline - time.perf_counter()
                try:
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if nxt.key != first.key or rows + nxt.rows > self.max_batch or nxt.warm:
                    self._held.append(nxt)  # another shape, no room, or a warm-up: next batch
                    if nxt.key == first.key:
                        break
                    continue
                batch.append(nxt)
                rows += nxt.rows
            self._run(batch, rows)

    def _run(self, batch: list[_Request], rows: int) -> None:
        names = list(batch[0].inputs)
        stacked = {
            n: (
                batch[0].inputs[n]
                if len(batch) == 1
                else np.concatenate([r.inputs[n] for r in batch], axis=0)
            )
            for n in names
        }
        pad = self._padding(rows)
        if pad:
            stacked = {
                n: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)], axis=0)
                for n, a in stacked.items()
            }
        t0 = time.perf_counter()
        try:
            outs = self.runtime.run(stacked)
        except Exception as exc:
            for r in batch:
                r.future.set_exception(exc)
            return
        dt = time.perf_counter() - t0
        if not batch[0].warm:
            with self._lock:
                s = self._stats
                s.batches += 1
                s.rows += rows
                s.busy_s += dt
                s.max_rows = max(s.max_rows, rows)
                s.sizes[rows] = s.sizes.get(rows, 0) + 1
                s.padded_rows += pad
        start = 0
        for r in batch:
            r.future.set_result([o[start : start + r.rows] for o in outs])
            start += r.rows

    def _padding(self, rows: int) -> int:
        """Rows to add so the batch is a bucket's size (0 without buckets or above them)."""
        if not self.buckets:
            return 0
        size = next((b for b in self.buckets if b >= rows), rows)
        return size - rows


def _static_example(specs: tuple[TensorSpec, ...]) -> dict[str, Array] | None:
    """One row of zeros per input when every axis but the batch has a fixed size."""
    out: dict[str, Array] = {}
    for spec in specs:
        dims = [d for d in spec.shape[1:] if isinstance(d, int) and d > 0]
        if len(dims) != len(spec.shape) - 1:
            return None
        out[spec.name] = np.zeros((1, *dims), np.dtype(spec.dtype))
    return out
