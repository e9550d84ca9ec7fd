"""Crowd-counting ground truth: ShanghaiTech, UCF (CC_50 / QNRF), Mall and MOTChallenge.

Each reader yields `CountingItem(image_path, gt_count, points)`; images are read later, one at
a time, so a long evaluation never holds the dataset in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.io as sio

from crowdsight.core.errors import InputError
from crowdsight.sources.files import IMAGE_EXTS


class CountingFormat(StrEnum):
    SHANGHAITECH = "shanghaitech"
    UCF = "ucf"
    MALL = "mall"
    MOT = "mot"


@dataclass(frozen=True)
class CountingItem:
    """One labelled image: head points (x, y) in pixels and their count."""

    image: Path
    points: npt.NDArray[np.float64]

    @property
    def gt(self) -> int:
        return int(self.points.shape[0])


def _loadmat(path: Path) -> dict[str, Any]:
    try:
        return dict(sio.loadmat(str(path)))
    except Exception as exc:  # scipy raises several unrelated types for bad files
        raise InputError(f"{path}: not a readable .mat file ({exc})") from exc


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise InputError(f"{folder}: holds no images")
    return files


def shanghaitech_points(mat: Path) -> npt.NDArray[np.float64]:
    """Head points of a ShanghaiTech ``GT_IMG_<n>.mat`` file."""
    m = _loadmat(mat)
    try:
        return np.asarray(m["image_info"][0, 0][0, 0][0], dtype=np.float64).reshape(-1, 2)
    except (KeyError, IndexError) as exc:
        raise InputError(f"{mat}: no ShanghaiTech 'image_info' points") from exc


def ucf_points(mat: Path) -> npt.NDArray[np.float64]:
    """Head points of a UCF_CC_50 / UCF-QNRF ``<name>_ann.mat`` file (``annPoints``)."""
    m = _loadmat(mat)
    if "annPoints" not in m:
        raise InputError(f"{mat}: no 'annPoints' array (UCF format)")
    return np.asarray(m["annPoints"], dtype=np.float64).reshape(-1, 2)


def iter_folder_items(images: Path, points: Path, fmt: CountingFormat) -> Iterator[CountingItem]:
    """Pairs of image and ground-truth file for ShanghaiTech or UCF layouts."""
    for img in _images(images):
        if fmt is CountingFormat.SHANGHAITECH:
            cands = [points / f"GT_{img.stem}.mat"]
            reader = shanghaitech_points
        else:
            cands = [points / f"{img.stem}_ann.mat", points / f"{img.stem}.mat"]
            reader = ucf_points
        gt = next((c for c in cands if c.exists()), None)
        if gt is None:
            raise InputError(
                f"no ground truth for {img.name} in {points} "
                f"(looked for {', '.join(c.name for c in cands)})"
            )
        yield CountingItem(img, reader(gt))


def parse_range(text: str | None, n: int) -> range:
    """'801-2000' (1-based, inclusive) → range(800, 2000); None → all n."""
    if not text:
        return range(n)
    try:
        a_s, b_s = text.split("-", 1)
        a, b = int(a_s), int(b_s)
    except ValueError as exc:
        raise InputError(f"--range must look like 801-2000, got {text!r}") from exc
    if not 1 <= a <= b <= n:
        raise InputError(f"--range {text} is outside 1-{n}")
    return range(a - 1, b)


def mall_points(mat: Path) -> list[npt.NDArray[np.float64]]:
    """Per-frame head points from Mall's ``mall_gt.mat`` (frame i ↔ list index i-1)."""
    m = _loadmat(mat)
    if "frame" not in m:
        raise InputError(f"{mat}: no 'frame' struct (Mall format)")
    frames = m["frame"]
    return [
        np.asarray(frames[0, i]["loc"][0, 0], dtype=np.float64).reshape(-1, 2)
        for i in range(frames.shape[1])
    ]


