"""Many cameras on one machine (or a Ray cluster): live-paced streams, shared batched models.

`run_multi_bench` plays N copies of a source at a fixed frame rate, as N live cameras would
deliver them, through the whole camera pipeline (JPEG decode → detect → track → analytics →
describe, density at its cadence), with the detector and density models shared by all
cameras of a worker and called in cross-camera batches (`crowdsight.models.batching`).
A camera that is still busy when its next frame is due skips to the newest frame, as a
live reader does; those skipped frames are ``dropped_frames``. Events go to one central
store (SQLite in a temporary folder) through a single writer, as `serve` does.

Workers are processes (``runner="local"``) or Ray actors (``runner="ray"``); cameras are
threads inside them. The shared models run where ``inference`` says: ``thread``, each worker
has its own runtimes and a batching thread; ``process``, one inference server process
(`crowdsight.models.inference_process`) serves every worker of the machine, frames travelling
through shared memory, so batches span all cameras and the batching service does not compete
with camera threads for Python's GIL. ``ratio``
compares the aggregate pipeline frame rate with the frame rate the batched models alone
sustain for the same work per frame, measured in the same run: near 1, the models are the
limit; far below 1 with no drops, the offered load is below the models' capacity (more
cameras fit); far below 1 with drops, Python or decoding is the limit.

No timing is asserted anywhere; the command prints figures.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.config.pipeline import Mode
from crowdsight.config.runtime import Backend, Inference, RuntimeConfig, SharedInferenceConfig
from crowdsight.core.errors import ConfigError, InputError
from crowdsight.core.memory import peak_rss_mb
from crowdsight.core.types import Frame, ImageRGB
from crowdsight.models.batching import BatchingRuntime, BatchStats, buckets_for
from crowdsight.models.inference_process import ChannelSpec, InferenceServer, connect, onnx_model
from crowdsight.models.manifest import installed_model
from crowdsight.models.runtime import Runtime, TensorSpec, load_runtime, uses_accelerator
from crowdsight.pipeline.ray_connect import init_ray

RunnerKind = Literal["local", "ray"]


@dataclass(frozen=True)
class MultiBenchConfig:
    """What to play and how to run it.

    Args:
        cameras: Concurrent streams.
        fps: Frame rate each stream delivers.
        seconds: Wall time the streams play (after warm-up).
        size: Frame size (width, height) the source is resized to; None keeps it.
        backend: Model runtime (``torch`` runs the same ONNX graphs through PyTorch).
        runner: ``local`` (worker processes) or ``ray`` (worker actors + Ray).
        workers: Worker processes/actors sharing the cameras (None: one per CPU core, at
            most one per camera). Python work per frame is spread over them.
        max_batch: Most images per model call (per worker).
        max_wait_ms: How long a request waits for others to join its batch.
        density_every_s: Seconds between density maps per camera (None: no density).
        slicing: Detector slicing, as `PipelineSettings.slicing`.
        device: Torch device (``auto``: CUDA when present).
        ray_address: Ray cluster to join (None: start a local one).
        warmup_s: Seconds the workers get to load and warm their models before the streams
            start together (a worker not ready by then fails the run).
        inference: Where the shared models run (`SharedInferenceConfig.inference`):
            ``thread`` per worker, ``process`` (one inference server for all local
            workers), ``auto`` (process on a GPU).
    """

    cameras: int
    fps: float = 5.0
    seconds: float = 20.0
    size: tuple[int, int] | None = None
    backend: Backend = "onnxruntime"
    runner: RunnerKind = "local"
    workers: int | None = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    density_every_s: float | None = 1.0
    slicing: Mode = "auto"
    device: str = "auto"
    ray_address: str | None = None
    warmup_s: float = 30.0
    inference: Inference = "auto"

    def n_workers(self) -> int:
        """Workers actually used."""
        return max(1, min(self.cameras, self.workers or os.cpu_count() or 1))

    def shared(self) -> SharedInferenceConfig:
        """The batching settings as the config tree declares them."""
        return SharedInferenceConfig(
            inference=self.inference, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms
        )

    def placement(self) -> Literal["thread", "process"]:
        """``thread`` or ``process`` (``auto`` resolved: process when models run on a GPU)."""
        runtime = RuntimeConfig.from_env(backend=self.backend, device=self.device)
        return self.shared().placement(uses_accelerator(runtime))


@dataclass
class WorkerStats:
    """What one worker measured (summed over its cameras)."""

    per_camera_fps: list[float] = field(default_factory=list)
    processed: int = 0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    density_maps: int = 0
    detector: dict[str, float] = field(default_factory=dict)
    density: dict[str, float] = field(default_factory=dict)
    tiles_per_frame: float = 0.0
    inline_requests: int = 0
    error: str | None = None


def _stats_dict(s: BatchStats) -> dict[str, float]:
    return {
        "batches": s.batches,
        "rows": s.rows,
        "busy_s": round(s.busy_s, 3),
        "mean_rows": round(s.mean_rows, 2),
        "max_rows": s.max_rows,
        "padded_rows": s.padded_rows,
    }


def _make_runtime(path: Path, cfg: MultiBenchConfig, threads: int | None) -> Runtime:
    """The bench's model runtime: `cfg.backend` with a free batch axis for cross-camera batches."""
    return load_runtime(
        path,
        RuntimeConfig.from_env(
            backend=cfg.backend, device=cfg.device, threads=threads, dynamic_batch=True
        ),
    )


