"""Picture: one minute of Mall trails with zone→zone flow arrows.

Uses the NanoDet detections cached by ``benchmarks/tracker_mall.py --detector nanodet``
(run it first), the tracker as the pipeline builds it for NanoDet (its score thresholds,
the frames for the colour cue) and the zones of ``examples/scenes/mall.yaml``; a trail is
the bottom-centre of a confirmed track's box, after the offline post-processing a
recording gets (`crowdsight.tracking.offline`; ``--online`` draws the live output). Usage::

    python benchmarks/tracker_mall.py --range 1-400 --detector nanodet
    python benchmarks/mall_trails.py --out /tmp/i13/mall_trails.png
"""

from __future__ import annotations

import argparse
import collections
import itertools
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import yaml

from crowdsight.core.types import Detections
from crowdsight.perception.nanodet import TRACK_THRESHOLDS
from crowdsight.sources.files import read_image
from crowdsight.tracking import make_tracker
from crowdsight.tracking.offline import OFFLINE_MODES, RECORDING_MODE, OfflineMode, TrackRecorder

FPS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path("/tmp/crowdsight-mall-nanodet-1-400.npz")
    )
    parser.add_argument("--first", type=int, default=1, help="First Mall frame (1-based).")
    parser.add_argument(
        "--before",
        action="store_true",
        help="The tracker as before issue 13's buffered rounds and colour rescue.",
    )
    parser.add_argument("--online", action="store_true", help="No offline post-processing.")
    parser.add_argument(
        "--offline", default=RECORDING_MODE, choices=OFFLINE_MODES, help="Post-processing."
    )
    parser.add_argument("--scene", type=Path, default=Path("examples/scenes/mall.yaml"))
    parser.add_argument("--frames", type=Path, default=Path("/work/shared/data/mall/frames"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/i13/mall_trails.png"))
    args = parser.parse_args()
    data = np.load(args.cache)
    scene = yaml.safe_load(args.scene.read_text())
    zones = {z["id"]: np.array(z["polygon"], np.int32) for z in scene["zones"]}
    tracker = make_tracker(frame_rate=FPS, score_thresholds=TRACK_THRESHOLDS)
    tracker.keep_unconfirmed = True
    recorder = TrackRecorder()
    if args.before:
        tracker.buffer_scales, tracker.rescue_distance = (), None
    trails: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    n = round(args.seconds * FPS)
    first = args.first - 1
    for i in range(first, first + n):
        b = data[str(i)]
        d = Detections(xyxy=b[:, :4].astype(np.float32), confidence=b[:, 4].astype(np.float32))
        image = read_image(args.frames / f"seq_{i + 1:06d}.jpg")
        out = tracker.update(d, ts_s=i / FPS, image=image)
        recorder.add(i, i / FPS, out, tracker.last_track_keys, image=image)
    mode = cast(OfflineMode, "none" if args.online else args.offline)
    rows = recorder.rows(mode)
    for (x1, _, x2, y2), t in zip(rows.xyxy.tolist(), rows.tracker_id.tolist(), strict=True):
        trails[t].append(((x1 + x2) / 2, y2))
    img = cv2.imread(str(args.frames / f"seq_{first + n:06d}.jpg"))
    img = (img * 0.6).astype(np.uint8)
    for zid, poly in zones.items():
        cv2.polylines(img, [poly], True, (255, 255, 0), 1)
        cv2.putText(img, zid, tuple(int(v) for v in poly.mean(0)), 0, 0.5, (255, 255, 0), 1)
    flows: collections.Counter[tuple[str, str]] = collections.Counter()
    rng = np.random.default_rng(0)
    for pts in trails.values():
        colour = tuple(int(c) for c in rng.integers(80, 255, 3))
        cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2)
        seq: list[str] = []
        for x, y in pts:
            inside = [k for k, p in zones.items() if cv2.pointPolygonTest(p, (x, y), False) >= 0]
            if inside and (not seq or seq[-1] != inside[0]):
                seq.append(inside[0])
        flows.update(itertools.pairwise(seq))
    centre = {k: p.mean(0) for k, p in zones.items()}
    for (a, c), count in flows.items():
        off = np.array([15, 0]) if a < c else np.array([-15, 0])
        pa, pc = (centre[a] + off).astype(int), (centre[c] + off).astype(int)
        cv2.arrowedLine(img, tuple(pa), tuple(pc), (0, 0, 255), 2 + count // 3, tipLength=0.08)
        label = (pa + (pc - pa) // 4 + off * 2).astype(int)  # near its own tail: no overlap
        cv2.putText(img, f"{a}->{c}: {count}", tuple(label), 0, 0.55, (0, 0, 255), 2)
    title = f"{args.seconds:.0f} s, {len(trails)} confirmed tracks ({mode}), flows {dict(flows)}"
    cv2.putText(img, title, (10, 20), 0, 0.45, (255, 255, 255), 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), img)
    print(f"{args.out}: {len(trails)} tracks, flows {dict(flows)}")


if __name__ == "__main__":
    main()
