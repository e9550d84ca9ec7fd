"""Density peaks as people: choose the peak threshold on Mall training frames, then measure.

    python benchmarks/density_people.py --part choose   # Mall 1-800: F1 of peaks vs heads
    python benchmarks/density_people.py --part recall   # Mall 801-2000: head recall

``choose`` runs CSRNet on every ``--step``-th frame of Mall 1–800 (training frames), finds
density peaks for several mass thresholds and matches them one-to-one to annotated head
points within ``--radius`` pixels; it prints precision, recall and F1 per threshold and the
threshold with the best F1, next to the parameter-free rule crowdsight uses (the
``round(count)`` strongest peaks; see `crowdsight.perception.density_people`).
``recall`` prints the Mall head-point recall (801–2000) of the detector alone and of
detector + density peaks (`missed_people`), plus ms/frame of each step. Density maps are
cached in ``--cache``. Needs ../shared/data/mall and the installed models.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from crowdsight.cli.eval_detection import head_recall
from crowdsight.core.types import DensityMap
from crowdsight.datasets.counting import iter_mall_items
from crowdsight.perception.density import DensityEstimator
from crowdsight.perception.density_people import density_peaks, with_missed_people
from crowdsight.perception.detector import build_detector
from crowdsight.sources.files import read_image

MALL = Path(__file__).resolve().parents[1].parent / "shared/data/mall"
THRESHOLDS: tuple[float | None, ...] = (None, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)


def density_for(est: DensityEstimator, image_path: Path, cache: Path) -> DensityMap:
    f = cache / (image_path.stem + ".npy")
    if f.exists():
        d = np.load(f)
        img_hw = (480, 640)
        return DensityMap(d, (img_hw[1], img_hw[0]))
    dm = est.estimate(read_image(image_path))
    np.save(f, dm.density)
    return dm


def match(points: np.ndarray, heads: np.ndarray, radius: float) -> int:
    """One-to-one matches within ``radius`` (Hungarian on distances)."""
    if len(points) == 0 or len(heads) == 0:
        return 0
    dist = np.linalg.norm(points[:, None, :] - heads[None, :, :], axis=2)
    cost = np.where(dist <= radius, dist, 1e6)
    r, c = linear_sum_assignment(cost)
    return int((cost[r, c] < 1e6).sum())


def choose(args: argparse.Namespace) -> None:
    est = DensityEstimator()
    items = list(iter_mall_items(MALL / "frames", MALL / "mall_gt.mat", "1-800"))[:: args.step]
    tp = {t: 0 for t in THRESHOLDS}
    n_pred = {t: 0 for t in THRESHOLDS}
    n_gt = 0
    for item in items:
        dm = density_for(est, item.image, args.cache)
        n_gt += len(item.points)
        for t in THRESHOLDS:
            pts, _ = density_peaks(dm, t)
            n_pred[t] += len(pts)
            tp[t] += match(pts, np.asarray(item.points, np.float32), args.radius)
    rows = []
    for t in THRESHOLDS:
        p = tp[t] / max(n_pred[t], 1)
        r = tp[t] / max(n_gt, 1)
        f1 = 2 * p * r / max(p + r, 1e-9)
        rows.append(
            {"min_mass": t, "precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3)}
        )
        label = "round(count)" if t is None else f"{t:.2f}"
        print(f"min_mass {label}: precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")
    best = max(rows, key=lambda row: row["f1"])
    print(json.dumps({"frames": len(items), "heads": n_gt, "best": best, "rows": rows}))


def recall(args: argparse.Namespace) -> None:
    est = DensityEstimator()
    det = build_detector(args.detector, conf_threshold=args.conf)
    items = list(iter_mall_items(MALL / "frames", MALL / "mall_gt.mat", "801-2000"))[:: args.step]
    hit_d = hit_f = total = n_added = useful = 0
    t_det = t_peaks = 0.0
    for item in items:
        image = read_image(item.image)
        t0 = time.perf_counter()
        dets = det.detect_image(image)  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        dm = density_for(est, item.image, args.cache)
        t2 = time.perf_counter()
        fused = with_missed_people(dm, dets)
        t3 = time.perf_counter()
        t_det += t1 - t0
        t_peaks += t3 - t2
        h, n = head_recall(dets.xyxy.astype(np.float32), item.points)
        hf, _ = head_recall(fused.xyxy.astype(np.float32), item.points)
        hit_d, hit_f, total = hit_d + h, hit_f + hf, total + n
        added = fused.xyxy[len(dets) :].astype(np.float32)
        missed = _uncovered(dets.xyxy.astype(np.float32), np.asarray(item.points, np.float32))
        n_added += len(added)
        useful += sum(head_recall(box[None], missed)[0] > 0 for box in added)
    print(
        json.dumps(
            {
                "detector": args.detector,
                "frames": len(items),
                "head_recall_detector": round(hit_d / total, 4),
                "head_recall_with_density_peaks": round(hit_f / total, 4),
                "added_boxes_per_frame": round(n_added / len(items), 2),
                "added_boxes_on_a_missed_head": round(useful / max(n_added, 1), 4),
                "ms_detector": round(1000 * t_det / len(items), 1),
                "ms_peaks_to_boxes": round(1000 * t_peaks / len(items), 2),
            }
        )
    )


def _uncovered(xyxy: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Head points inside no box."""
    if len(xyxy) == 0 or len(points) == 0:
        return points
    px, py = points[:, 0:1], points[:, 1:2]
    inside = (px >= xyxy[:, 0]) & (px <= xyxy[:, 2]) & (py >= xyxy[:, 1]) & (py <= xyxy[:, 3])
    return points[~inside.any(axis=1)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=["choose", "recall"], default="choose")
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--radius", type=float, default=16.0)
    ap.add_argument("--detector", default="nanodet")
    ap.add_argument("--conf", type=float, default=0.35)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/crowdsight-mall-density"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    choose(args) if args.part == "choose" else recall(args)


if __name__ == "__main__":
    main()
