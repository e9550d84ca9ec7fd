"""People detector (SSDLite, ONNX Runtime) speed: ms/frame at 640×480 and 1920×1080, peak RSS.

    python benchmarks/detector.py [--repeats 5] [--threads N] [--detector ssdlite|path.onnx]

Times the plain detector and sliced inference (tiles + full frame; only frames above
800×600 are tiled). Prints one JSON line. Use a real frame rather than noise so NMS sees a
realistic number of boxes: ``--image`` (default: a MOT17 frame from ../shared/data when
present, else random pixels). Figures depend on the CPU/GPU; run on an idle machine.
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

from crowdsight.core.memory import peak_rss_mb
from crowdsight.core.types import Frame
from crowdsight.perception.detector import Detector, build_detector
from crowdsight.perception.slicing import SliceSettings

DEFAULT_IMAGE = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/mot17_mini/MOT17-02-FRCNN/img1/000001.jpg"
)


def source_image(path: Path | None) -> np.ndarray:
    path = path or DEFAULT_IMAGE
    if path.exists():
        bgr = cv2.imread(str(path))
        if bgr is not None:
            return np.ascontiguousarray(bgr[:, :, ::-1])
    return np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)


def ms_per_frame(det: Detector, image: np.ndarray, repeats: int) -> tuple[float, int]:
    frame = Frame("bench", 0, 0.0, image)
    n = len(det.detect(frame))  # warm-up: allocations and kernel selection
    t0 = time.perf_counter()
    for _ in range(repeats):
        det.detect(frame)
    return (time.perf_counter() - t0) / repeats * 1000.0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--detector", default="ssdlite")
    ap.add_argument("--image", type=Path, default=None)
    args = ap.parse_args()
    src = source_image(args.image)
    out: dict[str, object] = {
        "detector": args.detector,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "repeats": args.repeats,
    }
    for mode, slicing in (("plain", None), ("sliced", SliceSettings())):
        det = build_detector(args.detector, threads=args.threads, slicing=slicing)
        for name, (w, h) in {"640x480": (640, 480), "1920x1080": (1920, 1080)}.items():
            image = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
            ms, n = ms_per_frame(det, image, args.repeats)
            out[f"{mode}_ms_per_frame_{name}"] = round(ms, 1)
            out[f"{mode}_detections_{name}"] = n
        out[f"peak_rss_mb_after_{mode}"] = round(peak_rss_mb(), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
