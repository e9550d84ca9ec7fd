"""Offline post-processing of a whole recording's tracks: tentative starts and gap filling.

A live tracker must answer on every frame with what it knows so far. Over a recording
(``crowdsight analyze``, ``crowdsight eval tracking``) the whole future is known, so two
published post-processing steps can repair what the online pass had to leave out:

* **Tentative starts.** A new track gets its id only after
  ``minimum_consecutive_frames`` matches, so online output never shows its first box(es).
  Once the track is confirmed, those boxes were the same person: they get the id too.
  Tracks that never got confirmed (one-frame false alarms) stay dropped.
* **Linear gap filling** (ByteTrack's post-processing, Zhang et al., ECCV 2022,
  ``tools/interpolation.py``; MMTracking's ByteTrack config uses the same values): when a
  track missed frames between two sightings less than ``max_gap_s`` apart, each missed
  frame gets the box linearly interpolated between the sightings. ByteTrack fills gaps
  shorter than 20 frames at MOT17's 30 fps, i.e. 2/3 s (`MAX_GAP_S`), only on tracks
  seen more than 5 frames (1/6 s, `MIN_TRACK_S`); both are taken over in seconds, not
  fitted here. A person is rarely far from the straight line between two sightings 2/3 s
  apart; longer gaps (someone turning behind a pillar) are left open. At Mall's 2 fps one
  missed frame is already a 1 s gap, so there only tentative starts change.

Measured (reported, not used to choose anything): MOT15 TUD-Stadtmitte with SORT's
detections, ``crowdsight eval tracking`` online → ``linear``: MOTA 70.85 → 73.18, IDF1
76.11 → 75.81; every 5th frame 64.38 → 68.24, 66.17 → 67.15. Mall frames 801-1200 at
2 fps (``benchmarks/tracker_mall.py``, ``pipeline`` → ``pipeline_offline``): head points
covered by confirmed tracks 0.678 → 0.719, mean track 7.91 → 8.41 s.

StrongSORT's GSI (Gaussian-smoothed interpolation) is the other published option; it is
not implemented (it needs scikit-learn's Gaussian-process regressor).

This needs the future, so it never runs in the live service: only on finished recordings.

Example:
    >>> recorder = TrackRecorder()
    >>> tracker = Tracker(keep_unconfirmed=True)  # doctest: +SKIP
    >>> for i, (dets, ts) in enumerate(frames):  # doctest: +SKIP
    ...     recorder.add(i, ts, tracker.update(dets, ts), tracker.last_track_keys)
    >>> rows = recorder.rows("linear")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import Detections

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Offline post-processing modes: ``"linear"`` (tentative starts + ByteTrack's linear gap
#: filling, the default for recordings) or ``"none"`` (exactly the online tracker's output).
OfflineMode = Literal["linear", "none"]
OFFLINE_MODES: tuple[str, ...] = get_args(OfflineMode)
#: Longest time between two sightings of a track that gets filled (exclusive): ByteTrack's
#: ``n_dti`` of 20 frames at MOT17's 30 fps.
MAX_GAP_S = 20.0 / 30.0
#: Only tracks seen over more than this (first to last sighting) are filled: ByteTrack's
#: ``n_min`` of 5 frames at 30 fps (its script's and MMTracking's value).
MIN_TRACK_S = 5.0 / 30.0


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
            start given its id after confirmation, 2 filled by interpolation.
    """

    frame: IntArray
    ts_s: FloatArray
    tracker_id: IntArray
    xyxy: FloatArray
    confidence: FloatArray
    source: npt.NDArray[np.int8]

    ONLINE = 0
    TENTATIVE = 1
    FILLED = 2

    def __len__(self) -> int:
        return len(self.frame)

    def counts(self) -> dict[str, int]:
        """Rows by source: ``{"online": …, "tentative": …, "filled": …}``."""
        return {
            "online": int((self.source == self.ONLINE).sum()),
            "tentative": int((self.source == self.TENTATIVE).sum()),
            "filled": int((self.source == self.FILLED).sum()),
        }


