"""Step invariants of the tracker, the track history, and the MOT scoring helpers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdsight.core.errors import InputError
from crowdsight.core.types import CLASS_NAME, Detections
from crowdsight.eval.mot import MotFrame, MotSequence, load_mot_txt, score_mot
from crowdsight.tracking import Tracker, TrackHistory
from crowdsight.tracking.bytetrack import ArrayByteTrack

FPS = 25.0


def dets(
    boxes: Sequence[Sequence[float]],
    classes: Sequence[int] | None = None,
    scores: Sequence[float] | None = None,
) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
        confidence=np.asarray(scores if scores is not None else [0.9] * n, dtype=np.float32),
        class_id=np.asarray(classes if classes is not None else [0] * n, dtype=int),
    )


def box(x: float, y: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [x, y, x + w, y + h]


def run(tracker: Tracker, frames: Sequence[Detections], t0: int = 0) -> list[Detections]:
    return [tracker.update(d, ts_s=(t0 + i) / FPS) for i, d in enumerate(frames)]


def only_id(d: Detections) -> int:
    assert d.tracker_id is not None and len(d) == 1
    return int(d.tracker_id[0])


def test_linear_motion_keeps_one_id() -> None:
    out = run(Tracker(), [dets([box(10 + 6 * i, 50 + 2 * i)]) for i in range(40)])
    ids = {only_id(d) for d in out[2:]}
    assert ids == {1}


def test_first_id_is_one_and_confirmation_delay() -> None:
    tracker = Tracker(minimum_consecutive_frames=2)
    first = tracker.update(dets([box(10, 10)]), ts_s=0.0)
    assert len(first) == 0  # not confirmed yet
    assert only_id(tracker.update(dets([box(12, 10)]), ts_s=1 / FPS)) == 1


def test_crossing_boxes_keep_distinct_ids() -> None:
    # Two people walking towards each other, one a little nearer the camera; they overlap
    # for several frames while passing.
    frames = [dets([box(20 + 8 * i, 100), box(420 - 8 * i, 130)]) for i in range(50)]
    out = run(Tracker(), frames)
    start, end = out[3], out[-1]
    assert start.tracker_id is not None and end.tracker_id is not None
    rightward_start = int(start.tracker_id[np.argmin(start.xyxy[:, 0])])
    rightward_end = int(end.tracker_id[np.argmax(end.xyxy[:, 0])])
    leftward_start = int(start.tracker_id[np.argmax(start.xyxy[:, 0])])
    leftward_end = int(end.tracker_id[np.argmin(end.xyxy[:, 0])])
    assert rightward_start == rightward_end
    assert leftward_start == leftward_end
    assert rightward_start != leftward_start
    for d in out[2:]:
        assert d.tracker_id is not None and len(set(d.tracker_id.tolist())) == len(d)


@pytest.mark.parametrize(
    ("gap_frames", "same_id"),
    [(3, True), (10, True), (20, False), (40, False)],
)
def test_lost_buffer_decides_whether_id_comes_back(gap_frames: int, same_id: bool) -> None:
    tracker = Tracker(lost_track_buffer_s=0.5)  # 12.5 frames at 25 fps
    before = run(tracker, [dets([box(100, 100)])] * 10)
    run(tracker, [dets([])] * gap_frames, t0=10)
    after = run(tracker, [dets([box(100, 100)])] * 3, t0=10 + gap_frames)
    old_id = only_id(before[-1])
    new_ids = {only_id(d) for d in after if len(d)}
    assert new_ids == ({old_id} if same_id else {old_id + 1})


def test_two_instances_have_independent_ids() -> None:
    a, b = Tracker(), Tracker()
    two = [dets([box(10 + 5 * i, 10), box(300, 10 + 5 * i)]) for i in range(5)]
    out_a = run(a, two)
    # Camera A sees a third person before camera B sees anyone.
    run(a, [dets([box(10, 10), box(300, 40), box(500, 300)])] * 3, t0=5)
    out_b = run(b, [dets([box(500, 300)])] * 3)
    assert out_a[-1].tracker_id is not None
    assert sorted(out_a[-1].tracker_id.tolist()) == [1, 2]
    assert only_id(out_b[-1]) == 1


def test_reset_restarts_ids() -> None:
    tracker = Tracker()
    run(tracker, [dets([box(10, 10), box(200, 10), box(400, 10)])] * 4)
    tracker.reset()
    out = run(tracker, [dets([box(50, 300)])] * 3)
    assert only_id(out[-1]) == 1


def test_input_is_not_mutated_and_rows_keep_input_order() -> None:
    d = dets([box(300, 10), box(10, 10), box(150, 10)], classes=[0, 2, 0])
    d.data[CLASS_NAME] = np.array(["person", "car", "person"])
    snapshot = (d.xyxy.copy(), d.confidence.copy(), d.class_id.copy(), d.data[CLASS_NAME].copy())  # type: ignore[union-attr]
    tracker = Tracker()
    tracker.update(d, ts_s=0.0)
    out = tracker.update(d, ts_s=1 / FPS)
    assert d.tracker_id is None
    np.testing.assert_array_equal(d.xyxy, snapshot[0])
    np.testing.assert_array_equal(d.confidence, snapshot[1])  # type: ignore[arg-type]
    np.testing.assert_array_equal(d.class_id, snapshot[2])  # type: ignore[arg-type]
    assert set(d.data) == {CLASS_NAME}
    np.testing.assert_array_equal(out.xyxy, d.xyxy)
    assert list(out.data[CLASS_NAME]) == ["person", "car", "person"]
    assert set(out.data) == {CLASS_NAME}


def test_classes_never_share_tracks() -> None:
    tracker = Tracker()
    # A person and a car at the same spot each get their own id.
    out = run(tracker, [dets([box(100, 100), box(100, 100)], classes=[0, 2])] * 3)
    assert out[-1].tracker_id is not None
    assert len(set(out[-1].tracker_id.tolist())) == 2
    # A person stands at A, then vanishes; a car appears exactly there within the lost
    # buffer. One shared tracker would hand the car the person's id.
    tracker.reset()
    person = run(tracker, [dets([box(200, 200)], classes=[0])] * 5)
    car = run(tracker, [dets([box(200, 200)], classes=[2])] * 4, t0=5)
    assert only_id(car[-1]) != only_id(person[-1])


def test_keep_unconfirmed_returns_every_row() -> None:
    tracker = Tracker(keep_unconfirmed=True, minimum_consecutive_frames=3)
    out = tracker.update(dets([box(10, 10), box(200, 10)]), ts_s=0.0)
    assert len(out) == 2 and out.tracker_id is not None
    assert out.tracker_id.tolist() == [-1, -1]


def test_empty_detections_give_empty_tracked() -> None:
    out = Tracker().update(Detections.empty(), ts_s=0.0)
    assert len(out) == 0 and out.tracker_id is not None


def test_low_score_box_continues_but_never_starts_a_track() -> None:
    tracker = Tracker(track_activation_threshold=0.7, high_conf_det_threshold=0.6)
    # Weak boxes alone never create a track ...
    out = run(tracker, [dets([box(10, 10)], scores=[0.3])] * 5)
    assert all(len(d) == 0 for d in out)
    # ... but keep an existing one alive through a low-confidence stretch (occlusion).
    out = run(tracker, [dets([box(300, 10 + i)], scores=[0.9]) for i in range(5)], t0=5)
    tid = only_id(out[-1])
    out = run(tracker, [dets([box(300, 15 + i)], scores=[0.3]) for i in range(5)], t0=10)
    assert {only_id(d) for d in out} == {tid}


def test_history_is_bounded_keyed_and_forgets() -> None:
    history = TrackHistory(max_points=5, forget_after_s=1.0)
    for i in range(10):
        d = dets([box(10 * i, 0, 10, 10), box(0, 10 * i, 10, 10)])
        d.tracker_id = np.array([7, 9])
        history.update(d, ts_s=i * 0.1)
    trail = history.trail(7)
    assert trail is not None and len(trail) == 5
    np.testing.assert_allclose(trail.points_xy[-1], [95.0, 5.0])
    assert np.all(np.diff(trail.ts_s) > 0)
    assert history.trail(3) is None and 9 in history
    # Only track 9 keeps coming; 7 is forgotten once it is older than forget_after_s.
    for i in range(10, 25):
        d = dets([box(0, 10 * i, 10, 10)])
        d.tracker_id = np.array([9])
        history.update(d, ts_s=i * 0.1)
    assert history.tracker_ids() == [9]
    history.reset()
    assert len(history) == 0


def _seq(rows: list[tuple[int, int, float, float]]) -> MotSequence:
    """(frame, id, x, y) rows of 20×50 boxes."""
    frames: dict[int, MotFrame] = {}
    for number in sorted({r[0] for r in rows}):
        sel = [r for r in rows if r[0] == number]
        frames[number] = MotFrame(
            ids=np.array([r[1] for r in sel], dtype=np.int64),
            xywh=np.array([[r[2], r[3], 20.0, 50.0] for r in sel]),
            scores=np.ones(len(sel)),
        )
    return MotSequence(frames, max(frames))


GT_ROWS = [(f, i, 30.0 * i + f, 10.0) for f in range(1, 11) for i in (1, 2)]


def test_score_perfect_and_switched_ids() -> None:
    gt = _seq(GT_ROWS)
    perfect = score_mot(gt, _seq([(f, i + 10, x, y) for f, i, x, y in GT_ROWS]))
    assert (perfect.mota, perfect.idf1, perfect.id_switches) == (100.0, 100.0, 0)
    assert perfect.hota > 99.0
    # Track 1's id changes half-way: one switch, MOTA = 1 - 1/20.
    switched = [(f, (i + 10 if f <= 5 or i == 2 else 99), x, y) for f, i, x, y in GT_ROWS]
    s = score_mot(gt, _seq(switched))
    assert s.id_switches == 1
    assert s.mota == pytest.approx(95.0)
    assert s.idf1 < perfect.idf1


def test_score_counts_misses_and_false_alarms() -> None:
    gt = _seq(GT_ROWS)
    res = [(f, i, x, y) for f, i, x, y in GT_ROWS if i == 1] + [(1, 5, 400.0, 400.0)]
    s = score_mot(gt, _seq(res))
    assert (s.false_negatives, s.false_positives) == (10, 1)
    assert s.mota == pytest.approx(100.0 * (1 - 11 / 20))


def test_load_mot_txt_reads_and_rejects(tmp_path: Path) -> None:
    good = tmp_path / "gt.txt"
    good.write_text(
        "1,1,10,20,30,40,1,-1,-1,-1\n2,1,12,20,30,40,1,-1,-1,-1\n3,2,1,2,3,4,1,-1,-1,-1\n"
    )
    seq = load_mot_txt(good)
    assert seq.num_frames == 3 and len(seq.frame(2)) == 1
    np.testing.assert_array_equal(seq.frame(1).xywh[0], [10, 20, 30, 40])
    bad = tmp_path / "bad.txt"
    bad.write_text("not,a,mot,file\n")
    for path in (bad, tmp_path / "missing.txt"):
        with pytest.raises(InputError):
            load_mot_txt(path)


def test_cli_needs_exactly_one_input(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,20,30,40,1,-1,-1,-1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "crowdsight", "eval", "tracking", "--gt", str(gt)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--detections" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("recovery_iou", "same_id"), [(0.3, True), (None, False)])
def test_observation_centric_recovery_finds_a_stopped_walker(
    recovery_iou: float | None, same_id: bool
) -> None:
    """Walk right 8 px/frame, vanish 6 frames while stopping, reappear where last seen.

    The coasting prediction has drifted ~48 px (IoU with the real box < 0.3); only the
    match on the last observed box (OC-SORT's OCR) gives the id back.
    """
    tracker = Tracker(frame_rate=FPS, recovery_iou=recovery_iou)
    walk = [dets([box(100 + 8 * i, 50)]) for i in range(12)]
    gap = [dets([]) for _ in range(6)]
    back = [dets([box(100 + 8 * 11, 50)]) for _ in range(3)]
    out = run(tracker, walk + gap + back)
    first, last = out[11].tracker_id, out[-1].tracker_id
    assert first is not None and last is not None and len(last) == 1
    assert bool(first[0] == last[0]) is same_id


def test_observation_velocity_replaces_blind_coasting() -> None:
    """After a 4-frame miss, velocity = observed displacement / frames (OC-SORT ORU)."""
    inner = ArrayByteTrack(
        frame_rate=FPS,
        lost_track_buffer=30,
        track_activation_threshold=0.5,
        high_conf_det_threshold=0.5,
        minimum_iou_threshold=0.1,
        minimum_consecutive_frames=1,
        observation_velocity=True,
    )
    counter = [1]
    still = np.asarray([box(100, 50)], np.float64)
    for i in range(3):
        inner.update(still, np.ones(1), i / FPS, counter)
    for i in range(3, 7):
        inner.update(np.zeros((0, 4)), np.zeros(0), i / FPS, counter)
    inner.update(still + np.array([20.0, 0.0, 20.0, 0.0]), np.ones(1), 7 / FPS, counter)
    assert inner.vel[0, 0] == pytest.approx(20.0 / 5.0)  # 5 frames since last seen
    assert inner.vel[0, 1] == pytest.approx(0.0)


def test_every_nth_keeps_frame_numbers() -> None:
    frame = MotFrame(np.array([1]), np.array([[0.0, 0.0, 10.0, 10.0]]), np.ones(1))
    seq = MotSequence({n: frame for n in range(1, 13)}, 12)
    assert sorted(seq.every_nth(5).frames) == [1, 6, 11]
    assert seq.every_nth(5).num_frames == 12
    with pytest.raises(InputError, match="stride"):
        seq.every_nth(0)


def test_default_lost_buffer_is_one_second_but_at_least_six_frames() -> None:
    assert Tracker(frame_rate=25.0).lost_track_buffer_s == pytest.approx(1.0)
    assert Tracker(frame_rate=2.0).lost_track_buffer_s == pytest.approx(3.0)
    assert Tracker(frame_rate=2.0, lost_track_buffer_s=0.5).lost_track_buffer_s == 0.5


def test_match_iou_is_looser_at_low_frame_rates() -> None:
    from crowdsight.tracking.tracker import LOW_FRAME_RATE

    assert Tracker(frame_rate=25.0).minimum_iou_threshold == 0.3
    assert Tracker(frame_rate=LOW_FRAME_RATE).minimum_iou_threshold == 0.3
    assert Tracker(frame_rate=2.0).minimum_iou_threshold == 0.1
    assert Tracker(frame_rate=2.0, minimum_iou_threshold=0.4).minimum_iou_threshold == 0.4


@pytest.mark.parametrize(("buffers", "kept"), [((0.3, 0.5), True), ((), False)])
def test_buffered_iou_keeps_a_walker_who_moves_a_body_width_per_frame(
    buffers: tuple[float, ...], kept: bool
) -> None:
    """At 2 fps someone who starts walking moves a body width between frames: IoU 0.

    C-BIoU's widened boxes (b = 0.5: twice the size, IoU 1/3 at a one-width shift) still
    overlap, so the id survives the start; plain IoU loses it (and, as every new box is
    a body width from the last, never confirms another).
    """
    tracker = Tracker(frame_rate=2.0, buffer_scales=buffers)
    frames = [dets([box(100, 50)]) for _ in range(3)]
    frames += [dets([box(140 + 40 * i, 50)]) for i in range(4)]
    out = [tracker.update(d, ts_s=i / 2.0) for i, d in enumerate(frames)]
    assert only_id(out[2]) == 1
    last = out[-1].tracker_id
    assert last is not None
    assert (last.tolist() == [1]) is kept


def _two_colour_frame(red_x: float, blue_x: float | None) -> np.ndarray:
    image = np.full((200, 400, 3), 128, np.uint8)
    image[50:150, int(red_x) : int(red_x) + 40] = (220, 20, 20)
    if blue_x is not None:
        image[50:150, int(blue_x) : int(blue_x) + 40] = (20, 20, 220)
    return image


@pytest.mark.parametrize(("gate", "takes_over"), [(None, True), (0.25, False)])
def test_colour_veto_stops_a_stranger_taking_a_lost_id(
    gate: float | None, takes_over: bool
) -> None:
    """A red-clad person stands, then is gone; a blue-clad one appears a body width away.

    The buffered round would hand the red track's id to the blue box; the colour
    signatures (upper/lower clothing histograms) are far apart, so the veto refuses it.
    """
    tracker = Tracker(frame_rate=2.0, max_appearance_distance=gate)
    for i in range(3):
        red = tracker.update(dets([box(100, 50)]), ts_s=i / 2.0, image=_two_colour_frame(100, None))
    blue = tracker.update(dets([box(140, 50)]), ts_s=1.5, image=_two_colour_frame(400, 140))
    blue = tracker.update(dets([box(140, 50)]), ts_s=2.0, image=_two_colour_frame(400, 140))
    assert red.tracker_id is not None and blue.tracker_id is not None and len(blue) == 1
    assert bool(blue.tracker_id[0] == red.tracker_id[0]) is takes_over


def test_colour_signatures_are_unit_rows_and_ignore_empty_boxes() -> None:
    from crowdsight.tracking.appearance import colour_signatures, signature_distance

    image = _two_colour_frame(100, 200)
    sig = colour_signatures(image, [box(100, 50), box(200, 50), box(100, 50), [5, 5, 5, 5]])
    assert np.linalg.norm(sig[:3], axis=1) == pytest.approx(1.0)
    assert not sig[3].any()  # a zero-width box has no colour
    dist = signature_distance(sig, sig)
    assert dist[0, 2] == pytest.approx(0.0, abs=1e-9)
    assert dist[0, 1] > 0.5  # red vs blue clothing
    assert dist[0, 3] == 0.0  # no cue never vetoes


def _shop_fronts(seed: int, h: int = 400, w: int = 800) -> np.ndarray:
    """A static scene with corners to follow: 150 flat-coloured rectangles."""
    rng = np.random.default_rng(seed)
    scene = np.full((h, w, 3), 90, np.uint8)
    for _ in range(150):
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        bw, bh = (int(v) for v in rng.integers(8, 40, 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(scene, (x, y), (x + bw, y + bh), colour, -1)
    return scene


def test_camera_motion_estimates_a_pan() -> None:
    from crowdsight.tracking.motion import CameraMotion

    scene = _shop_fronts(0)
    gmc = CameraMotion()
    assert np.allclose(gmc.estimate(scene[:, 100:600]), np.eye(2, 3))  # first frame
    warp = gmc.estimate(scene[:, 70:570])  # the camera panned left: content moves right
    assert warp[0, 2] == pytest.approx(30.0, abs=1.5)
    assert warp[1, 2] == pytest.approx(0.0, abs=1.5)
    assert warp[:, :2] == pytest.approx(np.eye(2), abs=0.02)


@pytest.mark.parametrize(("compensate", "same_id"), [(True, True), (False, False)])
def test_camera_motion_keeps_a_standing_person_through_a_fast_pan(
    compensate: bool, same_id: bool
) -> None:
    """The camera pans 60 px in one frame; a person standing still moves with the image."""
    scene = _shop_fronts(1, h=300)
    tracker = Tracker(
        frame_rate=2.0, camera_motion=compensate, buffer_scales=(), rescue_distance=None
    )
    for i in range(3):
        first = tracker.update(dets([box(300, 100)]), ts_s=i / 2.0, image=scene[:, 200:600])
    after = tracker.update(dets([box(360, 100)]), ts_s=1.5, image=scene[:, 140:540])
    after = tracker.update(dets([box(360, 100)]), ts_s=2.0, image=scene[:, 140:540])
    assert first.tracker_id is not None and after.tracker_id is not None
    assert bool(after.tracker_id.tolist() == first.tracker_id.tolist()) is same_id


def test_buffered_rounds_never_reach_the_person_standing_below() -> None:
    """Height modulation (Hybrid-SORT's HMIoU): a box stacked under a lost track's box
    (touching, no vertical overlap) is a different person, however wide the buffer."""
    tracker = Tracker(frame_rate=2.0, recovery_iou=None)
    for i in range(3):
        above = tracker.update(dets([box(100, 20)]), ts_s=i / 2.0)
    below = tracker.update(dets([box(100, 121)]), ts_s=1.5)
    below = tracker.update(dets([box(100, 121)]), ts_s=2.0)
    assert above.tracker_id is not None and below.tracker_id is not None
    assert below.tracker_id.tolist() != above.tracker_id.tolist()


@pytest.mark.parametrize(("colour", "rescued"), [("red", True), ("blue", False)])
def test_colour_rescue_links_a_lost_walker_only_in_the_same_clothes(
    colour: str, rescued: bool
) -> None:
    """Red walker is missed one frame, then seen two body widths on: no IoU, even
    buffered, reaches that far; the colour rescue does, but only for red clothes."""
    tracker = Tracker(frame_rate=2.0)
    for i in range(3):
        red = tracker.update(dets([box(100, 50)]), ts_s=i / 2.0, image=_two_colour_frame(100, None))
    tracker.update(dets([]), ts_s=1.5, image=_two_colour_frame(400, None))
    image = _two_colour_frame(180, None) if colour == "red" else _two_colour_frame(400, 180)
    back = tracker.update(dets([box(180, 50)]), ts_s=2.0, image=image)
    assert red.tracker_id is not None and back.tracker_id is not None
    assert (back.tracker_id.tolist() == red.tracker_id.tolist()) is rescued
