"""Inference in its own process: one server per device owns the models and batches every caller.

Why a process: with many camera threads in one interpreter, the batching thread of
`crowdsight.models.batching.BatchingRuntime` competes with them for Python's GIL, so it
wakes late, batches stay small and the GPU idles (measured on an H200: 100 streams reached
13.6 of 500 frames/s with the GPU 4 % busy). `InferenceServer` starts a separate process
(``spawn``) that loads the models and runs a `BatchingRuntime` per model there, where no
camera thread competes; camera threads, in this process or in worker processes, call
`RemoteRuntime.run` exactly as they would call the model.

Transport: each *channel* (one per caller process) is a pipe plus a block of shared memory
cut into slots: ``slots`` small ones (detector tiles) and ``large_slots`` large ones (full
frames for the density model). A request copies its input arrays into the smallest free
slot that holds them and sends only small metadata (request id, model, where in the block,
shapes, dtypes, offsets) down the pipe; the server reads the arrays in place and writes the
outputs back into the same slot. Requests that fit no free slot travel pickled through the
pipe instead, which is slower but never fails. Before creating the blocks the server checks
that ``/dev/shm`` has room for them (containers often give it 64 MiB), so a short
``/dev/shm`` is one clear error rather than a crash when a slot is first written.

Failures: an exception in a model reaches every caller of that batch as a `ModelError`
naming it; when the server process dies, its pipe ends close, each caller's reader thread
sees end-of-file, and every pending and later call raises `ModelError` instead of hanging.
`InferenceServer.close` stops the process and unlinks the shared memory.

Example:
    >>> server = InferenceServer([onnx_model("detector", path, cfg)], channels=2)  # doctest: +SKIP
    >>> server.runtime("detector").run({"image": x})       # from this process  # doctest: +SKIP
    >>> connect(server.channel(1)).runtime("detector")      # in a worker process # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ModelError
from crowdsight.models.batching import BatchingRuntime, BatchStats, buckets_for
from crowdsight.models.runtime import Runtime, TensorSpec, load_runtime

__all__ = [
    "ChannelSpec",
    "InferenceClient",
    "InferenceServer",
    "ModelEntry",
    "RemoteRuntime",
    "connect",
    "onnx_model",
]

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]

_ALIGN = 64
"""Byte alignment of each array inside a slot (cache lines; SIMD loads)."""

_BYE = "bye"
"""A client leaving: the server answers it with the same word and stops reading that channel,
which wakes the client's reader thread (closing a pipe does not wake a blocked reader)."""

# (name, shape, dtype string, byte offset inside the slot)
_Layout = list[tuple[str, tuple[int, ...], str, int]]


@dataclass(frozen=True)
class ModelEntry:
    """One model the server loads: a name and a picklable factory that builds its runtime.

    Args:
        name: What callers ask for (``server.runtime(name)``).
        factory: Called once in the server process; must be picklable (a module-level
            function or a `functools.partial` of one), since the server is spawned.
        max_batch: Most images per model call.
        max_wait_ms: How long the first request of a batch waits for company.
        buckets: Batch sizes to pad batches up to, each run once before the server reports
            ready (`BatchingRuntime.warm`); None on a CPU.
    """

    name: str
    factory: Callable[[], Runtime]
    max_batch: int = 16
    max_wait_ms: float = 5.0
    buckets: tuple[int, ...] | None = None


def onnx_model(
    name: str,
    path: Path,
    config: RuntimeConfig,
    *,
    max_batch: int = 16,
    max_wait_ms: float = 5.0,
) -> ModelEntry:
    """A model file loaded by `load_runtime` in the server (any backend); on a GPU its batches
    are padded to `batch_buckets` sizes, each warmed at start."""
    factory = functools.partial(load_runtime, path, config)
    return ModelEntry(name, factory, max_batch, max_wait_ms, buckets_for(config, max_batch))


