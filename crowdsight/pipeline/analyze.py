"""Offline analysis of one input (image, frame folder or video) into an output folder.

Outputs:
    annotated.png | annotated.mp4   the picture: heatmap, boxes, trails, zones (redacted)
    counts.csv                      one row per processed frame
    events.jsonl                    every event state change (open, then closed)
    tracks.jsonl                    one row per track: class, first/last seen, frames seen,
                                    frames gap filling adds (offline mode), description
    summary.json                    frames, counts (per frame, mean, peak), fps, tracks, zones

Each output writer is a small object; `run_analysis` only moves results between them. A bad
input met halfway (a truncated video) still leaves every output written for the frames that
decoded, then re-raises the `InputError`.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from crowdsight.core.errors import InputError, OutputError, is_disk_full
from crowdsight.core.events import Event
from crowdsight.core.types import CLASS_NAME
from crowdsight.pipeline.annotate import Annotator
from crowdsight.pipeline.camera import CameraPipeline, FrameResult
from crowdsight.sources.files import ImageSource
from crowdsight.sources.policy import redact_source
from crowdsight.sources.prefetch import prefetch
from crowdsight.sources.stream import StreamInput, open_input
from crowdsight.sources.writer import VideoWriter
from crowdsight.tracking.offline import GapLedger, OfflineMode


class CountsWriter:
    """counts.csv: frame, ts_s, density count (and whether it is fresh), tracked counts.

    Also keeps the summary of the *crowd count*: the figure the annotated video shows (the
    density count fused with the tracked people where both ran, else the density count).
    """

    def __init__(self, path: Path) -> None:
        self._fh: IO[str] = path.open("w", newline="")
        self._w = csv.writer(self._fh)
        self._w.writerow(
            ["frame", "ts_s", "count_density", "density_fresh", "count_tracked", "count_fused"]
        )
        self._crowd_n = 0
        self._crowd_sum = 0.0
        self._crowd_peak: tuple[float, int] | None = None

    def crowd_summary(self) -> dict[str, Any]:
        """Mean and peak of the crowd count over the frames that had one."""
        if self._crowd_peak is None:
            return {"frames": 0, "mean": None, "peak": None, "peak_frame": None}
        return {
            "frames": self._crowd_n,
            "mean": round(self._crowd_sum / self._crowd_n, 3),
            "peak": round(self._crowd_peak[0], 3),
            "peak_frame": self._crowd_peak[1],
        }

    def write(self, r: FrameResult) -> None:
        m = r.metrics.counts
        dens = m.get("count_density")
        tracked = m.get("count_tracked")
        fused = m.get("count_fused")
        crowd = fused if fused is not None else dens
        if crowd is not None:
            self._crowd_n += 1
            self._crowd_sum += float(crowd)
            if self._crowd_peak is None or crowd > self._crowd_peak[0]:
                self._crowd_peak = (float(crowd), r.frame.index)
        self._w.writerow(
            [
                r.frame.index,
                f"{r.frame.ts_s:.3f}",
                "" if dens is None else f"{dens:.2f}",
                int(r.density_fresh),
                "" if tracked is None else int(tracked),
                "" if fused is None else f"{fused:.2f}",
            ]
        )

    def close(self) -> None:
        self._fh.close()


class EventsWriter:
    """events.jsonl: one JSON object per event state change."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[str] = path.open("w")
        self.by_type: dict[str, int] = {}

    def write(self, events: list[Event]) -> None:
        for e in events:
            if e.is_open or e.end_ts_s == e.start_ts_s:
                self.by_type[e.kind] = self.by_type.get(e.kind, 0) + 1
            self._fh.write(json.dumps(e.to_dict()) + "\n")

    def close(self) -> None:
        self._fh.close()


