"""Density (CSRNet, ONNX Runtime) speed: ms/frame at 640×480 and 1920×1080, peak RSS.

    python benchmarks/density.py [--repeats 3] [--threads N]

Prints one JSON line. Run on an otherwise idle machine; figures are per CPU/GPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from crowdsight.core.memory import peak_rss_mb
from crowdsight.perception.density import DensityEstimator


def ms_per_frame(est: DensityEstimator, w: int, h: int, repeats: int) -> float:
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    est.estimate(img)  # warm-up: allocations and kernel selection
    t0 = time.perf_counter()
    for _ in range(repeats):
        est.estimate(img)
    return (time.perf_counter() - t0) / repeats * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    est = DensityEstimator(threads=args.threads)
    out: dict[str, object] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "repeats": args.repeats,
    }
    for name, (w, h) in {"640x480": (640, 480), "1920x1080": (1920, 1080)}.items():
        out[f"ms_per_frame_{name}"] = round(ms_per_frame(est, w, h, args.repeats), 1)
        out[f"peak_rss_mb_after_{name}"] = round(peak_rss_mb(), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