@dataclass(frozen=True)
class ChannelSpec:
    """What a caller process needs to reach the server (picklable into a spawned worker).

    Use each channel from one process only; any number of threads there may share it.
    """

    conn: Connection
    shm_name: str
    slot_sizes: tuple[tuple[int, int], ...]
    """(count, bytes) of each slot class, smallest first; the block holds them in order."""
    models: tuple[tuple[str, tuple[TensorSpec, ...], tuple[TensorSpec, ...]], ...]


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _check_room(need: int, folder: str = "/dev/shm") -> None:
    """Fail with one actionable line when ``folder`` cannot hold ``need`` bytes."""
    try:
        st = os.statvfs(folder)
    except OSError:  # no /dev/shm (not Linux): the OS decides
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise ModelError(
            f"the inference server needs {need / 2**20:.0f} MiB of shared memory and {folder} "
            f"has {free / 2**20:.0f} MiB free: lower slots/slot_mib, or enlarge {folder} "
            "(docker run --shm-size)"
        )


def _buffer(shm: SharedMemory) -> memoryview:
    buf = shm.buf
    if buf is None:
        raise ModelError(f"shared memory {shm.name} is closed")
    return buf


def _layout(arrays: Sequence[tuple[str, Array]]) -> tuple[_Layout, int]:
    """Where each array goes inside a slot (aligned offsets) and the bytes they need."""
    out: _Layout = []
    pos = 0
    for name, a in arrays:
        out.append((name, tuple(int(d) for d in a.shape), a.dtype.str, pos))
        pos += (a.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    return out, pos


def _write(buf: memoryview, base: int, layout: _Layout, arrays: Sequence[Array]) -> None:
    for (_, shape, dtype, off), a in zip(layout, arrays, strict=True):
        view: Array = np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=base + off)
        np.copyto(view, a, casting="no")


def _views(buf: memoryview, base: int, layout: _Layout) -> dict[str, Array]:
    return {
        name: np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=base + off)
        for name, shape, dtype, off in layout
    }


# server process -----------------------------------------------------------------------


def _serve(
    models: Sequence[ModelEntry],
    conns: Sequence[Connection],
    shm_names: Sequence[str],
    control: Connection,
) -> None:
    """The server process: load the models, answer every channel, stop on ``stop``."""
    try:
        runtimes = [m.factory() for m in models]
    except Exception as exc:  # reported to the parent, which raises it
        control.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    batchers = [
        BatchingRuntime(
            rt,
            max_batch=m.max_batch,
            max_wait_ms=m.max_wait_ms,
            name=f"infer-{m.name}",
            buckets=m.buckets,
        )
        for m, rt in zip(models, runtimes, strict=True)
    ]
    try:
        for b in batchers:
            b.warm()
    except Exception as exc:
        control.send(("error", f"warming the models failed: {type(exc).__name__}: {exc}"))
        return
    shms = [SharedMemory(name=n) for n in shm_names]
    threads = [
        threading.Thread(
            target=_channel_loop,
            args=(conn, _buffer(shm), batchers),
            name=f"infer-channel-{i}",
            daemon=True,
        )
        for i, (conn, shm) in enumerate(zip(conns, shms, strict=True))
    ]
    for t in threads:
        t.start()
    specs = [(m.name, rt.inputs, rt.outputs) for m, rt in zip(models, runtimes, strict=True)]
    control.send(("ready", specs))
    while True:
        try:
            msg = control.recv()
        except (EOFError, OSError):  # the owner is gone: stop too
            break
        if msg == "stats":
            control.send([b.stats() for b in batchers])
        elif msg == "stop":
            break
    for b in batchers:
        b.close()  # answers what is queued
    # Channel threads may sit in recv(); they end with the process, whose exit closes the
    # pipes, which is what tells remaining clients that the server is gone.
    for shm in shms:
        with contextlib.suppress(BufferError):  # a view alive in a stuck thread: exit unmaps
            shm.close()
    control.send("stopped")


