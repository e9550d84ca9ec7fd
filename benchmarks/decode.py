"""JPEG frame decode speed: crowdsight's ``read_image`` against plain OpenCV.

    python benchmarks/decode.py [--frames ../shared/data/mall/frames] [--n 300] [--repeats 3]

Prints one JSON line: ms/frame for ``cv2.imdecode`` + BGR→RGB (what ``read_image`` did
before) and for ``read_image`` (libjpeg-turbo through simplejpeg for plain JPEGs), both
from bytes already in memory so disk speed does not enter, plus whether the pixels are
identical. Figures are per CPU; run on an otherwise idle machine.
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

from crowdsight.sources.files import IMAGE_EXTS, decode_plain_jpeg


def _opencv(data: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _best_ms(fn: object, blobs: list[np.ndarray], repeats: int) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for b in blobs:
            fn(b)
        best = min(best, (time.perf_counter() - t0) / len(blobs) * 1000)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=Path, default=Path("../shared/data/mall/frames"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    files = sorted(p for p in args.frames.iterdir() if p.suffix.lower() in IMAGE_EXTS)[: args.n]
    if not files:
        raise SystemExit(f"{args.frames}: no image files")
    blobs = [np.fromfile(str(p), dtype=np.uint8) for p in files]
    fast = [decode_plain_jpeg(b) for b in blobs[:20]]
    identical = all(
        f is not None and np.array_equal(f, _opencv(b))
        for f, b in zip(fast, blobs[:20], strict=True)
    )
    h, w = _opencv(blobs[0]).shape[:2]
    opencv_ms = _best_ms(_opencv, blobs, args.repeats)
    fast_ms = _best_ms(decode_plain_jpeg, blobs, args.repeats)
    print(
        json.dumps(
            {
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "frames": len(blobs),
                "resolution": f"{w}x{h}",
                "opencv_ms": round(opencv_ms, 3),
                "read_image_ms": round(fast_ms, 3),
                "speedup": round(opencv_ms / fast_ms, 2),
                "pixels_identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
