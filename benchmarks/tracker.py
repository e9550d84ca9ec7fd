"""Tracker (ByteTrack, crowdsight.tracking.Tracker) speed: ms/frame at 50 and 500 objects.

    python benchmarks/tracker.py [--frames 200]

Prints one JSON line: wall time and this process's CPU time per frame (the second is
steadier when other jobs share the machine), and the cost of a whole recording's offline
post-processing per mode at 500 objects (`crowdsight.tracking.offline`: paid once per
recording, not per live frame). Synthetic moving boxes
(crowdsight.tracking.bench.synthetic_frames);
run on an otherwise idle machine, figures are per CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from crowdsight.core.memory import peak_rss_mb
from crowdsight.tracking.bench import offline_ms_per_recording, tracker_ms_per_frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    out: dict[str, object] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "frames": args.frames,
    }
    for n in (50, 500):
        out[f"ms_per_frame_{n}_objects"] = round(tracker_ms_per_frame(n, args.frames), 2)
        cpu_ms = tracker_ms_per_frame(n, args.frames, clock=time.process_time)
        out[f"cpu_ms_per_frame_{n}_objects"] = round(cpu_ms, 2)
        out[f"peak_rss_mb_after_{n}"] = round(peak_rss_mb(), 1)
    for mode, ms in offline_ms_per_recording(500, args.frames).items():
        out[f"offline_{mode}_ms_per_recording_500_objects"] = round(ms, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
