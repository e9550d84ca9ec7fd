"""`crowdsight eval anomaly`: frame-level ROC AUC of the anomaly score, per clip and pooled.

Two methods: ``objects`` (default; `crowdsight.analytics.object_anomaly`: every detected
object and undetected moving region scored against normal objects) and ``cells`` (the older
per-cell motion baseline of `crowdsight.analytics.anomaly`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError

if TYPE_CHECKING:
    from crowdsight.analytics.object_anomaly import FrameObjects, ObjectAnomalyParams
    from crowdsight.core.types import Detections
    from crowdsight.perception.base import Detector

console = Console(stderr=True)

#: Temporal smoothing of the object method's frame scores, seconds (Gaussian sigma). Fixed a
#: priori: longer than a detector's one- or two-frame flicker, much shorter than an incident
#: (a cyclist crossing a walkway takes several seconds). Not chosen on any test clip.
OBJECT_SIGMA_S = 0.5
#: Part of the ``--cache-dir`` key: bump when object measuring changes without new params.
OBJECTS_CODE = 2

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


class Method(StrEnum):
    """Which anomaly model scores the frames."""

    OBJECTS = "objects"  # per-object kNN normality (crowdsight.analytics.object_anomaly)
    CELLS = "cells"  # per-cell motion baseline (crowdsight.analytics.anomaly)


class Baseline(StrEnum):
    """Where the per-cell normal-motion baseline comes from."""

    CAMERA = "camera"  # all evaluated clips together (label-free, same camera)
    CLIP = "clip"  # each clip on its own
    TRAIN = "train"  # --train-frames (normal footage)
    ONLINE = "online"  # live mode: causal, warm-up then gated self-learning, no smoothing


def list_clips(frames: Path) -> list[tuple[str, list[Path]]]:
    """Sub-folders of ``frames`` (sorted) with their sorted image files."""
    if not frames.is_dir():
        raise InputError(f"frames folder not found: {frames}")
    clips = []
    for d in sorted(p for p in frames.iterdir() if p.is_dir()):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            clips.append((d.name, files))
    if not clips:
        raise InputError(f"no clip sub-folders with images in {frames}")
    return clips


def load_labels(path: Path, n_frames: int) -> np.ndarray:
    """0/1 labels of shape (N,) or (1, N); the first ``n_frames`` are used."""
    try:
        labels = np.asarray(np.load(path)).ravel()
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read labels {path}: {exc}") from None
    if len(labels) < n_frames:
        raise InputError(f"{path} has {len(labels)} labels but the clips have {n_frames} frames")
    return labels[:n_frames].astype(np.int64)


def online_scores(
    feats: list[np.ndarray], floor: float, warmup_s: float, fps: float
) -> list[np.ndarray]:
    """Causal scores of clips replayed in order as one stream (what a live camera gets)."""
    from crowdsight.analytics.anomaly import OnlineBaseline

    model = OnlineBaseline(floor_px_s=floor, warmup_s=warmup_s)
    out, t = [], 0.0
    for f in feats:
        scores = []
        for cells in f:
            scores.append(model.update(cells, t)[0])
            t += 1.0 / fps
        out.append(np.array(scores))
    return out


@eval_app.command("anomaly")
def eval_anomaly(
    frames: Annotated[Path, typer.Option(help="Folder with one sub-folder of frames per clip.")],
    labels: Annotated[
        Path, typer.Option(help=".npy of 0/1 frame labels for all clips concatenated.")
    ],
    train_frames: Annotated[
        Path | None,
        typer.Option(help="Folder of clips of normal footage: learn the baseline from it."),
    ] = None,
    baseline: Annotated[
        Baseline | None,
        typer.Option(
            help="camera | clip | train | online (default: train with --train-frames, else "
            "camera). 'online' replays the clips in order as one live stream, scored causally."
        ),
    ] = None,
    method: Annotated[
        Method, typer.Option(help="objects (per-object kNN normality) | cells (cell motion).")
    ] = Method.OBJECTS,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="objects: keep each clip's measured objects here and reuse them."),
    ] = None,
    warmup_s: Annotated[float, typer.Option(min=0, help="Warm-up of the online mode (s).")] = 10.0,
    work_width: Annotated[
        int, typer.Option(min=16, help="Downscaled width for optical flow.")
    ] = 180,
    cell_px: Annotated[int, typer.Option(min=1, help="Cell size at work width.")] = 15,
    floor: Annotated[float, typer.Option(min=0, help="Minimum per-cell spread (px/s).")] = 1.0,
    sigma: Annotated[
        float, typer.Option(min=0, help="Temporal Gaussian smoothing (frames).")
    ] = 3.0,
    fps: Annotated[float, typer.Option(min=0.1, help="Frame rate of the clips.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Score every frame and print the frame-level ROC AUC (percent), per clip and pooled.

    ``--method objects`` (default): each frame's score is its most abnormal object's (NanoDet
    detections plus undetected moving regions, scored by kNN distance to normal objects; see
    `crowdsight.analytics.object_anomaly`). The normal objects come from ``--train-frames``
    (standard protocol) or, with ``--baseline camera`` and no labels used, from the other
    evaluated clips (leave-one-clip-out). ``--method cells``: the largest per-cell robust
    z-score of optical-flow magnitude (`crowdsight.analytics.anomaly`).

    Scores are smoothed in time, then min-max normalised per clip before pooling (the usual
    Ped2/Avenue protocol); the AUC of the raw pooled scores and per clip are printed too.
    Every frame is scored (none skipped).
    """
    from crowdsight.analytics.anomaly import clip_features, fit_baseline, smooth_scores

    clips = list_clips(frames)
    mode = baseline or (Baseline.TRAIN if train_frames else Baseline.CAMERA)
    if mode is Baseline.TRAIN and train_frames is None:
        raise InputError("--baseline train needs --train-frames")
    n_frames = sum(len(f) for _, f in clips)
    y = load_labels(labels, n_frames)
    if method is Method.OBJECTS:
        if mode not in (Baseline.TRAIN, Baseline.CAMERA):
            raise InputError(f"--baseline {mode} needs --method cells (objects: train | camera)")
        raw = object_scores(
            clips, list_clips(train_frames) if train_frames else None, mode, fps, cache_dir
        )
        sigma = OBJECT_SIGMA_S * fps
        raw = [smooth_scores(r, sigma) for r in raw]
        report(raw, y, clips, mode, method, as_json, f"sigma={OBJECT_SIGMA_S} s")
        return

    feats = []
    for name, files in clips:
        console.print(f"clip {name}: {len(files)} frames")
        feats.append(clip_features(files, work_width, cell_px, fps))
    if mode is Baseline.ONLINE:
        raw = online_scores(feats, floor, warmup_s, fps)
        sigma = 0.0  # live scores are causal: no two-sided smoothing
    else:
        if mode is Baseline.TRAIN:
            assert train_frames is not None
            train = [
                clip_features(f, work_width, cell_px, fps) for _, f in list_clips(train_frames)
            ]
            bases = [fit_baseline(np.concatenate(train), floor)] * len(feats)
        elif mode is Baseline.CAMERA:
            bases = [fit_baseline(np.concatenate(feats), floor)] * len(feats)
        else:
            bases = [fit_baseline(f, floor) for f in feats]
        raw = [
            smooth_scores(np.array([b.score(c) for c in f]), sigma)
            for f, b in zip(feats, bases, strict=True)
        ]
    report(
        raw,
        y,
        clips,
        mode,
        method,
        as_json,
        f"floor={floor}, sigma={sigma}, work_width={work_width}, cell_px={cell_px}",
    )


