"""`crowdsight analyze INPUT --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from crowdsight.cli.apps import app
from crowdsight.cli.options import setting_default, setting_option
from crowdsight.config.pipeline import (
    DEFAULT_DETECTOR,
    Mode,
    OnnxDetector,
    PipelineSettings,
)
from crowdsight.config.runtime import Backend, RuntimeConfig
from crowdsight.core.errors import ConfigError

console = Console(stderr=True)


def build_scene(scene_file: Path | None) -> Any:
    """Load a scene file (zones, lines, calibration, rules), or None."""
    if scene_file is None:
        return None
    from crowdsight.config.scene import load_scene

    return load_scene(scene_file)


P = PipelineSettings


@app.command()
def analyze(
    input_path: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="Image, folder of frames, video file, folder of videos (each analysed "
            "into OUT/<name>/, with a combined OUT/summary.json), or a network stream "
            "(rtsp://, http(s)://, rtmp://, srt://, …: analysed until --max-frames or Ctrl-C).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    scene: Annotated[
        Path | None, typer.Option(help="Scene YAML: zones, lines, calibration, rules.")
    ] = None,
    density: Annotated[bool, setting_option(P, "density")] = setting_default(P, "density"),
    density_every_s: Annotated[float, setting_option(P, "density_every_s")] = setting_default(
        P, "density_every_s"
    ),
    density_every_n: Annotated[int | None, setting_option(P, "density_every_n")] = None,
    detect: Annotated[bool, setting_option(P, "detect")] = setting_default(P, "detect"),
    detector: Annotated[
        str, setting_option(P, "detector", help="Here: a name or a .onnx path.")
    ] = DEFAULT_DETECTOR,
    classes: Annotated[Path | None, setting_option(OnnxDetector, "classes", "--classes")] = None,
    detect_every: Annotated[int, setting_option(P, "detect_every")] = setting_default(
        P, "detect_every"
    ),
    slicing: Annotated[Mode, setting_option(P, "slicing")] = setting_default(P, "slicing"),
    describe: Annotated[bool, setting_option(P, "describe")] = setting_default(P, "describe"),
    backend: Annotated[Backend, setting_option(RuntimeConfig, "backend")] = setting_default(
        RuntimeConfig, "backend"
    ),
    fps: Annotated[float, typer.Option(help="Frame rate assumed for a folder of frames.")] = 25.0,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after N frames.")] = None,
    video: Annotated[bool, typer.Option(help="Write annotated.mp4 for sequences.")] = True,
    redact: Annotated[
        bool,
        setting_option(P, "redact", "--redact/--no-redact"),
    ] = setting_default(P, "redact"),
    interpolate: Annotated[
        bool,
        typer.Option(
            help="Offline gap filling of the recording's tracks (ByteTrack's linear "
            "interpolation of misses under 2/3 s): tracks.jsonl gets frames_filled."
        ),
    ] = True,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Folder of videos: analyse them in parallel on Ray Data (one CPU per video).",
        ),
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster for --ray (default: start a local Ray).")
    ] = None,
) -> None:
    """Analyze an image, a folder of frames or a video: density heatmap, counts, tracks, events."""
    params = dict(locals())
    from crowdsight.sources.stream import StreamInput, is_stream_url, open_input

    streaming = is_stream_url(str(input_path))
    if not streaming:
        params["input_path"] = Path(input_path)
        if _archive(params):
            return
    from crowdsight.models.runtime import require_backend
    from crowdsight.pipeline.analyze import run_analysis
    from crowdsight.pipeline.annotate import Annotator
    from crowdsight.pipeline.camera import CameraPipeline

    if classes is not None and not detector.lower().endswith(".onnx"):
        raise ConfigError(f"--classes is for a detector you bring (.onnx), not {detector!r}")
    # A bad input fails before the models load.
    probe = open_input(input_path, fps=fps)
    if isinstance(probe, StreamInput):
        probe.probe()  # a file is read when opened; a stream only when a frame is asked for
    frame_rate = probe.fps
    probe.close()
    name = "stream" if streaming else Path(input_path).stem or "input"
    settings = PipelineSettings(
        density=density,
        density_every_s=density_every_s,
        density_every_n=density_every_n,
        detect=detect,
        detector=detector
        if classes is None
        else OnnxDetector(path=Path(detector), classes=classes),
        detect_every=detect_every,
        slicing=slicing,
        describe=describe,
        redact=redact,
        runtime=RuntimeConfig.from_env(backend=backend),  # the edge: environment read here
    )
    require_backend(settings.runtime)
    scene_cfg = build_scene(scene)
    pipeline = CameraPipeline(name, settings, scene_cfg, frame_rate=frame_rate)
    drawer = getattr(pipeline.analytics, "draw", None)
    annotator = Annotator(scene_drawer=drawer)
    if not redact:
        console.print("[yellow]warning:[/] redaction is OFF; outputs may show faces.")
    elif not density:
        console.print(
            "[yellow]note:[/] without density, only detected people and detected faces are "
            "blurred; people the detector misses may stay recognisable (keep --density on "
            "for footage you share)."
        )
    progress = Progress(
        TextColumn("[bold]analyze"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("frames", total=None, info="")

        def on_start(total: int | None) -> None:
            progress.update(task, total=total)

        def on_frame(r: Any) -> None:
            m = r.metrics.counts
            c = m.get("count_fused", m.get("count_density"))
            progress.update(task, advance=1, info=f"count~{c:.0f}" if c is not None else "")

        report = run_analysis(
            input_path,
            out,
            pipeline,
            annotator,
            redact=redact,
            fps=fps,
            max_frames=max_frames,
            write_video=video,
            on_start=on_start,
            on_frame=on_frame,
            offline="linear" if interpolate else "none",
        )
    s = report.summary
    c = s["count"]
    crowd = (
        f"crowd count mean {c['mean']:.1f}, peak {c['peak']:.1f} (frame {c['peak_frame']})"
        if c["mean"] is not None
        else "no crowd count (density off)"
    )
    if s.get("stopped_by_user"):
        console.print("[yellow]stopped with Ctrl-C[/]: the outputs cover the frames analysed")
    console.print(
        f"{s['frames']} frames at {s['processing_fps']} fps; {crowd}; "
        f"tracks {s['tracks']['total']}; events {sum(s['events'].values())} → {out}"
    )


def _archive(params: dict[str, Any]) -> bool:
    """Analyse a folder of videos (sequentially, or on Ray Data with --ray); False otherwise."""
    from functools import partial

    from crowdsight.core.errors import InputError
    from crowdsight.pipeline.archive import analyze_archive, video_files

    input_path: Path = params["input_path"]
    videos = video_files(input_path) if input_path.is_dir() else []
    if not videos:
        if params["ray"]:
            raise InputError(f"{input_path}: --ray analyses a folder of video files; none here")
        return False
    one = {k: v for k, v in params.items() if k not in ("input_path", "out", "ray", "ray_address")}

    def on_done(r: dict[str, Any]) -> None:
        console.print(f"{r['video']}: " + ("done" if r["ok"] else f"[red]failed[/] ({r['error']})"))

    mode = "on Ray Data" if params["ray"] else "one by one"
    console.print(f"{len(videos)} videos in {input_path}, analysed {mode}")
    combined = analyze_archive(
        videos,
        params["out"],
        partial(_analyze_into, **one),
        use_ray=params["ray"],
        ray_address=params["ray_address"],
        on_done=on_done,
    )
    console.print(
        f"{combined['analysed']}/{combined['videos']} videos, {combined['frames']} frames, "
        f"{combined['tracks']} tracks → {params['out'] / 'summary.json'}"
    )
    return True


def _analyze_into(source: Path, folder: Path, **options: Any) -> None:
    analyze(str(source), out=folder, **options)
