"""Offline post-processing of recorded tracks: tentative starts, gap filling, linking, GSI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest

from crowdsight.core.types import Detections
from crowdsight.eval.mot import MotFrame, MotSequence, track_mot_detections
from crowdsight.tracking import Tracker
from crowdsight.tracking.bench import synthetic_frames
from crowdsight.tracking.offline import (
    MAX_GAP_S,
    GapLedger,
    TrackRecorder,
    TrackRows,
    fill_gaps,
    link_tracklets,
    relabel,
    smooth_tracks,
)

FPS = 25.0


def tracked(boxes: Sequence[Sequence[float]], ids: Sequence[int]) -> Detections:
    n = len(boxes)
    d = Detections(
        xyxy=np.asarray(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.zeros(n, int),
    )
    d.tracker_id = np.asarray(ids, np.int64)
    return d


def record(track: dict[int, list[float]], frames: int, fps: float = FPS) -> TrackRecorder:
    """One confirmed track (id 1, key 1) seen at the given frames; other frames empty."""
    rec = TrackRecorder()
    for i in range(frames):
        seen = i in track
        d = tracked([track[i]] if seen else [], [1] if seen else [])
        rec.add(i, i / fps, d, np.ones(len(d), np.int64))
    return rec


def test_short_gap_is_filled_exactly_linearly() -> None:
    # Seen on frames 0-9 and 15-20 (gap 0.24 s < 2/3 s), moving 4 px/frame, growing.
    track = {i: [4.0 * i, 10.0, 4.0 * i + 40 + i, 110.0] for i in [*range(10), *range(15, 21)]}
    rows = record(track, 21).rows("linear")
    assert rows.frame.tolist() == list(range(21))
    filled = rows.source == TrackRows.FILLED
    assert rows.frame[filled].tolist() == [10, 11, 12, 13, 14]
    expected = np.array([[4.0 * i, 10.0, 4.0 * i + 40 + i, 110.0] for i in range(10, 15)])
    np.testing.assert_allclose(rows.xyxy[filled], expected, atol=1e-4)
    assert set(rows.tracker_id.tolist()) == {1}
    assert rows.counts() == {"online": 16, "tentative": 0, "filled": 5, "bridged": 0}


def test_gap_at_or_above_the_maximum_is_left_open() -> None:
    gap = int(np.ceil(MAX_GAP_S * FPS))  # frames between sightings 9 and 26: 17 → 0.68 s
    track = {i: [float(i), 0.0, i + 40.0, 100.0] for i in [*range(10), *range(9 + gap, 30)]}
    rows = record(track, 30).rows("linear")
    assert rows.counts()["filled"] == 0
    # One frame less apart (0.64 s) is filled.
    track = {i: [float(i), 0.0, i + 40.0, 100.0] for i in [*range(10), *range(8 + gap, 30)]}
    assert record(track, 30).rows("linear").counts()["filled"] == gap - 2


def test_gap_filling_uses_time_not_frame_numbers() -> None:
    # At 2 fps one missed frame is already 1 s between sightings: nothing is filled.
    track = {i: [10.0 * i, 0.0, 10.0 * i + 40, 100.0] for i in [0, 1, 2, 4, 5, 6]}
    assert record(track, 7, fps=2.0).rows("linear").counts()["filled"] == 0
    assert record(track, 7, fps=25.0).rows("linear").counts()["filled"] == 1


def test_tracks_seen_too_briefly_are_not_filled() -> None:
    # Seen on frames 0 and 3 only (0.12 s span <= 1/6 s): left as it is.
    track = {0: [0.0, 0.0, 40.0, 100.0], 3: [6.0, 0.0, 46.0, 100.0]}
    assert record(track, 4).rows("linear").counts()["filled"] == 0


def test_fill_gaps_interpolates_by_timestamp() -> None:
    # Irregular frame times: the filled box sits where the time says, not mid-way.
    frame_ts = np.array([0.0, 0.1, 0.4, 0.5])
    pos = np.array([0, 3])
    boxes = np.array([[0.0, 0, 10, 10], [50.0, 0, 60, 10]])
    got_pos, got_ids, got_box, _, _ = fill_gaps(
        pos, frame_ts, np.array([7, 7]), boxes, np.array([0.5, 1.0]), min_track_s=0.0
    )
    assert got_pos.tolist() == [1, 2] and got_ids.tolist() == [7, 7]
    np.testing.assert_allclose(got_box[:, 0], [10.0, 40.0])


def test_confirmed_track_gets_its_tentative_first_box_and_false_alarms_stay_out() -> None:
    tracker = Tracker(frame_rate=FPS, keep_unconfirmed=True)
    rec = TrackRecorder()
    walker = [[5.0 * i, 0.0, 5.0 * i + 40, 100.0] for i in range(5)]
    for i, b in enumerate(walker):
        boxes = [b, [400.0, 0.0, 440.0, 100.0]] if i == 2 else [b]  # one-frame false alarm
        d = Detections(
            xyxy=np.asarray(boxes, np.float32),
            confidence=np.full(len(boxes), 0.9, np.float32),
            class_id=np.zeros(len(boxes), int),
        )
        out = tracker.update(d, ts_s=i / FPS)
        rec.add(i, i / FPS, out, tracker.last_track_keys)
    online = rec.rows("none")
    assert online.frame.tolist() == [1, 2, 3, 4]  # the first box waits for confirmation
    offline = rec.rows("linear")
    assert offline.frame.tolist() == [0, 1, 2, 3, 4]
    assert set(offline.tracker_id.tolist()) == {1}
    assert offline.source.tolist() == [TrackRows.TENTATIVE, 0, 0, 0, 0]
    np.testing.assert_allclose(offline.xyxy[0], walker[0])


def _as_mot(frames: list[Detections]) -> MotSequence:
    out = {}
    for number, d in enumerate(frames, start=1):
        xywh = np.asarray(d.xyxy, np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        out[number] = MotFrame(np.full(len(d), -1), xywh, np.asarray(d.confidence, float))
    return MotSequence(out, len(frames))


def test_mode_none_is_exactly_the_live_tracker_output() -> None:
    rng = np.random.default_rng(3)
    frames = []
    for d in synthetic_frames(40, 60, seed=3):
        keep = rng.random(len(d)) > 0.2  # detector misses make gaps and restarts
        frames.append(cast(Detections, d[keep]))
    seq = _as_mot(frames)
    live = Tracker(frame_rate=FPS)  # the live path: no keys, no recorder
    expected = [live.update(d, ts_s=i / FPS) for i, d in enumerate(frames)]
    got = track_mot_detections(seq, Tracker(frame_rate=FPS, keep_unconfirmed=True), fps=FPS)
    for number, d in enumerate(expected, start=1):
        fr = got.frame(number)
        assert d.tracker_id is not None
        order = np.argsort(d.tracker_id)
        assert fr.ids.tolist() == d.tracker_id[order].tolist()
        np.testing.assert_allclose(fr.xywh[:, :2], np.asarray(d.xyxy)[order, :2], atol=1e-3)
    linear = track_mot_detections(
        seq, Tracker(frame_rate=FPS, keep_unconfirmed=True), fps=FPS, offline="linear"
    )
    assert sum(len(f) for _, f in linear) > sum(len(f) for _, f in got)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown offline mode"):
        TrackRecorder().rows("smooth")  # type: ignore[arg-type]


def test_gap_ledger_counts_what_fill_gaps_adds() -> None:
    rng = np.random.default_rng(5)
    rec, ledger = TrackRecorder(), GapLedger()
    ts = 0.0
    for i in range(200):
        ts += (1.0 if i % 50 == 49 else 0.04) + rng.normal(0, 0.002)  # a few long gaps
        ids = [t for t in range(1, 9) if rng.random() > 0.3 or i < 3]  # many misses
        d = tracked([[10.0 * t, 0.0, 10.0 * t + 40, 100.0] for t in ids], ids)
        rec.add(i, ts, d, np.full(len(ids), -1, np.int64))
        ledger.add(ts, ids)
    rows = rec.rows("linear")
    filled = rows.tracker_id[rows.source == TrackRows.FILLED]
    assert len(filled) > 0
    for t in range(1, 9):
        assert ledger.filled(t) == int((filled == t).sum())
    assert ledger.filled(99) == 0


@pytest.mark.parametrize("mode", ["linear", "none"])
def test_analyze_tracks_jsonl_says_what_gap_filling_adds(tmp_path: Path, mode: str) -> None:
    from crowdsight.pipeline.analyze import TrackLog

    log = TrackLog(offline=mode)  # type: ignore[arg-type]
    seen = [*range(10), *range(13, 20)]  # 3 frames missed at 25 fps (0.16 s): filled
    for i in range(20):
        d = tracked(
            [[float(i), 0.0, i + 40.0, 100.0]] if i in seen else [], [4] if i in seen else []
        )
        log.update(SimpleNamespace(detections=d, frame=SimpleNamespace(index=i, ts_s=i / FPS)))  # type: ignore[arg-type]
    log.write(tmp_path / "tracks.jsonl", {})
    row = json.loads((tmp_path / "tracks.jsonl").read_text())
    assert row["frames"] == len(seen) and row["first_frame"] == 0 and row["last_frame"] == 19
    if mode == "linear":
        assert row["frames_filled"] == 3
    else:
        assert "frames_filled" not in row


# --- tracklet linking and Gaussian smoothing -------------------------------------------------


def walk(frames: Sequence[int], x0: float = 0.0, vx: float = 50.0, y: float = 100.0) -> np.ndarray:
    """Boxes (40×100 px) of someone walking right at ``vx`` px/s, at 25 fps."""
    x = x0 + vx * np.asarray(frames, float) / FPS
    return np.column_stack([x, np.full(len(x), y), x + 40.0, np.full(len(x), y + 100.0)])


def record_tracks(tracks: dict[int, dict[int, Sequence[float]]], frames: int) -> TrackRecorder:
    """Several confirmed tracks (key = id) at the given frames, every frame processed."""
    rec = TrackRecorder()
    for i in range(frames):
        here = [(tid, box[i]) for tid, box in sorted(tracks.items()) if i in box]
        d = tracked([b for _, b in here], [t for t, _ in here])
        rec.add(i, i / FPS, d, np.asarray([t for t, _ in here], np.int64))
    return rec


def test_two_halves_of_one_straight_walk_get_one_id_and_the_join_gap_is_filled() -> None:
    # Seen on frames 0-19 and 40-59: a 0.84 s miss, longer than gap filling alone bridges.
    first, second = range(20), range(40, 60)
    tracks = {
        1: dict(zip(first, walk(first).tolist(), strict=True)),
        2: dict(zip(second, walk(second).tolist(), strict=True)),
    }
    rec = record_tracks(tracks, 60)
    linear = rec.rows("linear")
    assert set(linear.tracker_id.tolist()) == {1, 2} and linear.joins == 0
    rows = rec.rows("link")
    assert set(rows.tracker_id.tolist()) == {1} and rows.joins == 1
    assert rows.frame.tolist() == list(range(60))
    bridged = rows.source == TrackRows.BRIDGED
    assert rows.frame[bridged].tolist() == list(range(20, 40))
    np.testing.assert_allclose(rows.xyxy[bridged], walk(range(20, 40)), atol=1e-3)


@pytest.mark.parametrize(
    ("offset_heights", "joined"),
    [(0.0, True), (0.5, True), (3.0, False)],  # allowance at 0.4 s: 0.25 + 1.18 · 0.4 = 0.72
)
def test_a_start_far_from_where_the_walk_would_have_got_is_not_joined(
    offset_heights: float, joined: bool
) -> None:
    ts = np.array([0.0, 0.2, 0.6, 0.8])
    boxes = np.vstack([walk([0, 5]), walk([15, 20], y=100.0 + 100.0 * offset_heights)])
    got = link_tracklets(ts, np.array([1, 1, 2, 2]), boxes)
    assert got == ({2: 1} if joined else {})


def test_very_different_box_heights_are_not_joined() -> None:
    ts = np.array([0.0, 0.2, 0.6, 0.8])
    boxes = walk([0, 5, 15, 20])
    boxes[2:, 1] = boxes[2:, 3] - 40.0  # the later box is 40 px tall, the earlier 100 px
    assert link_tracklets(ts, np.array([1, 1, 2, 2]), boxes) == {}


def test_two_crossing_candidates_are_assigned_one_to_one() -> None:
    # A walks right and B left; both end at 0.4 s and two tracks start at 0.8 s between
    # them, each within reach of both (allowance 0.72 box heights = 72 px). Each start gets
    # one predecessor, the one whose extrapolated position it is nearest (A → 3, B → 4).
    ts = np.array([0.0, 0.4, 0.0, 0.4, 0.8, 1.0, 0.8, 1.0])
    ids = np.array([1, 1, 2, 2, 3, 3, 4, 4])
    a = walk([0, 10], x0=90.0, vx=100.0)  # at 130 px at 0.4 s, heading for 170 at 0.8 s
    b = walk([0, 10], x0=310.0, vx=-100.0)  # at 270 px at 0.4 s, heading for 230
    c = walk([20, 25], x0=105.0, vx=100.0)  # starts at 185: 15 px from A's, 45 from B's
    d = walk([20, 25], x0=295.0, vx=-100.0)  # starts at 215: 45 px from A's, 15 from B's
    got = link_tracklets(ts, ids, np.vstack([a, b, c, d]))
    assert got == {3: 1, 4: 2}


def test_tracks_that_overlap_in_time_are_never_joined() -> None:
    # Track 2 starts (frame 18) before track 1's last sighting (frame 19), exactly on its path.
    first, second = range(20), range(18, 40)
    tracks = {
        1: dict(zip(first, walk(first).tolist(), strict=True)),
        2: dict(zip(second, walk(second, y=101.0).tolist(), strict=True)),
    }
    rows = record_tracks(tracks, 40).rows("link")
    assert set(rows.tracker_id.tolist()) == {1, 2} and rows.joins == 0


def test_joins_chain_into_the_first_id() -> None:
    parts = [range(0, 10), range(20, 30), range(40, 50)]
    tracks = {k + 1: dict(zip(p, walk(p).tolist(), strict=True)) for k, p in enumerate(parts)}
    rows = record_tracks(tracks, 50).rows("link")
    assert set(rows.tracker_id.tolist()) == {1} and rows.joins == 2
    assert relabel(np.array([3, 2, 1, 5]), {2: 1, 3: 2}).tolist() == [1, 1, 1, 5]


def test_gaussian_smoothing_removes_box_jitter_and_keeps_a_straight_walk() -> None:
    frames = range(100)
    true = walk(frames)
    noisy = true + np.random.default_rng(0).normal(0.0, 3.0, true.shape)
    ts, ids = np.asarray(frames, float) / FPS, np.ones(100, np.int64)
    smooth = smooth_tracks(ts, ids, noisy)
    inner = slice(10, 90)  # a Gaussian process is least sure at the ends
    error_before = np.abs(noisy - true)[inner].mean()
    error_after = np.abs(smooth - true)[inner].mean()
    assert error_after < 0.6 * error_before
    np.testing.assert_allclose(smooth_tracks(ts, ids, true)[inner], true[inner], atol=0.5)
    # The mode applies it after linking and filling: same rows, smoothed boxes.
    rec = record_tracks({1: dict(zip(frames, noisy.tolist(), strict=True))}, 100)
    gsi, link = rec.rows("gsi"), rec.rows("link")
    assert gsi.frame.tolist() == link.frame.tolist()
    assert np.abs(gsi.xyxy - true)[inner].mean() < np.abs(link.xyxy - true)[inner].mean()


@pytest.mark.parametrize(
    ("second_colour", "joined"), [((200, 30, 30), True), ((30, 30, 200), False)]
)
def test_with_frames_a_join_needs_matching_clothing_colours(
    second_colour: tuple[int, int, int], joined: bool
) -> None:
    # The walk of the first test, drawn: a red figure, then a red (same person) or a blue
    # one (someone else) where the first would have got to. Without frames both join.
    first, second = range(20), range(40, 60)
    boxes = {
        **dict(zip(first, walk(first), strict=True)),
        **dict(zip(second, walk(second), strict=True)),
    }
    rec, blind = TrackRecorder(), TrackRecorder()
    for i in range(60):
        image = np.full((300, 200, 3), 90, np.uint8)
        d = tracked([], [])
        if i in boxes:
            x1, y1, x2, y2 = boxes[i].astype(int)
            image[y1:y2, x1:x2] = (200, 30, 30) if i < 20 else second_colour
            d = tracked([boxes[i]], [1 if i < 20 else 2])
        keys = np.asarray([] if not len(d) else [1 if i < 20 else 2], np.int64)
        rec.add(i, i / FPS, d, keys, image=image)
        blind.add(i, i / FPS, d, keys)
    assert blind.rows("link").joins == 1
    rows = rec.rows("link")
    assert rows.joins == int(joined)
    assert set(rows.tracker_id.tolist()) == ({1} if joined else {1, 2})