def _scene(w: int, h: int) -> Any:
    """A whole-frame zone and a horizontal counting line at mid-height (events to store)."""
    from crowdsight.config.scene import parse_scene

    return parse_scene(
        {
            "resolution_wh": [w, h],
            "zones": [{"id": "all", "polygon": [[0, 0], [w, 0], [w, h], [0, h]]}],
            "lines": [{"id": "mid", "points": [[0, h // 2], [w, h // 2]], "in_direction": [0, 1]}],
        },
        "bench scene",
    )


def _decode(jpeg: bytes) -> ImageRGB:
    from crowdsight.sources.files import decode_plain_jpeg

    buf = np.frombuffer(jpeg, np.uint8)
    img = decode_plain_jpeg(buf)
    if img is not None:
        return img
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("a source frame is not a decodable JPEG")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def load_jpegs(path: Path, n: int, size: tuple[int, int] | None) -> list[bytes]:
    """The first ``n`` frames of a video or folder, resized, as JPEG bytes (decoded per use)."""
    from crowdsight.sources.files import open_source

    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    out: list[bytes] = []
    source = open_source(path, fps=25.0)
    try:
        for frame in source:
            img: npt.NDArray[Any] = frame.image
            if size is not None and (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            ok, enc = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            if ok:
                out.append(enc.tobytes())
            if len(out) >= n:
                break
    finally:
        source.close()
    if not out:
        raise InputError(f"{path}: no frames to play")
    return out


def _camera_loop(
    camera_id: str,
    pipeline: Any,
    jpegs: Sequence[bytes],
    fps: float,
    t0: float,
    t_end: float,
    stats: WorkerStats,
    lock: threading.Lock,
) -> None:
    period = 1.0 / fps
    last = -1
    processed = dropped = maps = 0
    lat: list[float] = []
    ids: set[str] = set()
    while True:
        now = time.time()
        if now >= t_end:
            break
        k = int((now - t0) / period)
        if k <= last:
            time.sleep(max(0.0, t0 + (last + 1) * period - now))
            continue
        dropped += k - last - 1
        last = k
        frame = Frame(camera_id, k, k * period, _decode(jpegs[k % len(jpegs)]))
        result = pipeline.process(frame)
        lat.append((time.time() - (t0 + k * period)) * 1000.0)
        processed += 1
        maps += int(result.density_fresh)
        ids.update(e.event_id for e in result.events)
    with lock:
        stats.per_camera_fps.append(processed / max(1e-9, t_end - t0))
        stats.processed += processed
        stats.dropped += dropped
        stats.latencies_ms.extend(lat)
        stats.event_ids.extend(sorted(ids))
        stats.density_maps += maps


class _TileCounter:
    """A `Runtime` that counts detector model calls (sliced frames call it once per tile)."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.inner.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.inner.outputs

    def run(self, inputs: Mapping[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        self.calls += 1
        return self.inner.run(inputs)


def run_worker(
    cfg: MultiBenchConfig,
    camera_ids: Sequence[str],
    jpegs: Sequence[bytes],
    t0: float,
    emit: Callable[[list[Any]], None] | None = None,
    channel: ChannelSpec | None = None,
) -> WorkerStats:
    """One worker: shared batched models, one thread per camera, paced from ``t0`` (epoch s).

    Args:
        cfg: The bench configuration.
        camera_ids: Cameras this worker plays.
        jpegs: The source frames as JPEG bytes (each camera decodes its own copy).
        t0: Wall-clock start of the streams (warm-up happens before it).
        emit: Called with each frame's events (the central store's writer).
        channel: This worker's channel to the inference server (``inference="process"``);
            None: the worker batches its own models in a thread.
    """
    from crowdsight.config.pipeline import PipelineSettings
    from crowdsight.pipeline.camera import CameraPipeline

    stats = WorkerStats()
    client = connect(channel) if channel is not None else None
    batchers: list[tuple[str, BatchingRuntime]] = []
    det_rt: Runtime
    dens_rt: Runtime | None = None
    if client is not None:
        det_rt = client.runtime("detector")
        if cfg.density_every_s is not None:
            dens_rt = client.runtime("density")
    else:
        threads_per_model = 1 if cfg.backend == "onnxruntime" else None
        det_b = BatchingRuntime(
            _make_runtime(_detector_path(), cfg, threads_per_model),
            max_batch=cfg.max_batch,
            max_wait_ms=cfg.max_wait_ms,
            name="bench-detector",
            buckets=buckets_for(
                RuntimeConfig.from_env(backend=cfg.backend, device=cfg.device), cfg.max_batch
            ),
        )
        det_b.warm()
        det_rt = det_b
        batchers.append(("detector", det_b))
        if cfg.density_every_s is not None:
            dens_b = BatchingRuntime(
                _make_runtime(_density_path(), cfg, threads_per_model),
                max_batch=_density_batch(cfg),
                max_wait_ms=cfg.max_wait_ms,
                name="bench-density",
            )
            dens_rt = dens_b
            batchers.append(("density", dens_b))
    settings = PipelineSettings(
        density=cfg.density_every_s is not None,
        density_every_s=cfg.density_every_s or 0.0,
        density_async=True,
        slicing=cfg.slicing,
        describe=True,
        # The batched runtime below serves the SSDLite graph (300×300 tiles), so the
        # cameras run that detector; NanoDet batching is not wired into this bench yet.
        detector="ssdlite",
    )
    first = _decode(jpegs[0])
    h, w = first.shape[:2]
    scene = _scene(w, h)
    shared = CameraPipeline("warmup", settings, scene, frame_rate=cfg.fps)
    detector, density = shared.detector, shared.density_estimator
    counter = _TileCounter(det_rt)
    if detector is not None:
        detector.runtime = counter  # type: ignore[attr-defined]
    if density is not None and dens_rt is not None:
        density.runtime = dens_rt  # type: ignore[attr-defined]
    warm = Frame("warmup", 0, 0.0, first)
    shared.process(warm)
    shared.wait_for_density()
    tiles = counter.calls
    pipelines = {
        cam: CameraPipeline(
            cam,
            settings,
            scene,
            detector=detector,
            density_estimator=density,
            frame_rate=cfg.fps,
        )
        for cam in camera_ids
    }
    stats.tiles_per_frame = float(tiles)
    lock = threading.Lock()
    t_end = t0 + cfg.seconds
    wait = t0 - time.time()
    if wait < 0:
        raise ConfigError(f"worker not ready {-wait:.1f} s after the start: raise warmup_s")
    time.sleep(wait)
    threads = []
    for cam, pipeline in pipelines.items():
        runs: Any = pipeline if emit is None else _Emitting(pipeline, emit)
        t = threading.Thread(
            target=_camera_loop,
            args=(cam, runs, jpegs, cfg.fps, t0, t_end, stats, lock),
            name=f"cam-{cam}",
            daemon=True,
        )
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    for p in pipelines.values():
        p.wait_for_density()
    for name, b in batchers:
        b.close()
        setattr(stats, name, _stats_dict(b.stats()))
    if client is not None:
        stats.inline_requests = client.inline_requests  # requests that fit no free slot
        client.close()  # the server's batch statistics are read by the parent
    return stats


def _detector_path() -> Path:
    return installed_model("people-ssdlite").file(".onnx")


def _density_path() -> Path:
    return installed_model("csrnet").file("csrnet.onnx")


def _density_batch(cfg: MultiBenchConfig) -> int:
    """Full frames per density call: at most 4 (4 × 1080p float16 activations are ~11 GB)."""
    return min(4, cfg.max_batch)


def _start_server(
    cfg: MultiBenchConfig, channels: int, frame_wh: tuple[int, int]
) -> InferenceServer:
    """The inference server for ``inference="process"``: detector and density, one channel per
    worker. Its models get the backend's default threads (all cores): they are the only ones.
    """
    runtime = RuntimeConfig.from_env(backend=cfg.backend, device=cfg.device, dynamic_batch=True)
    shared = cfg.shared()
    models = [
        onnx_model(
            "detector",
            _detector_path(),
            runtime,
            max_batch=cfg.max_batch,
            max_wait_ms=cfg.max_wait_ms,
        )
    ]
    if cfg.density_every_s is not None:
        models.append(
            onnx_model(
                "density",
                _density_path(),
                runtime,
                max_batch=_density_batch(cfg),
                max_wait_ms=cfg.max_wait_ms,
            )
        )
    w8, h8 = ((v + 7) // 8 * 8 for v in frame_wh)  # the density input, padded to 8
    return InferenceServer(
        models,
        channels=channels,
        slots=shared.slots,
        slot_bytes=int(shared.slot_mib * (1 << 20)),
        large_slots=shared.frame_slots if cfg.density_every_s is not None else 0,
        large_slot_bytes=3 * h8 * w8 * 4 + 4096,
        start_timeout_s=cfg.warmup_s * 4,
    )


class _Emitting:
    """A pipeline whose events are also handed to ``emit`` (the central store's writer)."""

    def __init__(self, pipeline: Any, emit: Callable[[list[Any]], None]) -> None:
        self.pipeline = pipeline
        self.emit = emit

    def process(self, frame: Frame) -> Any:
        result = self.pipeline.process(frame)
        if result.events:
            self.emit(list(result.events))
        return result


def _process_worker(
    cfg: MultiBenchConfig,
    camera_ids: list[str],
    jpegs: list[bytes],
    t0: float,
    events: Any,
    results: Any,
    channel: ChannelSpec | None = None,
) -> None:
    try:
        stats = run_worker(cfg, camera_ids, jpegs, t0, emit=events.put, channel=channel)
    except Exception as exc:  # reported to the parent, which raises it
        stats = WorkerStats(error=f"{exc.__class__.__name__}: {exc}")
    results.put(stats)


class _StoreWriter:
    """The central store: one thread writes every worker's events, as `serve` does."""

    def __init__(self, folder: Path) -> None:
        from crowdsight.store import Store

        self.store = Store(f"sqlite:///{folder / 'bench.db'}")
        self.store.migrate()
        self.queue: queue.Queue[list[Any] | None] = queue.Queue()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="bench-store", daemon=True)
        self._thread.start()

    def put(self, events: list[Any]) -> None:
        self.queue.put(events)

    def _run(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            try:
                self.store.record_events(batch)
            except Exception:
                self.errors += 1

    def close(self) -> set[str]:
        self.queue.put(None)
        self._thread.join()
        ids = {e.event_id for e in self.store.query_events(limit=1_000_000)}
        self.store.close()
        return ids


def _split(items: list[str], n: int) -> list[list[str]]:
    return [items[i::n] for i in range(n) if items[i::n]]


def _model_only_fps(
    cfg: MultiBenchConfig, jpegs: Sequence[bytes], tiles: float, batch: int, seconds: float
) -> dict[str, float]:
    """Frames/s the batched models alone sustain for the pipeline's work per frame.

    Runs the detector on batches of ``batch`` tiles (300×300) and the density model on
    batches of full frames, back to back, in this process; combines them with the work per
    frame (``tiles`` detector calls + one density map every ``density_every_s``).
    """
    rng = np.random.default_rng(0)
    det = _make_runtime(_detector_path(), cfg, None)
    x = (rng.random((batch, 3, 300, 300)) * 255).astype(np.float32)
    det.run({"image": x})
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        det.run({"image": x})
        n += batch
    det_rows_s = n / (time.perf_counter() - t0)
    frame_s = tiles / det_rows_s
    out = {"detector_rows_per_s": round(det_rows_s, 1)}
    if cfg.density_every_s is not None:
        img = _decode(jpegs[0])
        h8, w8 = (img.shape[0] + 7) // 8 * 8, (img.shape[1] + 7) // 8 * 8
        db = max(1, min(batch // 4, 8))
        dx = (rng.random((db, 3, h8, w8)) * 255).astype(np.float32)
        dens = _make_runtime(_density_path(), cfg, None)
        dens.run({"image": dx})
        m = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            dens.run({"image": dx})
            m += db
        dens_rows_s = m / (time.perf_counter() - t0)
        frame_s += 1.0 / (cfg.fps * cfg.density_every_s) / dens_rows_s
        out["density_maps_per_s"] = round(dens_rows_s, 2)
    out["model_fps"] = round(1.0 / frame_s, 2)
    return out


class _GpuSampler:
    """Mean GPU utilisation (%) over the streaming phase, read through NVML (None: no GPU)."""

    def __init__(self, t0: float, t_end: float) -> None:
        self.samples: list[float] = []
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML, no GPU: utilisation is reported as null
            return
        self._thread = threading.Thread(
            target=self._run, args=(t0, t_end), name="bench-gpu-util", daemon=True
        )
        self._thread.start()

    def _run(self, t0: float, t_end: float) -> None:
        while time.time() < t_end:
            if time.time() >= t0:
                rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
                self.samples.append(float(rates.gpu))
            time.sleep(0.5)

    def mean(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None


def run_multi_bench(
    source: Path, cfg: MultiBenchConfig, *, n_source_frames: int = 50
) -> dict[str, Any]:
    """Play ``cfg.cameras`` live-paced copies of ``source``; return the figures as a dict."""
    if cfg.cameras < 1:
        raise ConfigError("cameras must be at least 1")
    if cfg.fps <= 0 or cfg.seconds <= 0:
        raise ConfigError("fps and seconds must be positive")
    placement = cfg.placement()
    if placement == "process" and cfg.runner == "ray":
        raise ConfigError(
            "--inference process serves the workers of one machine: use --runner local, or "
            "--inference thread with --runner ray"
        )
    jpegs = load_jpegs(source, n_source_frames, cfg.size)
    cams = [f"cam{i:04d}" for i in range(cfg.cameras)]
    groups = _split(cams, cfg.n_workers())
    first = _decode(jpegs[0])
    frame_wh = (first.shape[1], first.shape[0])
    server = _start_server(cfg, len(groups), frame_wh) if placement == "process" else None
    try:
        with tempfile.TemporaryDirectory(prefix="crowdsight-multibench-") as tmp:
            writer = _StoreWriter(Path(tmp))
            t0 = time.time() + cfg.warmup_s  # models load and warm up before t0
            gpu = _GpuSampler(t0, t0 + cfg.seconds)
            if cfg.runner == "ray":
                stats = _run_ray(cfg, groups, jpegs, t0, writer)
            else:
                channels = server.specs if server is not None else None
                stats = _run_local(cfg, groups, jpegs, t0, writer, channels)
            stored = writer.close()
        if server is not None:
            served = server.stats()
            for s in stats:  # one server: every worker reports its figures
                s.detector = _stats_dict(served["detector"])
                if "density" in served:
                    s.density = _stats_dict(served["density"])
    finally:
        if server is not None:
            server.close()
    errors = [s.error for s in stats if s.error]
    if errors:
        raise ConfigError(f"a bench worker failed: {errors[0]}")
    produced = {i for s in stats for i in s.event_ids}
    lat = [x for s in stats for x in s.latencies_ms]
    processed = sum(s.processed for s in stats)
    tiles = statistics.mean(s.tiles_per_frame for s in stats) or 1.0
    det_batches = [s.detector for s in stats][: 1 if server is not None else None]
    mean_rows = statistics.mean(d.get("mean_rows", 1.0) for d in det_batches) or 1.0
    model = _model_only_fps(cfg, jpegs, tiles, max(1, round(mean_rows)), seconds=3.0)
    aggregate = processed / cfg.seconds
    return {
        "cameras": cfg.cameras,
        "runner": cfg.runner,
        "backend": cfg.backend,
        "inference": placement,
        "workers": len(groups),
        "fps_per_camera_target": cfg.fps,
        "resolution": f"{_decode(jpegs[0]).shape[1]}x{_decode(jpegs[0]).shape[0]}",
        "per_camera_fps": [round(f, 2) for s in stats for f in s.per_camera_fps],
        "aggregate_fps": round(aggregate, 2),
        "offered_fps": round(cfg.cameras * cfg.fps, 2),
        "dropped_frames": sum(s.dropped for s in stats),
        "p95_latency_ms": round(float(np.percentile(lat, 95)), 1) if lat else None,
        "events_stored": len(produced & stored),
        "events_lost": len(produced - stored),
        "store_errors": writer.errors,
        "density_maps": sum(s.density_maps for s in stats),
        "detector_tiles_per_frame": tiles,
        "detector_mean_batch": round(mean_rows, 2),
        "inline_requests": sum(s.inline_requests for s in stats),
        "detector_batches": det_batches,
        "density_batches": [s.density for s in stats][: 1 if server is not None else None],
        "gpu_util": gpu.mean(),
        **model,
        "ratio": round(aggregate / model["model_fps"], 3) if model["model_fps"] else None,
        "peak_rss_mb_parent": round(peak_rss_mb(), 1),
    }


def _run_local(
    cfg: MultiBenchConfig,
    groups: list[list[str]],
    jpegs: list[bytes],
    t0: float,
    writer: _StoreWriter,
    channels: Sequence[ChannelSpec] | None = None,
) -> list[WorkerStats]:
    ctx = mp.get_context("spawn")
    events: Any = ctx.Queue()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_process_worker,
            args=(cfg, g, jpegs, t0, events, results, channels[i] if channels else None),
            daemon=True,
        )
        for i, g in enumerate(groups)
    ]
    for p in procs:
        p.start()
    out: list[WorkerStats] = []
    deadline = t0 + cfg.seconds + 300
    while len(out) < len(procs) and time.time() < deadline:
        with contextlib.suppress(queue.Empty):
            writer.put(events.get(timeout=0.05))
        with contextlib.suppress(queue.Empty):
            out.append(results.get_nowait())
    while True:
        try:
            writer.put(events.get(timeout=0.2))
        except queue.Empty:
            break
    for p in procs:
        p.join(10)
    if len(out) < len(procs):
        raise ConfigError("bench workers did not finish in time")
    return out


def _run_ray(
    cfg: MultiBenchConfig,
    groups: list[list[str]],
    jpegs: list[bytes],
    t0: float,
    writer: _StoreWriter,
) -> list[WorkerStats]:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--runner ray needs Ray: pip install 'crowdsight[ray]'") from exc
    init_ray(cfg.ray_address)

    @ray.remote(num_cpus=0)
    class EventSink:
        def __init__(self) -> None:
            self.items: list[list[Any]] = []

        def put(self, events: list[Any]) -> None:
            self.items.append(events)

        def drain(self) -> list[list[Any]]:
            out, self.items = self.items, []
            return out

    sink = EventSink.remote()  # type: ignore[attr-defined]

    @ray.remote(num_cpus=0.5)
    def worker(group: list[str]) -> WorkerStats:
        return run_worker(cfg, group, jpegs, t0, emit=lambda ev: sink.put.remote(ev))

    pending = [worker.remote(g) for g in groups]
    out: list[WorkerStats] = []
    while pending:
        done, pending = ray.wait(pending, timeout=0.5)
        out.extend(ray.get(done))
        for batch in ray.get(sink.drain.remote()):
            writer.put(batch)
    for batch in ray.get(sink.drain.remote()):
        writer.put(batch)
    return out


def result_line(result: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the JSON line (in the issue's order first)."""
    keys = [
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
    return {**{k: result[k] for k in keys}, **{k: v for k, v in result.items() if k not in keys}}