@dataclass
class TrackLog:
    """First/last sighting and class of every track id (for tracks.jsonl and the summary).

    With ``offline="linear"`` (`crowdsight.tracking.offline`) each row also says how many
    frames ByteTrack's linear gap filling adds to the track (``frames_filled``: short
    misses of a recording, which the live tracker cannot know were the same person until
    it sees them again); ``frames`` stays the frames the tracker reported.
    """

    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)
    offline: OfflineMode = "linear"
    gaps: GapLedger = field(default_factory=GapLedger)

    def update(self, r: FrameResult) -> None:
        d = r.detections
        if self.offline == "linear":
            ids = [] if d.tracker_id is None else d.tracker_id.tolist()
            self.gaps.add(r.frame.ts_s, ids)
        if d.tracker_id is None or not len(d):
            return
        names = d.data.get(CLASS_NAME)
        class_ids = d.class_id if d.class_id is not None else np.zeros(len(d), int)
        for i, tid in enumerate(d.tracker_id):
            t = self.tracks.setdefault(
                int(tid),
                {
                    "track_id": int(tid),
                    "class_name": str(names[i]) if names is not None else str(int(class_ids[i])),
                    "first_frame": r.frame.index,
                    "first_ts_s": r.frame.ts_s,
                    "frames": 0,
                },
            )
            t["last_frame"], t["last_ts_s"] = r.frame.index, r.frame.ts_s
            t["frames"] += 1

    def unique_by_class(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tracks.values():
            out[t["class_name"]] = out.get(t["class_name"], 0) + 1
        return out

    def write(self, path: Path, descriptions: dict[int, Any]) -> None:
        with path.open("w") as fh:
            for tid, t in sorted(self.tracks.items()):
                row = dict(t)
                if self.offline == "linear":
                    row["frames_filled"] = self.gaps.filled(tid)
                desc = descriptions.get(tid)
                if desc is not None:
                    row["description"] = getattr(desc, "text", str(desc))
                    as_dict = getattr(desc, "to_dict", None)
                    if callable(as_dict):
                        row["attributes"] = as_dict()
                fh.write(json.dumps(row) + "\n")


@dataclass
class AnalysisReport:
    """What `run_analysis` did (also written as summary.json)."""

    summary: dict[str, Any]
    out_dir: Path


def run_analysis(
    input_path: Path | str,
    out_dir: Path,
    pipeline: CameraPipeline,
    annotator: Annotator,
    *,
    redact: bool = True,
    fps: float | None = None,
    max_frames: int | None = None,
    write_video: bool = True,
    on_start: Callable[[int | None], None] | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    offline: OfflineMode = "linear",
) -> AnalysisReport:
    """Analyze one input into ``out_dir``.

    Args:
        input_path: Image, folder of frames, video file, or a network stream's URL (read
            until ``max_frames`` or Ctrl-C; a stream that drops for good ends it with the
            frames it has, as a broken video does).
        out_dir: Created if missing; existing outputs are overwritten.
        pipeline: The camera pipeline (its settings choose the stages and cadences).
        annotator: Draws the annotated output.
        redact: Blur heads/faces in the annotated output (recorded in summary.json).
        fps: Frame rate assumed for a folder of frames.
        max_frames: Stop after this many frames.
        write_video: Write annotated.mp4 for sequences (False: records only, faster).
        on_start: Called with the expected number of frames (None when unknown).
        on_frame: Called after each frame (progress bars).
        offline: Offline post-processing reported in tracks.jsonl (``"linear"``: frames
            gap filling adds per track; ``"none"``: the live tracker's output only).

    Raises:
        InputError: bad input; for a video that fails halfway, after writing partial outputs.
    """
    source = open_input(input_path, pipeline.camera_id, fps=fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = (
        source.n_frames if max_frames is None else min(source.n_frames or max_frames, max_frames)
    )
    if on_start is not None:
        on_start(total)
    is_image = isinstance(source, ImageSource)
    if is_image:
        # One frame: nothing to track (a tracker confirms tracks over several frames), so
        # the image shows every detection.
        pipeline.tracker = None
    try:
        counts = CountsWriter(out_dir / "counts.csv")
        events = EventsWriter(out_dir / "events.jsonl")
    except OSError as exc:
        source.close()
        raise output_error(exc, out_dir, 0) from exc
    tracks = TrackLog(offline=offline)
    video = (
        None
        if is_image or not write_video
        else VideoWriter(out_dir / "annotated.mp4", fps=getattr(source, "fps", 25.0))
    )
    per_frame: list[dict[str, float]] = []
    error: InputError | None = None
    failed: OSError | None = None  # writing the outputs failed (a full disk, say)
    interrupted = False  # Ctrl-C: stop, and write what there is
    n = 0
    t0 = time.perf_counter()
    try:
        # Decoding runs ahead in a thread; with a GPU detector, detection also runs a frame
        # ahead (`detect_ahead`). `crowdsight bench` measures what each buys.
        for r in pipeline.run(prefetch(source)):
            frame = r.frame
            counts.write(r)
            events.write(r.events)
            tracks.update(r)
            if r.density_fresh:
                per_frame.append(
                    {
                        "frame": frame.index,
                        "ts_s": round(frame.ts_s, 3),
                        "count": round(r.density.count, 3) if r.density else 0.0,
                    }
                )
            if is_image:
                img = annotator.annotate(r, redact=redact)
                # Encoded here and written by Python, whose writes report a full disk
                # (cv2.imwrite ignores the failed flush of a small file: measured).
                _, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                (out_dir / "annotated.png").write_bytes(png.tobytes())
            elif video is not None:
                video.write(annotator.annotate(r, redact=redact))
            n += 1
            if on_frame is not None:
                on_frame(r)
            if max_frames is not None and n >= max_frames:
                break
    except InputError as exc:
        error = exc
    except OSError as exc:
        failed = exc
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.perf_counter() - t0
        source.close()
        for output in (counts, events, video):
            try:
                if output is not None:
                    output.close()
            except OSError as exc:  # flushing the last buffered rows can fail too
                failed = failed or exc
    if failed is not None:
        raise output_error(failed, out_dir, n) from failed
    if n == 0:
        if interrupted:
            raise KeyboardInterrupt
        raise error or InputError(f"{redact_source(str(input_path))}: no frames to analyze")
    summary = _summary(
        input_path, source, pipeline, n, elapsed, per_frame, tracks, counts, events, redact, error
    )
    summary["stopped_by_user"] = interrupted
    if isinstance(source, StreamInput):  # frames the camera sent while the pipeline was busy
        summary["skipped_frames"] = source.skipped
    try:
        tracks.write(out_dir / "tracks.jsonl", pipeline.descriptions())
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    except OSError as exc:
        raise output_error(exc, out_dir, n) from exc
    if error is not None:
        raise InputError(f"{error} — partial results for {n} frames written to {out_dir}")
    return AnalysisReport(summary, out_dir)


def output_error(exc: OSError, out_dir: Path, n_frames: int) -> OutputError:
    """One actionable line for outputs that could not be written (the input is untouched)."""
    done = f" after {n_frames} frames" if n_frames else ""
    if is_disk_full(exc):
        why = f"no space left on the disk holding {out_dir}"
        fix = "free space there or write elsewhere with --out"
    else:
        why = f"cannot write the results to {out_dir} ({exc.strerror or exc})"
        fix = "check the folder's permissions or write elsewhere with --out"
    return OutputError(
        f"{why}{done}; {fix}. The results in that folder are incomplete; the input was not changed."
    )


def _summary(
    input_path: Path | str,
    source: Any,
    pipeline: CameraPipeline,
    n: int,
    elapsed: float,
    per_frame: list[dict[str, float]],
    tracks: TrackLog,
    crowd: CountsWriter,
    events: EventsWriter,
    redact: bool,
    error: InputError | None,
) -> dict[str, Any]:
    counts = np.array([p["count"] for p in per_frame], dtype=np.float64)
    return {
        "input": redact_source(str(input_path)),  # a stream URL's password stays out
        "kind": source.kind,
        "frames": n,
        "source_fps": getattr(source, "fps", None),
        "processing_fps": round(n / elapsed, 3) if elapsed > 0 else None,
        "elapsed_s": round(elapsed, 3),
        "count": {
            "what": "crowd count as the annotated video shows it: the density count fused with "
            "the tracked people where both ran, else the density count (`density` is the "
            "density model's own, before fusion)",
            **crowd.crowd_summary(),
        },
        "density": {
            "frames": len(per_frame),
            "mean_count": round(float(counts.mean()), 3) if counts.size else None,
            "peak_count": round(float(counts.max()), 3) if counts.size else None,
            "peak_frame": int(per_frame[int(counts.argmax())]["frame"]) if counts.size else None,
            "per_frame": per_frame,
        },
        "tracks": {
            "unique_by_class": tracks.unique_by_class(),
            "total": len(tracks.tracks),
            "offline": tracks.offline,
        },
        "events": events.by_type,
        "scene": pipeline.summary(),
        "settings": pipeline.settings.model_dump(mode="json"),
        "privacy": {"redaction": "on" if redact else "OFF (explicitly disabled by --no-redact)"},
        "error": str(error) if error is not None else None,
    }
