"""Where the density model's scale constants come from, and how much the frame edges add.

    python benchmarks/density_scale.py [--data ../shared/data] [--step 20] [--part all]

``--part scale`` runs the bundled detector on Mall *training* frames 1–800 (every
``--step``-th) and prints the person-box height percentiles (the median is
`TARGET_PERSON_PX`, the 90th percentile `RELIABLE_HEIGHT_PX`) and the density MAE at input
scales 0.75 / 1 / 1.25 on the same frames (why scale 1 is Mall's right scale).

``--part edges`` prints the count that the outer ring of density cells (2 cells = 16 px on
every side) contributes, with zero-padded edges (``border_px=0``, the default) and
32 px mirrored borders (both without the noise floor), on blank frames (mean grey, black,
white at 640×480 and 1920×1080) and on the same Mall training frames, with the whole-frame
counts.

One JSON line per part. CPU-heavy (CSRNet): run with ``nice``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from crowdsight.core.types import Frame, ImageRGB
from crowdsight.datasets.counting import mall_points
from crowdsight.perception.density import DensityEstimator
from crowdsight.perception.detector import build_detector
from crowdsight.sources.files import read_image

RING = 2


def _ring(d: np.ndarray) -> float:
    inner = d[RING:-RING, RING:-RING].sum(dtype=np.float64)
    return float(d.sum(dtype=np.float64) - inner)


def _mall(data: Path, step: int) -> tuple[list[ImageRGB], list[int]]:
    gt = mall_points(data / "mall" / "mall_gt.mat")
    idx = list(range(1, 801, step))
    imgs = [read_image(data / "mall" / "frames" / f"seq_{i:06d}.jpg") for i in idx]
    return imgs, [len(gt[i - 1]) for i in idx]


def part_scale(imgs: list[ImageRGB], gts: list[int]) -> dict[str, object]:
    det = build_detector("ssdlite", conf_threshold=0.4)
    est = DensityEstimator(floor=0.0)
    heights: list[float] = []
    for img in imgs:
        xyxy = det.detect(Frame("mall", 0, 0.0, img)).xyxy
        heights += list(xyxy[:, 3] - xyxy[:, 1])
    mae = {}
    for s in (0.75, 1.0, 1.25):
        err = []
        for img, g in zip(imgs, gts, strict=True):
            im = img if s == 1 else cv2.resize(img, None, fx=s, fy=s)
            err.append(abs(est.estimate(im).count - g))
        mae[str(s)] = round(float(np.mean(err)), 3)
    h = np.array(heights)
    return {
        "part": "scale",
        "frames": len(imgs),
        "boxes": len(h),
        "height_px_p10_p50_p90": [round(float(np.percentile(h, q)), 1) for q in (10, 50, 90)],
        "mall_train_mae_by_scale": mae,
    }


def part_edges(imgs: list[ImageRGB], gts: list[int]) -> dict[str, object]:
    out: dict[str, object] = {"part": "edges", "ring_cells": RING}
    blanks = {
        f"{name}_{w}x{h}": np.full((h, w, 3), v, np.uint8)
        for name, v in (("grey", (124, 116, 104)), ("black", (0, 0, 0)), ("white", (255,) * 3))
        for w, h in ((640, 480), (1920, 1080))
    }
    for border in (0, 32):
        est = DensityEstimator(border_px=border, floor=0.0)
        res: dict[str, object] = {}
        for name, img in blanks.items():
            d = est.estimate(img).density
            res[name] = {"total": round(float(d.sum()), 2), "ring": round(_ring(d), 2)}
        ring, total = [], []
        for img in imgs:
            d = est.estimate(img).density
            ring.append(_ring(d))
            total.append(float(d.sum()))
        res["mall_train"] = {
            "mean_ring": round(float(np.mean(ring)), 2),
            "mean_total": round(float(np.mean(total)), 2),
            "mae": round(float(np.mean(np.abs(np.array(total) - np.array(gts)))), 3),
        }
        out[f"border_{border}"] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--step", type=int, default=20)
    ap.add_argument("--part", choices=("all", "scale", "edges"), default="all")
    args = ap.parse_args()
    imgs, gts = _mall(args.data, args.step)
    if args.part in ("all", "edges"):
        print(json.dumps(part_edges(imgs, gts)), flush=True)
    if args.part in ("all", "scale"):
        print(json.dumps(part_scale(imgs, gts)), flush=True)


if __name__ == "__main__":
    main()
