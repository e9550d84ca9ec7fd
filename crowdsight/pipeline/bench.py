"""Pipeline throughput against the detector alone, on the same frames, in one run.

`run_bench` answers "how much of the detector's speed survives the whole pipeline?":
decode + detect + track + describe + analytics (+ density at its cadence) against
``detector.detect`` over the same frames already decoded in memory. The tracker is also
timed on synthetic scenes of 50 and 500 objects. No timing is asserted anywhere; the
command prints figures.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdsight.config.pipeline import PipelineSettings, live_defaults
from crowdsight.core.errors import InputError
from crowdsight.core.memory import peak_rss_mb
from crowdsight.core.types import Frame


@dataclass(frozen=True)
class BenchResult:
    """Figures of one `run_bench` call (fps are frames per second of wall time)."""

    input: str
    frames: int
    resolution: str
    model_fps: float
    pipeline_fps: float
    ratio: float
    density_every_s: float | None
    density_async: bool
    density_maps: int
    detector_threads: int | None
    density_threads: int | None
    detect_ahead: bool
    tracker_ms_50: float
    tracker_ms_500: float
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resized(frames: Iterator[Frame], size: tuple[int, int] | None) -> Iterator[Frame]:
    for f in frames:
        if size is None or f.resolution_wh == size:
            yield f
        else:
            img = cv2.resize(f.image, size, interpolation=cv2.INTER_AREA)
            yield Frame(f.camera_id, f.index, f.ts_s, np.ascontiguousarray(img))


def _frames(path: Path, n: int, size: tuple[int, int] | None, fps: float) -> Iterator[Frame]:
    from crowdsight.sources.files import open_source

    source = open_source(path, fps=fps)
    try:
        yield from itertools.islice(_resized(iter(source), size), n)
    finally:
        source.close()


def run_bench(
    path: Path,
    *,
    n_frames: int = 100,
    size: tuple[int, int] | None = (640, 480),
    fps: float = 25.0,
    settings: PipelineSettings | None = None,
    prefetch_depth: int = 4,
    chunk: int = 25,
    tracker_frames: int = 100,
) -> BenchResult:
    """Time the detector alone, then the whole pipeline, over the same frames.

    Args:
        path: A video file or a folder of frames.
        n_frames: Frames to time (the first ``n_frames`` of the input).
        size: Resize frames to (width, height) as part of decoding (None: native size).
        fps: Frame rate assumed for a folder of frames (sets the density cadence in frames).
        settings: Pipeline settings (default: `live_defaults`, as `serve` runs cameras).
        prefetch_depth: Frames decoded ahead in a thread (0: decode inline).
        chunk: Frames per interleaved round (pipeline, then detector alone).
        tracker_frames: Frames per synthetic tracker scene.

    Raises:
        InputError: the input is missing, unreadable or has no frames.
    """
    from crowdsight.pipeline.camera import CameraPipeline
    from crowdsight.sources.prefetch import prefetch
    from crowdsight.tracking.bench import tracker_ms_per_frame

    s = settings or live_defaults()
    if not s.detect:
        raise InputError("bench compares the pipeline with the detector: detection must be on")
    warm = list(_frames(path, 2, size, fps))
    if not warm:
        raise InputError(f"{path}: no frames to benchmark")
    w, h = warm[0].resolution_wh

    # The detector alone is the pipeline's own (same threads, slicing, class names).
    pipeline = CameraPipeline(path.stem or "bench", s, None, frame_rate=fps)
    detector = pipeline.detector
    assert detector is not None  # s.detect
    for f in warm:  # allocations, kernel selection
        detector.detect(f)
    if pipeline.density_estimator is not None:
        pipeline.density_estimator.estimate(warm[0].image)

    # Interleaved rounds: the pipeline decodes and processes `chunk` frames, then the
    # detector alone runs on those same frames, already in memory. Alternating cancels
    # the drift of a shared machine's speed between two long back-to-back runs, and the
    # medians over rounds ignore bursts of other load.
    frames = _frames(path, n_frames, size, fps)
    pipeline_fps_rounds: list[float] = []
    model_fps_rounds: list[float] = []
    n = density_maps = 0
    while True:
        part = itertools.islice(frames, chunk)
        source = prefetch(part, prefetch_depth) if prefetch_depth > 0 else part
        done: list[Frame] = []
        t0 = time.perf_counter()
        for result in pipeline.run(source):
            density_maps += int(result.density_fresh)
            done.append(result.frame)
        pipeline_s = time.perf_counter() - t0
        if not done:
            break
        pipeline.wait_for_density()  # the detector-only round has the machine to itself
        t0 = time.perf_counter()
        for frame in done:
            detector.detect(frame)
        model_s = time.perf_counter() - t0
        pipeline_fps_rounds.append(len(done) / pipeline_s)
        model_fps_rounds.append(len(done) / model_s)
        n += len(done)
    # Medians over rounds: robust to the bursts of a shared machine.
    model_fps = float(np.median(model_fps_rounds))
    pipeline_fps = float(np.median(pipeline_fps_rounds))

    return BenchResult(
        input=str(path),
        frames=n,
        resolution=f"{w}x{h}",
        model_fps=round(model_fps, 2),
        pipeline_fps=round(pipeline_fps, 2),
        ratio=round(pipeline_fps / model_fps, 3),
        density_every_s=None if not s.density else s.density_every_s,
        density_async=s.density and s.density_async,
        density_maps=density_maps,
        detector_threads=s.detector_threads,
        density_threads=s.density_threads if s.density else None,
        detect_ahead=pipeline.detects_ahead,
        tracker_ms_50=round(tracker_ms_per_frame(50, tracker_frames, fps), 2),
        tracker_ms_500=round(tracker_ms_per_frame(500, tracker_frames, fps), 2),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