def report(
    raw: list[np.ndarray],
    y: np.ndarray,
    clips: list[tuple[str, list[Path]]],
    mode: Baseline,
    method: Method,
    as_json: bool,
    settings: str,
) -> None:
    """Print pooled (per-clip min-max and raw) and per-clip AUCs; a JSON line last."""
    from crowdsight.analytics.anomaly import frame_auc, minmax

    auc_minmax = frame_auc(np.concatenate([minmax(r) for r in raw]), y)
    auc_raw = frame_auc(np.concatenate(raw), y)
    per_clip: dict[str, float | None] = {}
    start = 0
    for (name, _), r in zip(clips, raw, strict=True):
        yc = y[start : start + len(r)]
        start += len(r)
        both = 0 < int(yc.sum()) < len(yc)
        per_clip[name] = round(100 * frame_auc(r, yc), 2) if both else None
    used_training = mode is Baseline.TRAIN
    n_frames = len(y)
    console.print(
        f"method={method}, baseline={mode} (training frames used: "
        f"{'yes' if used_training else 'no'}), {settings}"
    )
    console.print(f"AUC (raw pooled scores): {100 * auc_raw:.1f}")
    console.print("AUC per clip: " + ", ".join(f"{k} {v}" for k, v in per_clip.items()))
    print(
        f"frame-level AUC {100 * auc_minmax:.1f} % (per-clip min-max normalised scores), "
        f"{n_frames} frames, {len(clips)} clips"
    )
    if as_json:
        print(
            json.dumps(
                {
                    "auc": round(100 * auc_minmax, 2),
                    "auc_raw": round(100 * auc_raw, 2),
                    "auc_per_clip": per_clip,
                    "frames": n_frames,
                    "clips": len(clips),
                    "normalisation": "per-clip min-max",
                    "method": str(method),
                    "baseline": str(mode),
                    "training_frames_used": used_training,
                }
            )
        )


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot read image {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def measure_clip(
    files: list[Path], detector: Detector, fps: float, params: ObjectAnomalyParams
) -> list[FrameObjects]:
    """Objects of every frame of one clip (detector boxes + undetected moving regions)."""
    from crowdsight.analytics.object_anomaly import clip_objects
    from crowdsight.core.types import Frame

    def frames() -> Iterator[tuple[np.ndarray, Detections]]:
        for i, p in enumerate(files):
            image = _read_rgb(p)
            yield image, detector.detect(Frame("eval", i, i / fps, image))

    return clip_objects(frames(), fps, params)


def _cache_key(files: list[Path], fps: float, params: ObjectAnomalyParams) -> str:
    from dataclasses import asdict

    from crowdsight.analytics.object_anomaly import MODEL_VERSION

    key = [asdict(params), fps, "nanodet", MODEL_VERSION, OBJECTS_CODE]
    h = hashlib.sha256(json.dumps(key).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def clips_objects(
    clips: list[tuple[str, list[Path]]],
    detector: Detector,
    fps: float,
    params: ObjectAnomalyParams,
    cache_dir: Path | None,
) -> list[list[FrameObjects]]:
    """`measure_clip` for each clip, reusing ``cache_dir`` entries of identical inputs."""
    from crowdsight.analytics.object_anomaly import load_clip_objects, save_clip_objects

    out = []
    for name, files in clips:
        cached = cache_dir / f"{_cache_key(files, fps, params)}.npz" if cache_dir else None
        if cached is not None and cached.is_file():
            out.append(load_clip_objects(cached))
            continue
        console.print(f"clip {name}: {len(files)} frames (detector + optical flow)")
        objs = measure_clip(files, detector, fps, params)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_clip_objects(cached, objs)
        out.append(objs)
    return out


def object_scores(
    clips: list[tuple[str, list[Path]]],
    train: list[tuple[str, list[Path]]] | None,
    mode: Baseline,
    fps: float,
    cache_dir: Path | None,
) -> list[np.ndarray]:
    """Raw (unsmoothed) per-frame scores of each clip by the object model.

    ``train`` mode fits one model on the training clips; ``camera`` mode scores each clip
    with a model fitted on the other evaluated clips (no labels, no training footage).
    """
    from crowdsight.analytics.object_anomaly import ObjectAnomalyParams, ObjectNormality
    from crowdsight.perception.detector import build_detector

    params = ObjectAnomalyParams()
    detector = build_detector("nanodet")
    test = clips_objects(clips, detector, fps, params, cache_dir)
    if mode is Baseline.TRAIN:
        assert train is not None
        model = ObjectNormality.fit(clips_objects(train, detector, fps, params, cache_dir), params)
        models = [model] * len(test)
    else:
        if len(test) < 2:
            raise InputError("--baseline camera with --method objects needs at least 2 clips")
        models = [
            ObjectNormality.fit([c for j, c in enumerate(test) if j != i], params)
            for i in range(len(test))
        ]
    return [
        np.array([m.score(f).frame_score for f in objs])
        for m, objs in zip(models, test, strict=True)
    ]