def iter_mall_items(images: Path, gt_mat: Path, rng: str | None) -> Iterator[CountingItem]:
    """Mall frames ``seq_%06d.jpg`` (1-based) with their head points, within ``rng``."""
    pts = mall_points(gt_mat)
    for i in parse_range(rng, len(pts)):
        img = images / f"seq_{i + 1:06d}.jpg"
        if not img.exists():
            raise InputError(f"{img}: missing Mall frame")
        yield CountingItem(img, pts[i])


#: MOTChallenge gt.txt columns: frame, id, x, y, w, h, flag (1: consider), class, visibility.
MOT_PEDESTRIAN = 1


def mot_points(gt_txt: Path) -> dict[int, npt.NDArray[np.float64]]:
    """Per-frame head points (box top centre) of the pedestrians to count in a MOT ``gt.txt``.

    Counted rows are class 1 (pedestrian) with flag 1 (to be considered), the rows
    MOTChallenge scores; static people, reflections and vehicles are not counted.
    """
    try:
        g = np.loadtxt(gt_txt, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(f"{gt_txt}: not a MOTChallenge gt.txt ({exc})") from exc
    if g.size and g.shape[1] < 8:
        raise InputError(f"{gt_txt}: needs ≥ 8 comma-separated columns (MOTChallenge gt.txt)")
    out: dict[int, npt.NDArray[np.float64]] = {}
    keep = g[(g[:, 6] == 1) & (g[:, 7] == MOT_PEDESTRIAN)] if g.size else g
    for f in np.unique(g[:, 0]).astype(int) if g.size else []:
        rows = keep[keep[:, 0] == f]
        out[int(f)] = np.stack([rows[:, 2] + rows[:, 4] / 2, rows[:, 3]], axis=1)
    return out


def _mot_sequences(images: Path) -> list[Path]:
    if (images / "img1").is_dir():
        return [images]
    seqs = sorted(p for p in images.iterdir() if (p / "img1").is_dir()) if images.is_dir() else []
    if not seqs:
        raise InputError(f"{images}: neither a MOT sequence (img1/) nor a folder of sequences")
    return seqs


def iter_mot_items(images: Path, points: Path | None) -> Iterator[CountingItem]:
    """Frames of one MOT sequence folder, or of every sequence in a folder, with head points.

    ``points`` is the sequence's ``gt.txt`` (default: ``<sequence>/gt/gt.txt``; give it only
    for a single sequence). Frames without a gt row count zero people.
    """
    seqs = _mot_sequences(images)
    if points is not None and len(seqs) > 1:
        raise InputError("--points names one gt.txt: give --images one MOT sequence folder")
    for seq in seqs:
        gt = points or seq / "gt" / "gt.txt"
        if not gt.exists():
            raise InputError(f"{gt}: no such file (MOT ground truth)")
        per_frame = mot_points(gt)
        for img in _images(seq / "img1"):
            if not img.stem.isdigit():
                raise InputError(f"{img}: MOT frames are named by number (000001.jpg)")
            pts = per_frame.get(int(img.stem), np.zeros((0, 2), np.float64))
            yield CountingItem(img, pts)


def iter_items(
    images: Path, points: Path | None, fmt: CountingFormat, rng: str | None = None
) -> list[CountingItem]:
    """All items of a dataset in one of the supported formats.

    ``points`` may be None only for MOT (each sequence's ``gt/gt.txt``).
    """
    if fmt is CountingFormat.MOT:
        mot = list(iter_mot_items(images, points))
        return [mot[i] for i in parse_range(rng, len(mot))]
    if points is None:
        raise InputError(f"--points is required for --format {fmt.value}")
    if not points.exists():
        raise InputError(f"{points}: no such file or folder")
    if fmt is CountingFormat.MALL:
        return list(iter_mall_items(images, points, rng))
    items = list(iter_folder_items(images, points, fmt))
    return [items[i] for i in parse_range(rng, len(items))] if rng else items