def _channel_loop(conn: Connection, buf: memoryview, batchers: Sequence[BatchingRuntime]) -> None:
    """Read one channel's requests and queue them on the model's batcher."""
    send_lock = threading.Lock()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg == _BYE:
            with send_lock, contextlib.suppress(OSError, ValueError):
                conn.send(_BYE)
            return
        req_id, model, base, capacity, payload = msg
        inputs = _views(buf, base, payload) if base >= 0 else payload
        reply = functools.partial(_reply, conn, send_lock, buf, base, capacity, req_id)
        try:
            fut = batchers[model].submit(inputs)
        except Exception as exc:
            failed: Future[list[Array]] = Future()
            failed.set_exception(exc)
            reply(failed)
            continue
        fut.add_done_callback(reply)


def _reply(
    conn: Connection,
    lock: threading.Lock,
    buf: memoryview,
    base: int,
    capacity: int,
    req_id: int,
    fut: Future[list[Array]],
) -> None:
    """Send one request's outputs (into its slot when they fit) or its error."""
    exc = fut.exception()
    if exc is not None:
        msg: tuple[Any, ...] = (req_id, "error", f"{type(exc).__name__}: {exc}")
    else:
        outs = [np.ascontiguousarray(o) for o in fut.result()]
        layout, need = _layout([(str(i), o) for i, o in enumerate(outs)])
        if base >= 0 and need <= capacity:
            _write(buf, base, layout, outs)
            msg = (req_id, "shm", layout)
        else:
            msg = (req_id, "inline", outs)
    with lock, contextlib.suppress(OSError, ValueError):  # the caller is gone
        conn.send(msg)


# callers --------------------------------------------------------------------------------


class InferenceClient:
    """One channel to the server, shared by the threads of one process.

    Args:
        spec: From `InferenceServer.channel` (possibly pickled into this process).
    """

    def __init__(self, spec: ChannelSpec) -> None:
        self.spec = spec
        self._conn = spec.conn
        self._shm = SharedMemory(name=spec.shm_name)
        self._buf = _buffer(self._shm)
        # slot number -> (offset in the block, capacity); free slot numbers per class
        self._slots: list[tuple[int, int]] = []
        self._free: list[tuple[int, list[int]]] = []
        pos = 0
        for count, size in spec.slot_sizes:
            first = len(self._slots)
            self._slots += [(pos + i * size, size) for i in range(count)]
            self._free.append((size, list(range(first, first + count))))
            pos += count * size
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: dict[int, tuple[Future[list[Array]], int]] = {}
        self._ids = itertools.count()
        self._error: str | None = None
        self.inline_requests = 0
        self._names = {name: i for i, (name, _, _) in enumerate(spec.models)}
        self._reader = threading.Thread(target=self._read, name="infer-client", daemon=True)
        self._reader.start()

    def runtime(self, name: str) -> RemoteRuntime:
        """The `Runtime` of the server's model ``name``."""
        if name not in self._names:
            raise ModelError(f"the inference server has no model {name!r}: {sorted(self._names)}")
        i = self._names[name]
        _, inputs, outputs = self.spec.models[i]
        return RemoteRuntime(self, i, inputs, outputs)

    def submit(self, model: int, inputs: Mapping[str, Array]) -> Future[list[Array]]:
        """Send one request; the future resolves to its outputs (or a `ModelError`)."""
        arrays = [(k, np.ascontiguousarray(a)) for k, a in inputs.items()]
        layout, need = _layout(arrays)
        fut: Future[list[Array]] = Future()
        with self._lock:
            if self._error is not None:
                raise ModelError(self._error)
            slot = next((free.pop() for size, free in self._free if need <= size and free), -1)
            self.inline_requests += int(slot < 0)
            req_id = next(self._ids)
            self._pending[req_id] = (fut, slot)
        base, capacity = self._slots[slot] if slot >= 0 else (-1, 0)
        if slot >= 0:
            _write(self._buf, base, layout, [a for _, a in arrays])
            payload: Any = layout
        else:
            payload = dict(arrays)
        try:
            with self._send_lock:
                self._conn.send((req_id, model, base, capacity, payload))
        except (OSError, ValueError) as exc:
            self._fail(f"the inference server cannot be reached ({exc})")
        return fut

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                self._fail("the inference server stopped (its process ended)")
                return
            if msg == _BYE:
                return
            req_id, kind, body = msg
            with self._lock:
                entry = self._pending.pop(req_id, None)
            if entry is None:  # already failed by `_fail`
                continue
            fut, slot = entry
            if kind == "error":
                fut.set_exception(ModelError(f"inference server: {body}"))
            elif kind == "shm":
                outs = _views(self._buf, self._slots[slot][0], body)
                fut.set_result([np.array(outs[str(i)]) for i in range(len(outs))])
            else:
                fut.set_result(list(body))
            if slot >= 0:
                with self._lock:
                    size = self._slots[slot][1]
                    next(free for s, free in self._free if s == size).append(slot)

    def _fail(self, why: str) -> None:
        """Fail every pending request and every later one with ``why``."""
        with self._lock:
            if self._error is None:
                self._error = why
            pending, self._pending = self._pending, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(ModelError(why))

    def close(self) -> None:
        """Close the pipe and detach the shared memory (the server's owner unlinks it)."""
        self._fail("the inference client is closed")
        if self._reader.is_alive():
            with self._send_lock, contextlib.suppress(OSError, ValueError):
                self._conn.send(_BYE)
            self._reader.join(5)
        self._conn.close()
        self._buf = memoryview(b"")
        with contextlib.suppress(BufferError):  # a view still referenced: unmapped at exit
            self._shm.close()


