"""Archive analytics: a folder of videos analysed one by one, or in parallel on Ray Data.

Each video gets the outputs `crowdsight analyze` writes for one input, in ``OUT/<video
name>/``; ``OUT/summary.json`` combines them (per-video summaries, totals, failures). One
video failing (corrupt file, say) is recorded there and does not stop the others.

With ``use_ray``, the videos become a Ray Dataset mapped with one CPU per video, so a cluster
spreads the archive over its nodes (``ray_address`` joins one; None starts a local Ray).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crowdsight.core.errors import ConfigError, CrowdsightError, InputError
from crowdsight.pipeline.ray_connect import init_ray
from crowdsight.sources.files import VIDEO_EXTS

AnalyzeOne = Callable[[Path, Path], None]
"""Analyse one video into one output folder (the `analyze` command's work)."""


def video_files(folder: Path) -> list[Path]:
    """The video files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS)


def _one(analyze_one: AnalyzeOne, video: Path, out: Path) -> dict[str, Any]:
    """Run one video; its summary, or the reason it failed (never raises)."""
    folder = out / video.stem
    try:
        analyze_one(video, folder)
        summary = json.loads((folder / "summary.json").read_text())
    except (CrowdsightError, OSError, ValueError) as exc:
        return {"video": video.name, "ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    return {"video": video.name, "ok": True, "out": str(folder), "summary": summary}


def combine(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary over the per-video results (totals over the videos that succeeded)."""
    ok = [r for r in results if r["ok"]]
    events: dict[str, int] = {}
    for r in ok:
        for kind, n in r["summary"].get("events", {}).items():
            events[kind] = events.get(kind, 0) + int(n)
    return {
        "videos": len(results),
        "analysed": len(ok),
        "failed": [{"video": r["video"], "error": r["error"]} for r in results if not r["ok"]],
        "frames": sum(int(r["summary"].get("frames", 0)) for r in ok),
        "tracks": sum(int(r["summary"].get("tracks", {}).get("total", 0)) for r in ok),
        "events": events,
        "peak_count": max(
            (float(r["summary"].get("count", {}).get("peak") or 0) for r in ok),
            default=None,
        ),
        "per_video": [
            {k: r[k] for k in ("video", "ok", "out", "summary") if k in r} for r in results
        ],
    }


def analyze_archive(
    videos: Sequence[Path],
    out: Path,
    analyze_one: AnalyzeOne,
    *,
    use_ray: bool = False,
    ray_address: str | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Analyse every video; write and return the combined summary.

    Args:
        videos: Video files to analyse.
        out: Output folder (one sub-folder per video, plus ``summary.json``).
        analyze_one: Analyses one video into one folder (picklable when ``use_ray``).
        use_ray: Map the videos over a Ray Dataset (one CPU per video).
        ray_address: Ray cluster to join (None: start a local Ray).
        on_done: Called with each video's result as it finishes (sequential mode only).

    Raises:
        InputError: no videos.
        ConfigError: ``use_ray`` without Ray installed.
    """
    if not videos:
        raise InputError("no video files to analyse")
    out.mkdir(parents=True, exist_ok=True)
    if use_ray:
        results = _on_ray(videos, out, analyze_one, ray_address)
    else:
        results = []
        for v in videos:
            results.append(_one(analyze_one, v, out))
            if on_done is not None:
                on_done(results[-1])
    combined = combine(results)
    (out / "summary.json").write_text(json.dumps(combined, indent=2, default=str))
    return combined


def _on_ray(
    videos: Sequence[Path], out: Path, analyze_one: AnalyzeOne, address: str | None
) -> list[dict[str, Any]]:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError("--ray needs Ray Data: pip install 'crowdsight[ray]'") from exc
    started = not ray.is_initialized()
    init_ray(address)
    try:
        # One block per video, so each map task gets one video and a cluster spreads them.
        ds = ray.data.from_items([{"video": str(v)} for v in videos]).repartition(len(videos))

        def run(row: dict[str, Any]) -> dict[str, Any]:
            return {"result": json.dumps(_one(analyze_one, Path(row["video"]), out))}

        rows = ds.map(run, num_cpus=1).take_all()
    finally:
        if started:
            ray.shutdown()
    by_name = {r["video"]: r for r in (json.loads(row["result"]) for row in rows)}
    return [by_name[v.name] for v in videos]
