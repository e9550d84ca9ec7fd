"""ArrayByteTrack gives trackers.ByteTrackTracker's ids, frame by frame.

The array version exists for speed only; these tests run both on the same input and
compare which detection rows get which ids (trackers counts ids from 0, ours from 1).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from trackers import ByteTrackTracker

from crowdsight.tracking.bench import synthetic_frames
from crowdsight.tracking.bytetrack import ArrayByteTrack

PARAMS = {
    "lost_track_buffer": 30,
    "track_activation_threshold": 0.7,
    "high_conf_det_threshold": 0.6,
    "minimum_iou_threshold": 0.3,
    "minimum_consecutive_frames": 2,
}


def _reference(frames: list[tuple[float, np.ndarray, np.ndarray]], fps: float) -> list[tuple]:
    ref = ByteTrackTracker(frame_rate=fps, **PARAMS)
    out = []
    for ts, xyxy, conf in frames:
        d = sv.Detections(xyxy=xyxy, confidence=conf, data={"row": np.arange(len(xyxy))})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = ref.update(d, timestamp=ts)
        rows = got.data["row"] if len(got) else np.zeros(0, int)
        ids = {
            int(r): int(t) + 1 if t >= 0 else -1 for r, t in zip(rows, got.tracker_id, strict=True)
        }
        boxes = np.array([t.get_state_bbox() for t in ref.tracks]).reshape(-1, 4)
        out.append((ids, boxes))
    return out


def _ours(frames: list[tuple[float, np.ndarray, np.ndarray]], fps: float) -> list[tuple]:
    mine = ArrayByteTrack(
        frame_rate=fps,
        lost_track_buffer=PARAMS["lost_track_buffer"],
        track_activation_threshold=PARAMS["track_activation_threshold"],
        high_conf_det_threshold=PARAMS["high_conf_det_threshold"],
        minimum_iou_threshold=PARAMS["minimum_iou_threshold"],
        minimum_consecutive_frames=PARAMS["minimum_consecutive_frames"],
    )
    counter = [1]
    out = []
    for ts, xyxy, conf in frames:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows, ids = mine.update(xyxy.astype(np.float64), conf.astype(np.float64), ts, counter)
        out.append((dict(zip(rows.tolist(), ids.tolist(), strict=True)), mine.pos.copy()))
    return out


def _synthetic(
    n: int, frames: int, fps: float, seed: int
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out, ts = [], 0.0
    for i, d in enumerate(synthetic_frames(n, frames, seed=seed)):
        keep = rng.random(len(d)) > 0.15  # detector misses
        # Irregular time: jitter, dropped frames (gaps) and one duplicate timestamp.
        ts += (1.0 / fps) * (3.0 if i % 17 == 16 else 1.0) + rng.normal(0, 0.002)
        if i == 40:
            ts = out[-1][0]
        out.append((ts, d.xyxy[keep], np.asarray(d.confidence)[keep]))
    return out


@pytest.mark.parametrize(("n", "seed"), [(8, 0), (60, 1), (300, 2)])
def test_same_ids_as_trackers_on_synthetic_crowds(n: int, seed: int) -> None:
    frames = _synthetic(n, 80, 25.0, seed)
    ref, ours = _reference(frames, 25.0), _ours(frames, 25.0)
    assert sum(v >= 0 for f, _ in ref for v in f.values()) > n  # tracks were confirmed
    _assert_same(ours, ref)


def test_same_ids_as_trackers_on_tud_stadtmitte(shared_data: Path) -> None:
    from crowdsight.eval.mot import load_mot_txt

    seq = load_mot_txt(shared_data / "mot15_tud_gt_dets/TUD-Stadtmitte/det/det_sort_frcnn.txt")
    frames = []
    for number, frame in seq:
        d = frame.to_detections()
        conf = np.ones(len(d)) if d.confidence is None else np.asarray(d.confidence)
        frames.append(((number - 1) / 25.0, np.asarray(d.xyxy, np.float64), conf))
    ref, ours = _reference(frames, 25.0), _ours(frames, 25.0)
    assert sum(len(f) for f, _ in ref) > 500
    _assert_same(ours, ref)


def _assert_same(ours: list[tuple], ref: list[tuple]) -> None:
    assert len(ours) == len(ref)
    for i, ((ids, boxes), (ref_ids, ref_boxes)) in enumerate(zip(ours, ref, strict=True)):
        assert ids == ref_ids, f"frame {i}"
        # Same tracks, same Kalman states (to rounding), in the same order.
        np.testing.assert_allclose(boxes, ref_boxes, rtol=0, atol=1e-6, err_msg=f"frame {i}")
