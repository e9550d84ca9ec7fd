"""Crash recovery of the local runner: time to recover after ``kill -9``, events lost/duplicated.

    python benchmarks/recovery.py [--kills 3] [--frames 1500] [--fps 100]
                                  [--restart-initial-s 1.0] [--stuck-after-s 30]
                                  [--start-method spawn|forkserver]

One camera plays a synthetic video in real time through the model-free `TickPipeline` (its
events follow a fixed rule of the frame index, so the complete event stream is known) into a
real SQLite store. While it plays, its worker is killed with SIGKILL ``--kills`` times. For
each kill the script measures

- ``detect_s``: kill → the runner has noticed the death (state ``restarting``);
- ``recovery_s``: kill → the new worker's first committed report (state ``running``),
  which includes the restart back-off (``--restart-initial-s``, doubling per crash within
  a minute) and the new process's start-up (interpreter + imports, spawn start method).

At the end the stored events are compared with an uninterrupted in-process run of the same
source: ``events_lost`` (expected ids missing), ``events_duplicated`` (extra rows, or two
rows for one frame's event). Prints one JSON line (last line of stdout); progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np

from crowdsight.config.runner import RunnerSettings
from crowdsight.core.events import Event, OpenEvents
from crowdsight.pipeline.runner import LocalRunner
from crowdsight.pipeline.worker import CameraWorker, WorkerReport, WorkerSpec
from crowdsight.store import Store
from crowdsight.store.records import Camera

TICK = "crowdsight.pipeline.worker:tick_pipeline"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_video(path: Path, n: int, fps: int) -> Path:
    """A small synthetic MPEG-4 video (frame i has brightness i mod 256)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuv420p"
        for i in range(n):
            img = np.full((72, 96, 3), i % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def wait_until(runner: LocalRunner, pred: Any, timeout_s: float = 120.0) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        st = runner.cameras_status().get("cam", {})
        if st and pred(st):
            return st
        time.sleep(0.005)
    raise TimeoutError("camera did not reach the expected state")


def reference_ids(video: Path, salt: str) -> list[Event]:
    """Events of an uninterrupted in-process run (same ids as the runner's worker)."""
    spec = WorkerSpec(
        "cam",
        str(video),
        loop=False,
        realtime=False,
        pipeline_factory=TICK,
        id_salt=salt,
        jpeg_every_s=0,
        snapshots=False,
    )
    reports: list[WorkerReport] = []
    CameraWorker(spec, reports.append, threading.Event()).run()
    ledger = OpenEvents(spec.camera_id, spec.id_salt)  # as the runner gives stable ids
    return [
        e
        for r in reports
        if r.events and r.last_index is not None
        for e in ledger.assign(r.events, r.last_index)
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="crowdsight-recovery-"))
    video = write_video(tmp / "cam.mp4", args.frames, args.fps)
    store = Store(f"sqlite:///{tmp / 'crowdsight.db'}")
    store.migrate()
    settings = RunnerSettings(
        pipeline_factory=TICK,
        realtime=True,
        drop_late=False,  # every frame processed, so the event stream is exactly known
        jpeg_every_s=0,
        snapshots=False,
        restart_initial_s=args.restart_initial_s,
        stuck_after_s=args.stuck_after_s,
        start_method=args.start_method,
    )
    runner = LocalRunner(store, settings)
    runner.start()
    kills: list[dict[str, float]] = []
    try:
        runner.add_camera(Camera(id="cam", name="cam", source=str(video), loop=False))
        for k in range(args.kills):
            target = (k + 1) * args.frames // (args.kills + 2)
            wait_until(runner, lambda st, t=target: (st.get("last_frame_index") or 0) >= t)
            t_kill = time.monotonic()
            pid = runner.kill_worker("cam")
            wait_until(runner, lambda st, k=k: st["restarts"] == k + 1)
            t_detect = time.monotonic()
            wait_until(runner, lambda st: st["state"] == "running" and runner.worker_pid("cam"))
            t_back = time.monotonic()
            kills.append(
                {"detect_s": round(t_detect - t_kill, 3), "recovery_s": round(t_back - t_kill, 3)}
            )
            log(f"kill {k + 1}: pid {pid}; {kills[-1]}")
        final = wait_until(runner, lambda st: st["state"] == "finished", 600)
    finally:
        runner.stop()

    expected = reference_ids(video, f"{runner.session}:1")
    expected_ids = {e.event_id for e in expected}
    stored = store.query_events(camera_id="cam", limit=1_000_000)
    store.close()
    stored_ids = [e.event_id for e in stored]
    per_frame = Counter((e.type, e.payload.get("frame_index")) for e in stored)
    duplicated = (len(stored_ids) - len(set(stored_ids))) + sum(
        c - 1 for c in per_frame.values() if c > 1
    )
    recov = [k["recovery_s"] for k in kills]
    return {
        "benchmark": "recovery",
        "kills": len(kills),
        "recovery_s": recov,
        "recovery_s_mean": round(statistics.fmean(recov), 3) if recov else None,
        "recovery_s_max": max(recov) if recov else None,
        "detect_s_max": max(k["detect_s"] for k in kills) if kills else None,
        "restart_initial_s": args.restart_initial_s,
        "start_method": args.start_method,
        "restarts": final["restarts"],
        "frames": args.frames,
        "frames_processed": (final["last_frame_index"] or 0) + 1,
        "events_expected": len(expected_ids),
        "events_stored": len(stored_ids),
        "events_lost": len(expected_ids - set(stored_ids)),
        "events_unexpected": len(set(stored_ids) - expected_ids),
        "events_duplicated": duplicated,
        "open_events_left": sum(1 for e in stored if e.end_ts_s is None),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs during the run")
    p.add_argument("--frames", type=int, default=1500, help="frames in the synthetic video")
    p.add_argument("--fps", type=int, default=100, help="its frame rate (played in real time)")
    p.add_argument(
        "--restart-initial-s", type=float, default=1.0, help="runner restart back-off (first)"
    )
    p.add_argument("--stuck-after-s", type=float, default=30.0, help="watchdog threshold")
    p.add_argument(
        "--start-method", choices=["spawn", "forkserver"], default="spawn", help="worker start"
    )
    print(json.dumps(run(p.parse_args())))


if __name__ == "__main__":
    main()
