"""Tracker speed on synthetic scenes, shared by `benchmarks/tracker.py` and `crowdsight bench`.

Example:
    >>> round(tracker_ms_per_frame(50, 100), 1)  # doctest: +SKIP
    1.9
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import Detections
from crowdsight.tracking.offline import OfflineMode, TrackRecorder
from crowdsight.tracking.tracker import Tracker


def synthetic_frames(
    n_objects: int, n_frames: int, *, resolution_wh: tuple[int, int] = (1920, 1080), seed: int = 0
) -> list[Detections]:
    """People-sized boxes on a grid, each walking at its own constant velocity with jitter.

    Args:
        n_objects: Boxes per frame.
        n_frames: Frames to generate.
        resolution_wh: Image size the boxes wrap around in.
        seed: Random seed (the scene is deterministic for a given seed).

    Returns:
        One `Detections` per frame (class 0, scores 0.3-1.0 so both ByteTrack stages run).
    """
    rng = np.random.default_rng(seed)
    w, h = resolution_wh
    cols = int(np.ceil(np.sqrt(n_objects * w / h)))
    rows = int(np.ceil(n_objects / cols))
    gx, gy = np.meshgrid(np.arange(cols) * (w / cols), np.arange(rows) * (h / rows))
    start = np.stack([gx.ravel(), gy.ravel()], axis=1)[:n_objects]
    velocity = rng.uniform(-3.0, 3.0, size=(n_objects, 2))
    size = np.array([0.5 * w / cols, 0.8 * h / rows])
    frames: list[Detections] = []
    for t in range(n_frames):
        top_left: npt.NDArray[np.float64] = start + velocity * t
        top_left += rng.normal(0.0, 0.5, size=top_left.shape)
        top_left %= np.array([w, h], dtype=np.float64)
        xyxy = np.concatenate([top_left, top_left + size], axis=1).astype(np.float32)
        frames.append(
            Detections(
                xyxy=xyxy,
                confidence=rng.uniform(0.3, 1.0, n_objects).astype(np.float32),
                class_id=np.zeros(n_objects, dtype=int),
            )
        )
    return frames


def tracker_ms_per_frame(
    n_objects: int,
    n_frames: int,
    fps: float = 25.0,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Mean time of `Tracker.update` per frame on a synthetic scene, in milliseconds.

    Scene generation is excluded; the first frames (track creation) are included, as they
    are part of any real stream.

    Args:
        n_objects: Boxes per frame (e.g. 50 for a busy street, 500 for a dense crowd).
        n_frames: Frames to time (more gives a steadier mean).
        fps: Frame rate used for timestamps.
        clock: Wall time by default; ``time.process_time`` counts only this process's
            CPU time, steadier on a machine other jobs share.

    Returns:
        Milliseconds per frame.
    """
    frames = synthetic_frames(n_objects, n_frames)
    tracker = Tracker(frame_rate=fps)
    t0 = clock()
    for i, dets in enumerate(frames):
        tracker.update(dets, ts_s=i / fps)
    return (clock() - t0) / max(n_frames, 1) * 1000.0


def offline_ms_per_recording(
    n_objects: int,
    n_frames: int,
    modes: tuple[OfflineMode, ...] = ("linear", "link", "gsi"),
    fps: float = 25.0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Time of a recording's offline post-processing (`TrackRecorder.rows`) per mode, in ms.

    The tracker runs once over a synthetic scene (not timed); each mode then processes
    the whole recorded run. This cost is paid once per recording, never per live frame.

    Args:
        n_objects: Boxes per frame.
        n_frames: Frames in the recording.
        modes: Offline modes to time.
        fps: Frame rate used for timestamps.
        clock: Wall time by default.

    Returns:
        ``{mode: milliseconds for the whole recording}``.
    """
    tracker = Tracker(frame_rate=fps, keep_unconfirmed=True)
    recorder = TrackRecorder()
    for i, dets in enumerate(synthetic_frames(n_objects, n_frames)):
        recorder.add(i, i / fps, tracker.update(dets, ts_s=i / fps), tracker.last_track_keys)
    out: dict[str, float] = {}
    for mode in modes:
        t0 = clock()
        recorder.rows(mode)
        out[mode] = (clock() - t0) * 1000.0
    return out
