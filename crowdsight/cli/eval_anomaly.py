"""`crowdsight eval anomaly`: frame-level ROC AUC of the motion-normality score."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError

console = Console(stderr=True)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


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
    warmup_s: Annotated[float, typer.Option(help="Warm-up of the online mode (s).")] = 10.0,
    work_width: Annotated[int, typer.Option(help="Downscaled width for optical flow.")] = 180,
    cell_px: Annotated[int, typer.Option(help="Cell size at work width.")] = 15,
    floor: Annotated[float, typer.Option(help="Minimum per-cell spread (px/s).")] = 1.0,
    sigma: Annotated[float, typer.Option(help="Temporal Gaussian smoothing (frames).")] = 3.0,
    fps: Annotated[float, typer.Option(help="Frame rate of the clips.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Score every frame and print the frame-level ROC AUC (percent).

    The score is the largest per-cell robust z-score of optical-flow magnitude against a
    baseline of normal motion (see `crowdsight.analytics.anomaly`). Scores are smoothed in
    time, then min-max normalised per clip before pooling (the usual Ped2/Avenue protocol);
    the AUC of the raw pooled scores is printed too. Every frame is scored (none skipped).
    """
    from crowdsight.analytics.anomaly import (
        clip_features,
        fit_baseline,
        frame_auc,
        minmax,
        smooth_scores,
    )

    clips = list_clips(frames)
    mode = baseline or (Baseline.TRAIN if train_frames else Baseline.CAMERA)
    if mode is Baseline.TRAIN and train_frames is None:
        raise InputError("--baseline train needs --train-frames")
    n_frames = sum(len(f) for _, f in clips)
    y = load_labels(labels, n_frames)

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
    auc_minmax = frame_auc(np.concatenate([minmax(r) for r in raw]), y)
    auc_raw = frame_auc(np.concatenate(raw), y)
    used_training = mode is Baseline.TRAIN
    console.print(
        f"baseline={mode} (training frames used: {'yes' if used_training else 'no'}), "
        f"floor={floor}, sigma={sigma}, work_width={work_width}, cell_px={cell_px}"
    )
    console.print(f"AUC (raw pooled scores): {100 * auc_raw:.1f}")
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
                    "frames": n_frames,
                    "clips": len(clips),
                    "normalisation": "per-clip min-max",
                    "baseline": str(mode),
                    "training_frames_used": used_training,
                }
            )
        )
