"""Anomaly scoring speed per 640×480 frame: the object model (default) and the cell model.

    python benchmarks/anomaly.py [--train ../shared/data/ucsd_ped2_train/frames/01]
                                 [--frames ../shared/data/ucsd_ped2_test/frames/01] [--n 150]

Frames are Ped2 frames upscaled to 640×480 RGB (the size a typical camera delivers, not
Ped2's 360×240), decoded and resized before any clock starts. The object model
(`crowdsight.analytics.object_anomaly`) is learned from the normal training clip as
``crowdsight eval anomaly --train-frames`` does, then each test frame is timed in three parts:

* ``detector``: NanoDet on the frame (the live pipeline runs it anyway for tracking, so it is
  shared, not an anomaly cost);
* ``objects``: grey + resize to work width + Farnebäck flow + motion blobs + per-object
  velocity histograms (`ObjectMotion.update`);
* ``score``: kNN scoring of the frame's objects against the normal ones.

The cell model (`MotionNormality`, ``--method cells``) is timed on the same frames. Prints one
JSON line of mean and median ms/frame (best of ``--repeats`` passes). Figures are per CPU;
run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from crowdsight.analytics.anomaly import MotionNormality
from crowdsight.analytics.object_anomaly import ObjectMotion, ObjectNormality, clip_objects
from crowdsight.core.types import Frame
from crowdsight.perception.detector import build_detector
from crowdsight.sources.files import IMAGE_EXTS

FPS = 10.0


def _load(folder: Path, n: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)[:n]
    if not files:
        raise SystemExit(f"{folder}: no image files")
    out = []
    for p in files:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read image {p}")
        rgb = cv2.cvtColor(cv2.resize(bgr, (640, 480)), cv2.COLOR_BGR2RGB)
        out.append(np.ascontiguousarray(rgb, dtype=np.uint8))
    return out


def _stats(times: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(times)), 2), "median": round(float(np.median(times)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    data = Path("../shared/data")
    ap.add_argument("--train", type=Path, default=data / "ucsd_ped2_train/frames/01")
    ap.add_argument("--frames", type=Path, default=data / "ucsd_ped2_test/frames/01")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    detector = build_detector("nanodet")
    train = _load(args.train, args.n)
    frames = _load(args.frames, args.n)

    train_dets = [detector.detect(Frame("bench", i, i / FPS, im)) for i, im in enumerate(train)]
    model = ObjectNormality.fit([clip_objects(zip(train, train_dets, strict=True), FPS)])
    best: dict[str, list[float]] | None = None
    for _ in range(args.repeats):
        motion = ObjectMotion(model.params)
        t: dict[str, list[float]] = {"detector": [], "objects": [], "score": [], "n": []}
        for i, im in enumerate(frames):
            t0 = time.perf_counter()
            d = detector.detect(Frame("bench", i, i / FPS, im))
            t1 = time.perf_counter()
            objs = motion.update(im, i / FPS, d)
            t2 = time.perf_counter()
            if objs is not None:
                model.score(objs)
            t3 = time.perf_counter()
            t["detector"].append((t1 - t0) * 1000)
            if objs is not None:
                t["n"].append(len(objs))
                t["objects"].append((t2 - t1) * 1000)
                t["score"].append((t3 - t2) * 1000)
        if best is None or np.mean(t["objects"]) < np.mean(best["objects"]):
            best = t
    assert best is not None
    cells = MotionNormality()
    cells.fit(train, fps=FPS)
    cell_times = []
    for i, im in enumerate(frames):
        t0 = time.perf_counter()
        cells.update(im, i / FPS)
        cell_times.append((time.perf_counter() - t0) * 1000)
    anomaly = [a + b for a, b in zip(best["objects"], best["score"], strict=True)]
    print(
        json.dumps(
            {
                "frame_size": "640x480",
                "frames": len(frames),
                "objects_per_frame": round(float(np.mean(best["n"])), 1),
                "object_model_ms": _stats(anomaly),
                "object_model_parts_ms": {
                    "objects": _stats(best["objects"]),
                    "score": _stats(best["score"]),
                },
                "detector_ms_shared_with_pipeline": _stats(best["detector"]),
                "cell_model_ms": _stats(cell_times),
                "work_width": model.params.work_width,
                "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
