"""Offline post-processing of a whole recording's tracks: starts, gaps, joins, smoothing.

A live tracker must answer on every frame with what it knows so far. Over a recording
(``crowdsight analyze``, ``crowdsight eval tracking``) the whole future is known, so
published post-processing steps can repair what the online pass had to leave out:

* **Tentative starts.** A new track gets its id only after
  ``minimum_consecutive_frames`` matches, so online output never shows its first box(es).
  Once the track is confirmed, those boxes were the same person: they get the id too.
  Tracks that never got confirmed (one-frame false alarms) stay dropped.
* **Tracklet linking** (mode ``"link"``; StrongSORT++'s AFLink idea, Du et al., IEEE TMM
  2023, without its learned model): a track that ends is joined to a track that starts
  shortly after (0 < gap ≤ 1 s: AFLink's ``thrT = (0, 30)`` frames at 30 fps) when the
  later one begins where the earlier one, moving on at its last velocity, would have got
  to, within a walker's reach (`link_tracklets`). All candidate pairs are assigned at
  once, one-to-one (Hungarian), so two crossing people are not both given the same
  predecessor. Detections alone (``eval tracking``) are linked on motion only; with the
  frames, clothing colours must agree too.
* **Linear gap filling** (ByteTrack's post-processing, Zhang et al., ECCV 2022,
  ``tools/interpolation.py``; MMTracking's ByteTrack config uses the same values): when a
  track missed frames between two sightings less than ``max_gap_s`` apart, each missed
  frame gets the box linearly interpolated between the sightings. ByteTrack fills gaps
  shorter than 20 frames at MOT17's 30 fps, i.e. 2/3 s (`MAX_GAP_S`), only on tracks
  seen more than 5 frames (1/6 s, `MIN_TRACK_S`); both are taken over in seconds, not
  fitted here. A person is rarely far from the straight line between two sightings 2/3 s
  apart; longer gaps (someone turning behind a pillar) are left open. At Mall's 2 fps one
  missed frame is already a 1 s gap, so there only tentative starts change. The gap
  across a join is filled whatever its length (it is now inside one track).
* **Gaussian smoothing** (mode ``"gsi"``: linking, filling, then StrongSORT's GSI): each
  track's box coordinates over time are replaced by a Gaussian-process fit with an RBF
  kernel whose length scale follows StrongSORT's rule with ``tau`` = 10 frames at 30 fps
  (`smooth_tracks`). It smooths the jitter of detector boxes; opt-in (its cost grows with
  the cube of a track's length).

Measured (reported, not used to choose anything; the default ``"link"`` was fixed on Mall
training frames 1-800 first): MOT15 TUD-Stadtmitte with SORT's detections,
``crowdsight eval tracking``, online → ``linear`` → ``link`` (→ ``gsi``): MOTA 70.85 →
73.18 → 77.42 (78.89), IDF1 76.11 → 75.81 → 82.57 (83.68); every 5th frame MOTA 64.38 →
68.24 → 72.10 (73.82), IDF1 66.17 → 67.15 → 62.76 (63.23): at 5 fps one of the three
joins was wrong. Mall frames 801-1200 at 2 fps with frames (``benchmarks/tracker_mall.py``):
see `RECORDING_MODE`.

Every step needs the future, so none runs in the live service: only on finished
recordings. ``crowdsight analyze`` keeps to gap-filling counts (`GapLedger`, no boxes
kept); linking and smoothing need every box of the run (`TrackRecorder`).

Example:
    >>> recorder = TrackRecorder()
    >>> tracker = Tracker(keep_unconfirmed=True)  # doctest: +SKIP
    >>> for i, (dets, ts) in enumerate(frames):  # doctest: +SKIP
    ...     recorder.add(i, ts, tracker.update(dets, ts), tracker.last_track_keys)
    >>> rows = recorder.rows("link")  # doctest: +SKIP
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from crowdsight.core.types import Detections
from crowdsight.tracking.appearance import colour_signatures, signature_distance

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Offline post-processing modes, each adding to the one before: ``"none"`` (exactly the
#: online tracker's output), ``"linear"`` (tentative starts + ByteTrack's linear gap
#: filling), ``"link"`` (+ tracklet linking, whose join gaps are filled too) and ``"gsi"``
#: (+ StrongSORT's Gaussian smoothing of every track).
OfflineMode = Literal["none", "linear", "link", "gsi"]
OFFLINE_MODES: tuple[str, ...] = get_args(OfflineMode)
#: What a finished recording gets by default (``crowdsight eval tracking``): ``"link"``.
#: Chosen on Mall training frames 1-800 before any run on the test sequence: against
#: ``"linear"`` it kept head coverage, lengthened tracks and cut ids per person-minute
#: without more implausible jumps (`benchmarks/tracker_mall.py`). ``"gsi"`` stays opt-in.
#: Held out, Mall 801-1200 with frames, ``linear`` → ``link``: head coverage 0.719 →
#: 0.719, mean track 8.41 → 8.59 s, tracks per person-minute 5.90 → 5.78, jumps per 100
#: steps 0.19 → 0.19 (13 joins; motion only, without the colour gate: 83 joins, 9.71 s).
RECORDING_MODE: OfflineMode = "link"
#: Longest time between two sightings of a track that gets filled (exclusive): ByteTrack's
#: ``n_dti`` of 20 frames at MOT17's 30 fps.
MAX_GAP_S = 20.0 / 30.0
#: Only tracks seen over more than this (first to last sighting) are filled: ByteTrack's
#: ``n_min`` of 5 frames at 30 fps (its script's and MMTracking's value).
MIN_TRACK_S = 5.0 / 30.0
#: Longest time from a track's last sighting to another's first that linking bridges
#: (inclusive): StrongSORT's AFLink ``thrT = (0, 30)`` frames at MOT17's 30 fps.
LINK_MAX_GAP_S = 30.0 / 30.0
#: Walking-speed bound, in box heights per second: a brisk walk of 2 m/s by a person
#: about 1.7 m tall (a priori). It bounds both the velocity a track is extrapolated with
#: and how far a walker can end up from that extrapolation (turning, stopping) in a gap.
LINK_SPEED_HEIGHTS_PER_S = 2.0 / 1.7
#: Position noise allowed at a join, in box heights, on top of the speed term: a quarter
#: of a person's height (~0.4 m, a shoulder width), what a detector's box centre jitters
#: by when a person is half hidden (a priori).
LINK_NOISE_HEIGHTS = 0.25
#: Largest ratio between the heights of the last box of one track and the first of the
#: next (a priori: over at most a second a person's box does not change height by half,
#: unless an occluder cuts it, when the boxes are not the same shape either).
LINK_MAX_HEIGHT_RATIO = 1.5
#: A track's end velocity is the least-squares slope of its box centres over its last
#: this many seconds (a priori: as long as the longest gap it is extrapolated over).
LINK_VELOCITY_WINDOW_S = 1.0
#: With the frames (``TrackRecorder.add(image=…)``), a join also needs the clothing colours
#: (`crowdsight.tracking.appearance`) of A's last and B's first sightings within this
#: distance: the tracker's own rule for taking back a box after a miss of up to 1 s
#: (``RESCUE_DISTANCE``, the 5th percentile of distances between neighbouring different
#: people on Mall training frames 1-800). Without it, on those frames about half of a
#: sample of 16 joins looked like two different people (`/tmp/i13/mall_joins_sheet.png`):
#: the online tracker had already bridged the gaps whose colours agreed.
LINK_MAX_COLOUR_DISTANCE = 0.041
#: Sightings whose signatures are averaged at each end of a track.
_SIGNATURE_SIGHTINGS = 3
#: StrongSORT's GSI ``tau``: 10 frames at 30 fps; the RBF length scale is
#: ``clip(tau · ln(tau³ / n), 1 / tau, tau²)`` frames for a track of n frames.
GSI_TAU_FRAMES = 10.0
GSI_FRAME_RATE = 30.0


@dataclass(frozen=True, slots=True)
class TrackRows:
    """Tracked boxes of a recording, one row per (frame, track), sorted by frame then id.

    Attributes:
        frame: Index of the processed frame (the caller's numbering).
        ts_s: Frame timestamp in seconds.
        tracker_id: Confirmed track id (>= 1).
        xyxy: Boxes, N×4 pixels.
        confidence: Detector score (interpolated for filled rows).
        source: How the row came about: 0 the online tracker reported it, 1 a tentative
            start given its id after confirmation, 2 filled by interpolation, 3 filled
            across a tracklet join.
        joins: How many tracklets linking joined to an earlier one.
    """

    frame: IntArray
    ts_s: FloatArray
    tracker_id: IntArray
    xyxy: FloatArray
    confidence: FloatArray
    source: npt.NDArray[np.int8]
    joins: int = 0

    ONLINE = 0
    TENTATIVE = 1
    FILLED = 2
    BRIDGED = 3

    def __len__(self) -> int:
        return len(self.frame)

    def counts(self) -> dict[str, int]:
        """Rows by source: ``{"online": …, "tentative": …, "filled": …, "bridged": …}``."""
        return {
            "online": int((self.source == self.ONLINE).sum()),
            "tentative": int((self.source == self.TENTATIVE).sum()),
            "filled": int((self.source == self.FILLED).sum()),
            "bridged": int((self.source == self.BRIDGED).sum()),
        }


class TrackRecorder:
    """Collects a tracker's output over a recording for offline post-processing.

    Feed it every processed frame, including frames without detections (gap filling only
    fills frames that were processed). The tracker should run with
    ``keep_unconfirmed=True`` so tentative boxes reach the recorder; without them only
    gap filling applies. Given the frames, it also keeps the clothing-colour signatures of
    each track's first and last few sightings (two small vectors per track, no boxes or
    pixels), which linking then checks; they live only as long as the recorder.
    """

    def __init__(self) -> None:
        self._frames: list[int] = []
        self._frame_ts: list[float] = []
        self._rows: list[tuple[IntArray, IntArray, FloatArray, FloatArray]] = []
        self._row_frame: list[IntArray] = []
        self._key_to_id: dict[int, int] = {}
        self._first_sig: dict[int, list[FloatArray]] = {}
        self._last_sig: dict[int, deque[FloatArray]] = {}

    def add(
        self,
        frame: int,
        ts_s: float,
        tracked: Detections,
        keys: IntArray,
        image: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        """Record one processed frame.

        Args:
            frame: Frame index, increasing from call to call.
            ts_s: Its timestamp in seconds, non-decreasing.
            tracked: The tracker's output for the frame (``tracker_id`` -1: tentative).
            keys: ``Tracker.last_track_keys`` right after that update (one per row).
            image: The frame (H×W×3 RGB), when there is one: linking then also compares
                clothing colours at each join.
        """
        self._frames.append(frame)
        self._frame_ts.append(ts_s)
        n = len(tracked)
        if n == 0 or tracked.tracker_id is None:
            return
        ids = np.asarray(tracked.tracker_id, np.int64)
        keys = np.asarray(keys, np.int64)
        if len(keys) != n:
            raise ValueError(f"{len(keys)} track keys for {n} rows")
        on_track = (ids >= 0) | (keys >= 0)
        for k, i in zip(keys[ids >= 0].tolist(), ids[ids >= 0].tolist(), strict=True):
            if k >= 0:
                self._key_to_id[k] = i
        conf = np.ones(n) if tracked.confidence is None else np.asarray(tracked.confidence, float)
        self._rows.append(
            (
                ids[on_track],
                keys[on_track],
                np.asarray(tracked.xyxy, np.float64)[on_track],
                conf[on_track],
            )
        )
        self._row_frame.append(np.full(int(on_track.sum()), len(self._frames) - 1))
        if image is not None:
            sigs = colour_signatures(image, np.asarray(tracked.xyxy, np.float64)[keys >= 0])
            for k, sig in zip(keys[keys >= 0].tolist(), sigs, strict=True):
                if not sig.any():
                    continue
                first = self._first_sig.setdefault(k, [])
                if len(first) < _SIGNATURE_SIGHTINGS:
                    first.append(sig)
                self._last_sig.setdefault(k, deque(maxlen=_SIGNATURE_SIGHTINGS)).append(sig)

    def _signatures(self) -> dict[int, tuple[FloatArray, FloatArray]]:
        """Track id → (mean signature of its first sightings, of its last), unit length."""

        def mean(sigs: Sequence[FloatArray]) -> FloatArray:
            m = np.mean(sigs, axis=0)
            return np.asarray(m / max(float(np.linalg.norm(m)), 1e-12), np.float64)

        return {
            i: (mean(self._first_sig[k]), mean(self._last_sig[k]))
            for k, i in self._key_to_id.items()
            if k in self._first_sig
        }

    def rows(
        self,
        mode: OfflineMode = "linear",
        *,
        max_gap_s: float = MAX_GAP_S,
        min_track_s: float = MIN_TRACK_S,
    ) -> TrackRows:
        """Every confirmed track's boxes after post-processing ``mode``.

        Args:
            mode: ``"none"``: the online output as it was (tentative rows dropped);
                ``"linear"``: tentative starts + linear gap filling; ``"link"``: also
                tracklet linking (`link_tracklets`) before filling; ``"gsi"``: also
                Gaussian smoothing (`smooth_tracks`) after it.
            max_gap_s: Gaps between sightings shorter than this are filled.
            min_track_s: Tracks seen over at most this long are not filled.

        Returns:
            The rows, sorted by frame then tracker id.
        """
        if mode not in OFFLINE_MODES:
            raise ValueError(f"unknown offline mode {mode!r}; use one of {OFFLINE_MODES}")
        frame_ts = np.asarray(self._frame_ts, np.float64)
        frame_no = np.asarray(self._frames, np.int64)
        if not self._rows:
            none = np.zeros(0, np.int64)
            return TrackRows(
                none, np.zeros(0), none, np.zeros((0, 4)), np.zeros(0), none.astype(np.int8)
            )
        ids = np.concatenate([r[0] for r in self._rows])
        keys = np.concatenate([r[1] for r in self._rows])
        xyxy = np.concatenate([r[2] for r in self._rows])
        conf = np.concatenate([r[3] for r in self._rows])
        pos = np.concatenate(self._row_frame).astype(np.int64)  # position in frame list
        source = np.zeros(len(ids), np.int8)
        if mode == "none":
            keep = ids >= 0
        else:
            late = np.array([self._key_to_id.get(k, -1) for k in keys.tolist()], np.int64)
            tentative = (ids < 0) & (late >= 0)
            source[tentative] = TrackRows.TENTATIVE
            ids = np.where(ids >= 0, ids, late)
            keep = ids >= 0
        ids, xyxy, conf, pos, source = ids[keep], xyxy[keep], conf[keep], pos[keep], source[keep]
        joins: dict[int, int] = {}
        bridge = np.zeros(len(ids), bool)
        if mode in ("link", "gsi"):
            joins = link_tracklets(frame_ts[pos], ids, xyxy, colours=self._signatures())
            if joins:
                # A joined tracklet's first row starts a gap that is filled whatever its length.
                by_track = np.lexsort((pos, ids))
                first = by_track[np.r_[0, np.flatnonzero(np.diff(ids[by_track])) + 1]]
                bridge[first[np.isin(ids[first], list(joins))]] = True
                ids = relabel(ids, joins)
        if mode != "none":
            filled = fill_gaps(
                pos, frame_ts, ids, xyxy, conf, max_gap_s, min_track_s, bridge_start=bridge
            )
            pos = np.concatenate([pos, filled[0]])
            ids = np.concatenate([ids, filled[1]])
            xyxy = np.concatenate([xyxy, filled[2]])
            conf = np.concatenate([conf, filled[3]])
            source = np.concatenate([source, filled[4]])
        if mode == "gsi":
            xyxy = smooth_tracks(frame_ts[pos], ids, xyxy)
        order = np.lexsort((ids, pos))
        pos = pos[order]
        return TrackRows(
            frame=frame_no[pos],
            ts_s=frame_ts[pos],
            tracker_id=ids[order],
            xyxy=xyxy[order],
            confidence=conf[order],
            source=source[order],
            joins=len(joins),
        )


def fill_gaps(
    pos: IntArray,
    frame_ts: FloatArray,
    ids: IntArray,
    xyxy: FloatArray,
    conf: FloatArray,
    max_gap_s: float = MAX_GAP_S,
    min_track_s: float = MIN_TRACK_S,
    *,
    bridge_start: BoolArray | None = None,
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, npt.NDArray[np.int8]]:
    """Linearly interpolated boxes for the frames each track missed (ByteTrack's DTI).

    Args:
        pos: Position of each row's frame in ``frame_ts`` (the processed frames).
        frame_ts: Timestamp of every processed frame, non-decreasing.
        ids: Track id of each row (one row per track and frame).
        xyxy: Box of each row, N×4.
        conf: Score of each row.
        max_gap_s: A gap is filled only when its two sightings are less than this apart.
        min_track_s: Tracks whose sightings span at most this long are left as they are.
        bridge_start: Rows that begin a tracklet linking joined on: the gap before each
            is filled whatever its length and the track's span, its rows marked
            `TrackRows.BRIDGED`.

    Returns:
        (frame positions, ids, boxes, scores, sources) of the new rows only; each box (and
        score) is on the straight line between the sightings, weighted by time.
    """
    out_pos: list[IntArray] = []
    out_ids: list[IntArray] = []
    out_box: list[FloatArray] = []
    out_conf: list[FloatArray] = []
    out_source: list[npt.NDArray[np.int8]] = []
    bridged = np.zeros(len(ids), bool) if bridge_start is None else bridge_start
    for tid in np.unique(ids).tolist():
        sel = np.flatnonzero(ids == tid)
        sel = sel[np.argsort(pos[sel], kind="stable")]
        p = pos[sel]
        t = frame_ts[p]
        if len(sel) < 2:
            continue
        ordinary = (np.diff(t) < max_gap_s) & (t[-1] - t[0] > min_track_s)
        across = bridged[sel[1:]]
        for j in np.flatnonzero((np.diff(p) > 1) & (ordinary | across)).tolist():
            a, b = sel[j], sel[j + 1]
            between = np.arange(pos[a] + 1, pos[b], dtype=np.int64)
            span = frame_ts[pos[b]] - frame_ts[pos[a]]
            w = (frame_ts[between] - frame_ts[pos[a]]) / span if span > 0 else 0.0 * between
            out_pos.append(between)
            out_ids.append(np.full(len(between), tid, np.int64))
            out_box.append(xyxy[a] + w[:, None] * (xyxy[b] - xyxy[a]))
            out_conf.append(conf[a] + w * (conf[b] - conf[a]))
            kind = TrackRows.BRIDGED if across[j] else TrackRows.FILLED
            out_source.append(np.full(len(between), kind, np.int8))
    if not out_pos:
        none = np.zeros(0, np.int64)
        return none, none, np.zeros((0, 4)), np.zeros(0), none.astype(np.int8)
    return (
        np.concatenate(out_pos),
        np.concatenate(out_ids),
        np.concatenate(out_box),
        np.concatenate(out_conf),
        np.concatenate(out_source),
    )


def link_tracklets(
    ts_s: FloatArray,
    ids: IntArray,
    xyxy: FloatArray,
    *,
    max_gap_s: float = LINK_MAX_GAP_S,
    speed_heights_per_s: float = LINK_SPEED_HEIGHTS_PER_S,
    noise_heights: float = LINK_NOISE_HEIGHTS,
    max_height_ratio: float = LINK_MAX_HEIGHT_RATIO,
    velocity_window_s: float = LINK_VELOCITY_WINDOW_S,
    colours: Mapping[int, tuple[FloatArray, FloatArray]] | None = None,
    max_colour_distance: float = LINK_MAX_COLOUR_DISTANCE,
) -> dict[int, int]:
    """Which tracklets continue which: appearance-free offline linking (AFLink's idea).

    A track A that ends and a track B that starts after it are one person when B's first
    box is where A, moving on at its end velocity (capped at walking speed), would be:

    * time gap ``0 < dt ≤ max_gap_s`` from A's last sighting to B's first (so the two
      never overlap in time);
    * B's first box centre within ``h · (noise_heights + speed_heights_per_s · dt)`` (h
      the mean of the two boxes' heights) of the extrapolated position (the walker may
      have stopped, turned or sped up within the gap) AND of A's last box centre (a
      walker's reach in that time). Without the second gate, on Mall training frames
      1-800 (`benchmarks/tracker_mall.py`) 5 of 183 joins were implausible jumps
      (extrapolated velocity plus allowance came to twice walking speed); with it 163
      joins and no more jumps than without linking;
    * box heights within ``max_height_ratio`` of each other;
    * where both have clothing-colour signatures (``colours``), A's last and B's first
      within ``max_colour_distance`` (detections without frames: no colour gate).

    Pairs passing the gates are assigned one-to-one by the Hungarian method on the
    distance over its allowance (each connected group of candidates on its own, so the
    cost stays small on long recordings); every track gets at most one predecessor and
    one successor, so joins form chains.

    Args:
        ts_s: Timestamp of each row.
        ids: Track id of each row (one row per track and timestamp).
        xyxy: Box of each row, N×4 pixels.
        max_gap_s: Longest gap bridged (inclusive).
        speed_heights_per_s: Walking-speed bound in box heights per second: caps the
            extrapolation velocity and sets how far the walker may stray in the gap.
            Larger joins more (and more wrongly: two people crossing paths).
        noise_heights: Position slack at any gap, in box heights.
        max_height_ratio: Largest ratio of the two boxes' heights.
        velocity_window_s: The end velocity is fitted over A's last this many seconds.
        colours: Track id → (signature of its first sightings, of its last), from
            `crowdsight.tracking.appearance`; tracks missing here are not colour-gated.
        max_colour_distance: Largest colour distance of a join.

    Returns:
        ``{later id: earlier id}`` for every join (apply with `relabel`).

    Example:
        >>> ts = np.array([0.0, 0.1, 0.5, 0.6])
        >>> boxes = np.array([[0, 0, 40, 100], [5, 0, 45, 100], [25, 0, 65, 100], [30, 0, 70, 100]])
        >>> link_tracklets(ts, np.array([1, 1, 2, 2]), boxes.astype(float))
        {2: 1}
    """
    if len(ids) == 0:
        return {}
    tracks, inverse = np.unique(ids, return_inverse=True)
    order = np.lexsort((ts_s, inverse))
    t, inv, box = ts_s[order], inverse[order], xyxy[order]
    starts = np.searchsorted(inv, np.arange(len(tracks)))
    ends = np.append(starts[1:], len(inv)) - 1
    centre = (box[:, :2] + box[:, 2:]) / 2.0
    height = np.maximum(box[:, 3] - box[:, 1], 1e-6)
    t0, t1 = t[starts], t[ends]
    velocity = np.zeros((len(tracks), 2))
    for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        recent = np.arange(a, b + 1)[t[a : b + 1] >= t[b] - velocity_window_s]
        dt = t[recent] - t[recent].mean()
        if len(recent) >= 2 and (dt**2).sum() > 0:
            v = (dt[:, None] * (centre[recent] - centre[recent].mean(0))).sum(0) / (dt**2).sum()
            cap = speed_heights_per_s * height[b]
            velocity[k] = v * min(1.0, cap / max(float(np.hypot(*v)), 1e-9))
    # Candidate pairs (ending track i, starting track j): starts within the gap window.
    by_start = np.argsort(t0, kind="stable")
    lo = np.searchsorted(t0[by_start], t1, side="right")
    hi = np.searchsorted(t0[by_start], t1 + max_gap_s, side="right")
    count = hi - lo
    i = np.repeat(np.arange(len(tracks)), count)
    skip = np.repeat(np.cumsum(count) - count - lo, count)  # run k: lo[k], …, hi[k]-1
    j = by_start[np.arange(int(count.sum())) - skip].astype(np.int64)
    gap = t0[j] - t1[i]
    h_end, h_start = height[ends[i]], height[starts[j]]
    h = (h_end + h_start) / 2.0
    predicted = centre[ends[i]] + velocity[i] * gap[:, None]
    dist = np.hypot(*(centre[starts[j]] - predicted).T)
    allowance = h * (noise_heights + speed_heights_per_s * gap)
    ratio = np.maximum(h_end, h_start) / np.minimum(h_end, h_start)
    reach = np.hypot(*(centre[starts[j]] - centre[ends[i]]).T)
    ok = (gap > 0) & (dist <= allowance) & (reach <= allowance) & (ratio <= max_height_ratio)
    i, j, cost = i[ok], j[ok], (dist / allowance)[ok]
    if colours and len(i):
        empty = np.zeros(0)
        end = [colours.get(int(tracks[k]), (empty, empty))[1] for k in i.tolist()]
        start = [colours.get(int(tracks[k]), (empty, empty))[0] for k in j.tolist()]
        near = np.array(
            [
                not (len(a) and len(b))
                or float(signature_distance(a[None], b[None])[0, 0]) <= max_colour_distance
                for a, b in zip(end, start, strict=True)
            ],
            bool,
        )
        i, j, cost = i[near], j[near], cost[near]
    if not len(i):
        return {}
    n = len(tracks)
    graph = coo_matrix((np.ones(len(i)), (i, n + j)), shape=(2 * n, 2 * n))
    _, group = connected_components(graph, directed=False)
    joins: dict[int, int] = {}
    infeasible = 1e6  # above any sum of feasible costs (each ≤ 1)
    for g in np.unique(group[i]).tolist():
        sel = np.flatnonzero(group[i] == g)
        rows, r = np.unique(i[sel], return_inverse=True)
        cols, c = np.unique(j[sel], return_inverse=True)
        matrix = np.full((len(rows), len(cols)), infeasible)
        matrix[r, c] = cost[sel]
        for a, b in zip(*linear_sum_assignment(matrix), strict=True):
            if matrix[a, b] < infeasible:
                joins[int(tracks[cols[b]])] = int(tracks[rows[a]])
    return joins


def relabel(ids: IntArray, joins: dict[int, int]) -> IntArray:
    """Track ids with every joined tracklet given the id its chain started with."""
    root: dict[int, int] = {}
    for later in joins:
        first = later
        while first in joins:
            first = joins[first]
        root[later] = first
    if not root:
        return ids.copy()
    later_ids = np.array(sorted(root), np.int64)
    at = np.clip(np.searchsorted(later_ids, ids), 0, len(later_ids) - 1)
    hit = later_ids[at] == ids
    return np.where(hit, np.array([root[k] for k in later_ids.tolist()], np.int64)[at], ids)


def smooth_tracks(ts_s: FloatArray, ids: IntArray, xyxy: FloatArray) -> FloatArray:
    """StrongSORT's Gaussian smoothing (GSI's second half) of every track's boxes.

    Each of a track's x, y, w, h over time is replaced by the mean of a Gaussian process
    (scikit-learn, RBF kernel with a fixed length scale, the regressor's default noise)
    fitted to it, as StrongSORT's ``GSI.py`` does. Its length scale
    ``clip(tau · ln(tau³ / n), 1 / tau, tau²)`` frames (tau = 10, n the track's rows,
    StrongSORT's rule at MOT17's 30 fps) is carried over in seconds: n counts the frames
    the track would have at 30 fps, and the scale is divided by 30. Long tracks get short
    scales (a long trajectory is trusted to bend), short ones long scales. The cost grows
    with the cube of a track's length (seconds of CPU for a track of several thousand
    rows): offline only.

    Args:
        ts_s: Timestamp of each row (filled rows included: smooth after filling).
        ids: Track id of each row.
        xyxy: Box of each row, N×4.

    Returns:
        The smoothed boxes, N×4, in the input row order.
    """
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF

    out = np.asarray(xyxy, np.float64).copy()
    tau = GSI_TAU_FRAMES
    for tid in np.unique(ids).tolist():
        sel = np.flatnonzero(ids == tid)
        if len(sel) < 3:
            continue
        t = ts_s[sel]
        n_frames = (t.max() - t.min()) * GSI_FRAME_RATE + 1.0
        scale = float(np.clip(tau * np.log(tau**3 / n_frames), 1.0 / tau, tau**2))
        gpr = GaussianProcessRegressor(RBF(scale / GSI_FRAME_RATE, "fixed"))
        box = out[sel]
        xywh = np.column_stack([box[:, :2], box[:, 2:] - box[:, :2]])
        fit = np.asarray(gpr.fit(t[:, None], xywh).predict(t[:, None]), np.float64)
        out[sel] = np.column_stack([fit[:, :2], fit[:, :2] + fit[:, 2:]])
    return out


class GapLedger:
    """Counts, per track, the frames `fill_gaps` would add, keeping no boxes.

    For long recordings whose per-track summary only needs how much gap filling adds
    (``crowdsight analyze``'s ``tracks.jsonl``): memory is one small record per track,
    whatever the length of the recording. Same rule as `fill_gaps`.

    Args:
        max_gap_s: A gap is filled only when its two sightings are less than this apart.
        min_track_s: Tracks whose sightings span at most this long are not filled.
    """

    def __init__(self, max_gap_s: float = MAX_GAP_S, min_track_s: float = MIN_TRACK_S) -> None:
        self.max_gap_s = max_gap_s
        self.min_track_s = min_track_s
        self._frames = 0
        # id → [first ts, last ts, last frame position, frames filled so far]
        self._tracks: dict[int, list[float]] = {}

    def add(self, ts_s: float, tracker_ids: Sequence[int]) -> None:
        """Record one processed frame and the confirmed ids seen in it (call every frame)."""
        pos = self._frames
        self._frames += 1
        for tid in set(tracker_ids):
            if tid < 0:
                continue
            t = self._tracks.get(tid)
            if t is None:
                self._tracks[tid] = [ts_s, ts_s, float(pos), 0.0]
                continue
            if pos - t[2] > 1 and ts_s - t[1] < self.max_gap_s:
                t[3] += pos - t[2] - 1
            t[1], t[2] = ts_s, float(pos)

    def filled(self, tracker_id: int) -> int:
        """Frames linear gap filling adds to ``tracker_id`` (0 for short or unknown tracks)."""
        t = self._tracks.get(tracker_id)
        if t is None or t[1] - t[0] <= self.min_track_s:
            return 0
        return int(t[3])