def connect(spec: ChannelSpec) -> InferenceClient:
    """A client for ``spec`` in this process (e.g. in a spawned camera worker)."""
    return InferenceClient(spec)


class RemoteRuntime:
    """A `Runtime` whose model runs in the inference server (what camera threads call)."""

    def __init__(
        self,
        client: InferenceClient,
        index: int,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
    ) -> None:
        self.client = client
        self.index = index
        self.inputs = inputs
        self.outputs = outputs

    def run(self, inputs: Mapping[str, Array]) -> list[Array]:
        """The model's outputs for these inputs, batched in the server with other callers."""
        return self.client.submit(self.index, inputs).result()


class InferenceServer:
    """Starts the inference process and owns its channels and shared memory.

    Args:
        models: What the server loads (`onnx_model` for model files).
        channels: Caller processes it serves (channel 0 is for this process).
        slots: Small requests a channel can have in shared memory at once.
        slot_bytes: Size of a small slot (a batch of detector tiles).
        large_slots: Large slots per channel (full frames; 0: none).
        large_slot_bytes: Size of a large slot. A request fitting no free slot goes pickled
            through the pipe.
        start_timeout_s: How long the models may take to load.

    Raises:
        ModelError: a model failed to load in the server, or the server did not start.
    """

    def __init__(
        self,
        models: Sequence[ModelEntry],
        *,
        channels: int = 1,
        slots: int = 32,
        slot_bytes: int = 4 << 20,
        large_slots: int = 0,
        large_slot_bytes: int = 0,
        start_timeout_s: float = 300.0,
    ) -> None:
        if not models:
            raise ValueError("no models to serve")
        if channels < 1 or slots < 1 or slot_bytes < _ALIGN:
            raise ValueError("channels and slots must be at least 1, slot_bytes at least 64")
        sizes: tuple[tuple[int, int], ...] = ((slots, _aligned(slot_bytes)),)
        if large_slots > 0 and large_slot_bytes > slot_bytes:
            sizes += ((large_slots, _aligned(large_slot_bytes)),)
        block = sum(n * b for n, b in sizes)
        _check_room(channels * block)
        ctx = mp.get_context("spawn")
        self._shms = [SharedMemory(create=True, size=block) for _ in range(channels)]
        pipes = [ctx.Pipe(duplex=True) for _ in range(channels)]
        self._control, control_child = ctx.Pipe(duplex=True)
        self._control_lock = threading.Lock()
        self.process = ctx.Process(
            target=_serve,
            args=(
                models,
                [c for _, c in pipes],
                [s.name for s in self._shms],
                control_child,
            ),
            name="crowdsight-inference",
            daemon=True,
        )
        self._closed = False
        self._clients: dict[int, InferenceClient] = {}
        try:
            self.process.start()
        except Exception:
            self._unlink()
            raise
        # The server's pipe ends live only in the server now, so its death reads as EOF here.
        control_child.close()
        for _, c in pipes:
            c.close()
        reply = self._wait_ready(start_timeout_s)
        names = [m.name for m in models]
        self.specs = [
            ChannelSpec(
                conn,
                shm.name,
                sizes,
                tuple((n, tuple(i), tuple(o)) for n, i, o in reply),
            )
            for (conn, _), shm in zip(pipes, self._shms, strict=True)
        ]
        self.model_names = names

    def _wait_ready(self, timeout_s: float) -> Any:
        try:
            if not self._control.poll(timeout_s):
                raise ModelError(f"the inference server did not start within {timeout_s:.0f} s")
            kind, body = self._control.recv()
        except (EOFError, OSError) as exc:
            self.process.join(5)
            self._stop_process()
            raise ModelError(
                f"the inference server died while starting (exit code {self.process.exitcode})"
            ) from exc
        except ModelError:
            self._stop_process()
            raise
        if kind == "error":
            self._stop_process()
            raise ModelError(f"the inference server could not load its models: {body}")
        return body

    @property
    def alive(self) -> bool:
        """Whether the server process is running."""
        return self.process.is_alive()

    def channel(self, index: int) -> ChannelSpec:
        """Channel ``index`` (pass it to one worker process, which calls `connect`)."""
        return self.specs[index]

    def client(self, channel: int = 0) -> InferenceClient:
        """This process's client of ``channel`` (made once; closed with the server)."""
        if channel not in self._clients:
            self._clients[channel] = InferenceClient(self.specs[channel])
        return self._clients[channel]

    def runtime(self, name: str, channel: int = 0) -> RemoteRuntime:
        """The `Runtime` of model ``name`` for threads of this process."""
        return self.client(channel).runtime(name)

    def stats(self) -> dict[str, BatchStats]:
        """Batch statistics of each model, as the server measured them."""
        with self._control_lock:
            try:
                self._control.send("stats")
                if not self._control.poll(30):
                    raise ModelError("the inference server did not answer")
                stats = self._control.recv()
            except (EOFError, OSError) as exc:
                raise ModelError("the inference server stopped (its process ended)") from exc
        return dict(zip(self.model_names, stats, strict=True))

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the server (queued requests are answered first) and unlink the shared memory."""
        if self._closed:
            return
        self._closed = True
        for client in self._clients.values():
            client.close()
        with self._control_lock:
            try:
                self._control.send("stop")
                if self._control.poll(timeout_s):
                    self._control.recv()
            except (EOFError, OSError):
                pass
        self._stop_process(timeout_s)
        self._control.close()
        for spec in self.specs:
            spec.conn.close()

    def _stop_process(self, timeout_s: float = 5.0) -> None:
        self.process.join(timeout_s)
        if self.process.is_alive():
            log.warning("the inference server did not stop in %.0f s; killing it", timeout_s)
            self.process.kill()
            self.process.join(5)
        self._unlink()

    def _unlink(self) -> None:
        for shm in self._shms:
            try:
                shm.close()
                shm.unlink()
            except FileNotFoundError:
                pass
        self._shms = []

    def __enter__(self) -> InferenceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