class TrackRecorder:
    """Collects a tracker's output over a recording for offline post-processing.

    Feed it every processed frame, including frames without detections (gap filling only
    fills frames that were processed). The tracker should run with
    ``keep_unconfirmed=True`` so tentative boxes reach the recorder; without them only
    gap filling applies.
    """

    def __init__(self) -> None:
        self._frames: list[int] = []
        self._frame_ts: list[float] = []
        self._rows: list[tuple[IntArray, IntArray, FloatArray, FloatArray]] = []
        self._row_frame: list[IntArray] = []
        self._key_to_id: dict[int, int] = {}

    def add(self, frame: int, ts_s: float, tracked: Detections, keys: IntArray) -> None:
        """Record one processed frame.

        Args:
            frame: Frame index, increasing from call to call.
            ts_s: Its timestamp in seconds, non-decreasing.
            tracked: The tracker's output for the frame (``tracker_id`` -1: tentative).
            keys: ``Tracker.last_track_keys`` right after that update (one per row).
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

    def rows(
        self,
        mode: OfflineMode = "linear",
        *,
        max_gap_s: float = MAX_GAP_S,
        min_track_s: float = MIN_TRACK_S,
    ) -> TrackRows:
        """Every confirmed track's boxes after post-processing ``mode``.

        Args:
            mode: ``"linear"``: tentative starts + linear gap filling; ``"none"``: the
                online output as it was (tentative rows dropped).
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
        if mode == "linear":
            filled = fill_gaps(pos, frame_ts, ids, xyxy, conf, max_gap_s, min_track_s)
            pos = np.concatenate([pos, filled[0]])
            ids = np.concatenate([ids, filled[1]])
            xyxy = np.concatenate([xyxy, filled[2]])
            conf = np.concatenate([conf, filled[3]])
            source = np.concatenate([source, np.full(len(filled[0]), TrackRows.FILLED, np.int8)])
        order = np.lexsort((ids, pos))
        pos = pos[order]
        return TrackRows(
            frame=frame_no[pos],
            ts_s=frame_ts[pos],
            tracker_id=ids[order],
            xyxy=xyxy[order],
            confidence=conf[order],
            source=source[order],
        )


def fill_gaps(
    pos: IntArray,
    frame_ts: FloatArray,
    ids: IntArray,
    xyxy: FloatArray,
    conf: FloatArray,
    max_gap_s: float = MAX_GAP_S,
    min_track_s: float = MIN_TRACK_S,
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Linearly interpolated boxes for the frames each track missed (ByteTrack's DTI).

    Args:
        pos: Position of each row's frame in ``frame_ts`` (the processed frames).
        frame_ts: Timestamp of every processed frame, non-decreasing.
        ids: Track id of each row (one row per track and frame).
        xyxy: Box of each row, N×4.
        conf: Score of each row.
        max_gap_s: A gap is filled only when its two sightings are less than this apart.
        min_track_s: Tracks whose sightings span at most this long are left as they are.

    Returns:
        (frame positions, ids, boxes, scores) of the new rows only; each box (and score)
        is on the straight line between the sightings, weighted by time.
    """
    out_pos: list[IntArray] = []
    out_ids: list[IntArray] = []
    out_box: list[FloatArray] = []
    out_conf: list[FloatArray] = []
    for tid in np.unique(ids).tolist():
        sel = np.flatnonzero(ids == tid)
        sel = sel[np.argsort(pos[sel], kind="stable")]
        p = pos[sel]
        t = frame_ts[p]
        if len(sel) < 2 or t[-1] - t[0] <= min_track_s:
            continue
        for j in np.flatnonzero((np.diff(p) > 1) & (np.diff(t) < max_gap_s)).tolist():
            a, b = sel[j], sel[j + 1]
            between = np.arange(pos[a] + 1, pos[b], dtype=np.int64)
            span = frame_ts[pos[b]] - frame_ts[pos[a]]
            w = (frame_ts[between] - frame_ts[pos[a]]) / span if span > 0 else 0.0 * between
            out_pos.append(between)
            out_ids.append(np.full(len(between), tid, np.int64))
            out_box.append(xyxy[a] + w[:, None] * (xyxy[b] - xyxy[a]))
            out_conf.append(conf[a] + w * (conf[b] - conf[a]))
    if not out_pos:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0)
    return (
        np.concatenate(out_pos),
        np.concatenate(out_ids),
        np.concatenate(out_box),
        np.concatenate(out_conf),
    )


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
