"""`crowdsight bench`: pipeline fps against detector-only fps on the same frames."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from crowdsight.cli.apps import app
from crowdsight.cli.options import setting_default, setting_option
from crowdsight.config.pipeline import DEFAULT_DETECTOR, Mode, PipelineSettings, live_defaults
from crowdsight.config.runtime import Backend, Inference, RuntimeConfig, SharedInferenceConfig
from crowdsight.core.errors import ConfigError

console = Console(stderr=True)

P = PipelineSettings
#: What `serve` runs; the bench measures it by default and its options override it.
LIVE = live_defaults()


def _default_input() -> Path | None:
    """Mall frames from the shared data folder, when there is one (640×480, real people)."""
    roots = [os.environ.get("CROWDSIGHT_SHARED_DATA"), "../shared/data"]
    for root in roots:
        if root and (Path(root) / "mall/frames").is_dir():
            return Path(root) / "mall/frames"
    return None


def _synthetic_video(folder: Path, n: int, fps: float) -> Path:
    """A 640×480 clip of moving figures, for machines without sample footage."""
    import cv2

    from crowdsight.sources.writer import VideoWriter

    rng = np.random.default_rng(0)
    background = rng.integers(90, 160, (480, 640, 3), dtype=np.uint8)
    starts = rng.uniform([0, 120], [640, 440], (30, 2))
    speeds = rng.uniform(-3, 3, (30, 2))
    path = folder / "synthetic.mp4"
    writer = VideoWriter(path, fps)
    for i in range(n):
        img = background.copy()
        for (x, y), (vx, vy) in zip(starts, speeds, strict=True):
            cx, cy = int((x + vx * i) % 640), int(y + vy * i * 0.2) % 480
            cv2.ellipse(img, (cx, cy), (9, 26), 0, 0, 360, (40, 40, 60), -1)
            cv2.circle(img, (cx, cy - 32), 7, (170, 130, 110), -1)
        writer.write(img)
    writer.close()
    return path


def _parse_size(size: str) -> tuple[int, int] | None:
    if size.lower() == "native":
        return None
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {size!r}: use WIDTHxHEIGHT (e.g. 640x480) or 'native'") from None
    if w < 32 or h < 32:
        raise ConfigError(f"--size {size!r}: at least 32x32")
    return w, h


@app.command("bench")
def bench(
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="Video or folder of frames (default: shared Mall frames, else a synthetic clip).",
        ),
    ] = None,
    frames: Annotated[int, typer.Option(min=5, help="Frames to time (25 per round).")] = 300,
    size: Annotated[str, typer.Option(help="Resize to WIDTHxHEIGHT, or 'native'.")] = "640x480",
    fps: Annotated[float, typer.Option(help="Frame rate assumed for a folder of frames.")] = 25.0,
    density: Annotated[bool, setting_option(P, "density")] = setting_default(LIVE, "density"),
    density_every_s: Annotated[float, setting_option(P, "density_every_s")] = setting_default(
        LIVE, "density_every_s"
    ),
    density_async: Annotated[bool, setting_option(P, "density_async")] = setting_default(
        LIVE, "density_async"
    ),
    detector: Annotated[
        str, setting_option(P, "detector", help="Here: a name or a .onnx path.")
    ] = DEFAULT_DETECTOR,
    prefetch: Annotated[int, typer.Option(min=0, help="Frames decoded ahead (0: inline).")] = 4,
    detector_threads: Annotated[
        int | None, setting_option(P, "detector_threads")
    ] = setting_default(LIVE, "detector_threads"),
    detect_ahead: Annotated[Mode, setting_option(P, "detect_ahead")] = setting_default(
        LIVE, "detect_ahead"
    ),
    density_threads: Annotated[
        int | None, setting_option(P, "density_threads", help="Here: 1 by default, as `serve`.")
    ] = setting_default(LIVE, "density_threads"),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
    cameras: Annotated[
        str | None,
        typer.Option(
            help="Many-camera mode: comma-separated camera counts (e.g. 1,2,4). Each count "
            "plays that many live-paced copies of the input through shared, batched models.",
        ),
    ] = None,
    runner: Annotated[str, typer.Option(help="Many-camera mode: local | ray.")] = "local",
    backend: Annotated[
        Backend, setting_option(RuntimeConfig, "backend", help="(Many-camera mode.)")
    ] = setting_default(RuntimeConfig, "backend"),
    stream_fps: Annotated[
        float, typer.Option(min=0.1, help="Many-camera mode: frames/s each camera delivers.")
    ] = 5.0,
    seconds: Annotated[
        float, typer.Option(min=1, help="Many-camera mode: seconds the streams play.")
    ] = 20.0,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Many-camera mode: worker processes/actors (default: cores)."),
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most images per model call.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="How long a model call waits for more cameras.")
    ] = 5.0,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")
    ] = None,
    warmup_s: Annotated[
        float, typer.Option(min=1, help="Many-camera mode: seconds to load models first.")
    ] = 30.0,
    inference: Annotated[
        Inference, setting_option(SharedInferenceConfig, "inference", help="(Many-camera mode.)")
    ] = setting_default(SharedInferenceConfig, "inference"),
) -> None:
    """Detector-only fps vs full pipeline fps on the same frames, tracker ms/frame, peak RSS.

    The pipeline is decode + detect + track + describe (+ density at its cadence). Figures
    depend on the machine and on what else runs on it; nothing here is a pass/fail test.

    With ``--cameras N[,M...]``: N live-paced streams (``--stream-fps``) through the whole
    pipeline with cross-camera batched models, on worker processes (``--runner local``) or
    Ray actors (``--runner ray``); prints per-camera fps, dropped frames, p95 latency, events
    stored/lost and the ratio of pipeline fps to the batched models' own fps.
    """
    if cameras is not None:
        _multi(
            input_path,
            cameras,
            runner=runner,
            backend=backend,
            stream_fps=stream_fps,
            seconds=seconds,
            size=size,
            workers=workers,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            density=density,
            density_every_s=density_every_s,
            ray_address=ray_address,
            warmup_s=warmup_s,
            as_json=as_json,
            inference=inference,
        )
        return
    from crowdsight.config.pipeline import PipelineSettings, live_defaults
    from crowdsight.pipeline.bench import run_bench

    if detect_ahead not in ("auto", "on", "off"):
        raise ConfigError(f"--detect-ahead {detect_ahead!r}: use auto, on or off")
    live = live_defaults()  # what `serve` runs; the options override it
    settings = PipelineSettings.model_validate(
        {
            **live.model_dump(),
            "density": density,
            "density_every_s": density_every_s,
            "density_async": density_async,
            "detector": detector,
            "detector_threads": detector_threads,
            "density_threads": density_threads or live.density_threads,
            "detect_ahead": detect_ahead,
        }
    )
    with tempfile.TemporaryDirectory(prefix="crowdsight-bench-") as tmp:
        path = input_path or _default_input()
        if path is None:
            console.print("no --input and no shared Mall frames: using a synthetic clip")
            path = _synthetic_video(Path(tmp), frames, fps)
        with console.status(f"benchmarking {frames} frames of {path}"):
            result = run_bench(
                path,
                n_frames=frames,
                size=_parse_size(size),
                fps=fps,
                settings=settings,
                prefetch_depth=prefetch,
            )
    r = result
    console.print(
        f"{r.frames} frames {r.resolution}: detector {r.model_fps:.2f} fps, pipeline "
        f"{r.pipeline_fps:.2f} fps (ratio {r.ratio:.3f}, {r.density_maps} density maps); "
        f"tracker {r.tracker_ms_50:.2f} ms @50 / {r.tracker_ms_500:.2f} ms @500 objects; "
        f"peak RSS {r.peak_rss_mb:.0f} MiB"
    )
    if as_json:
        print(json.dumps(result.to_dict()))


def _multi(
    input_path: Path | None,
    cameras: str,
    *,
    runner: str,
    backend: Backend,
    stream_fps: float,
    seconds: float,
    size: str,
    workers: int | None,
    max_batch: int,
    max_wait_ms: float,
    density: bool,
    density_every_s: float,
    ray_address: str | None,
    warmup_s: float,
    as_json: bool,
    inference: Inference = "auto",
) -> None:
    from crowdsight.pipeline.multibench import MultiBenchConfig, result_line, run_multi_bench

    try:
        counts = [int(c) for c in cameras.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(f"--cameras {cameras!r}: comma-separated whole numbers") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--cameras {cameras!r}: at least one camera")
    if runner not in ("local", "ray"):
        raise ConfigError(f"--runner {runner!r}: use local or ray")
    with tempfile.TemporaryDirectory(prefix="crowdsight-bench-") as tmp:
        path = input_path or _default_input()
        if path is None:
            console.print("no --input and no shared Mall frames: using a synthetic clip")
            path = _synthetic_video(Path(tmp), 50, 25.0)
        for n in counts:
            cfg = MultiBenchConfig(
                cameras=n,
                fps=stream_fps,
                seconds=seconds,
                size=_parse_size(size),
                backend=backend,
                runner=runner,  # type: ignore[arg-type]
                workers=workers,
                max_batch=max_batch,
                max_wait_ms=max_wait_ms,
                density_every_s=density_every_s if density else None,
                ray_address=ray_address,
                warmup_s=warmup_s,
                inference=inference,
            )
            with console.status(f"{n} camera(s), {runner} runner, {backend}: {seconds:.0f} s"):
                r = run_multi_bench(path, cfg)
            console.print(
                f"{n} cameras ({r['workers']} workers, {runner}, {backend}, inference "
                f"{r['inference']}, {r['resolution']} "
                f"@ {stream_fps:g} fps): {r['aggregate_fps']:.1f} of {r['offered_fps']:.1f} "
                f"frames/s, {r['dropped_frames']} dropped, p95 latency {r['p95_latency_ms']} ms, "
                f"events {r['events_stored']} stored / {r['events_lost']} lost, model-only "
                f"{r['model_fps']:.1f} fps → ratio {r['ratio']}, mean detector batch "
                f"{r['detector_mean_batch']}"
            )
            if as_json:
                print(json.dumps(result_line(r)))
