"""Per-camera multi-object tracker: ByteTrack (Roboflow ``trackers``), one per class.

ByteTrack associates in two stages. Confident detections are matched first to every
track's Kalman-predicted box (Hungarian assignment on IoU); the weak detections left over
are then matched to the tracks still unmatched, which keeps a person who is half hidden
(and therefore scored low by the detector) on the same id instead of dropping them. Only
confident detections can start a track, so weak false alarms never create ids. A track
that misses detections is kept, coasting on its motion model, for ``lost_track_buffer_s``
seconds before it is forgotten.

Why a wrapper around ``trackers.ByteTrackTracker``:

* Ids start at 1 per `Tracker` instance and never collide across classes. (``trackers``
  2.6.1 already keeps its id counter on the instance, not on the class as the original
  ByteTrack code did, but it counts from 0 and each per-class tracker would reuse the same
  numbers, so we map ``(class, inner id)`` to our own per-instance counter.)
* Classes are tracked separately: a person is never associated with a car.
* The input `Detections` is never mutated; the output is a new value in input row order.
* Time comes from frame timestamps (``ts_s``), so dropped frames and variable frame rates
  stretch the motion model and the lost buffer correctly.

Example:
    >>> tracker = Tracker(frame_rate=25.0)
    >>> tracked = tracker.update(detections, ts_s=frame.ts_s)  # doctest: +SKIP
    >>> tracked.tracker_id  # doctest: +SKIP
    array([1, 2, 3])
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import supervision as sv
from trackers import ByteTrackTracker

from crowdsight.core.types import Detections

_ROW = "_crowdsight_row"  # data key carrying input row indices through the inner tracker
_NO_CLASS = -1


class Tracker:
    """ByteTrack multi-object tracker with per-instance state, one track set per class.

    The defaults are ``trackers``' ByteTrack defaults except the match IoU, 0.3 (SORT's
    value) instead of 0.1, which at 25 fps only invites swaps between neighbours. On MOT15
    TUD-Stadtmitte with SORT's Faster R-CNN detections they give MOTA 71.0, IDF1 76.2,
    HOTA 52.9, 12 id switches (``crowdsight eval tracking``); a sweep of buffer 0.5-2 s,
    1-3 confirmation frames, activation 0.5/0.7 and IoU 0.1/0.3 stayed within MOTA
    69.9-71.2, so no value here is fitted to that sequence. The two-stage association only
    helps if the detector passes boxes scored below ``high_conf_det_threshold``: run the
    detector with a lower threshold (e.g. 0.3) and let the tracker sort them out.

    Args:
        frame_rate: Nominal frames per second of the camera. It sets the unit of the
            Kalman motion model (velocity per frame) when timestamps are regular, and the
            step of the first frame. A wrong value mostly matters for fast movers.
        lost_track_buffer_s: How long (seconds) a track that lost its detections is kept
            and can take its id back. Longer bridges occlusions (someone behind a pillar)
            and detector misses, so fewer id switches; too long and a stale track can
            grab a different person who walks into the predicted spot, and memory
            grows with the number of people who left the scene recently.
        track_activation_threshold: Minimum detection confidence to start a NEW track.
            Higher means fewer ids spawned by false alarms, but people the detector is
            unsure about (small, far, occluded) get tracked later or never.
        high_conf_det_threshold: Confidence splitting "high" from "low" detections for the
            two-stage association. Low ones can only continue existing tracks. Raising it
            makes association more conservative (more weak boxes only used for recovery).
        minimum_iou_threshold: Minimum IoU between a track's predicted box and a detection
            for them to be matched. Lower tolerates fast motion and low frame rates but
            risks swapping ids between people walking close together.
        minimum_consecutive_frames: Consecutive matched frames before a track is
            confirmed and gets an id. 1 reports everyone at once (flicker-prone false
            tracks); 2-3 suppresses one-frame false alarms at the cost of reporting new
            people a frame or two late.
        keep_unconfirmed: If True, detections that are not (yet) on a confirmed track are
            returned with ``tracker_id == -1``; by default they are dropped, so every
            returned row has an id.
    """

    def __init__(
        self,
        *,
        frame_rate: float = 25.0,
        lost_track_buffer_s: float = 1.0,
        track_activation_threshold: float = 0.7,
        high_conf_det_threshold: float = 0.6,
        minimum_iou_threshold: float = 0.3,
        minimum_consecutive_frames: int = 2,
        keep_unconfirmed: bool = False,
    ) -> None:
        if not math.isfinite(frame_rate) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        if lost_track_buffer_s < 0:
            raise ValueError(f"lost_track_buffer_s must be >= 0, got {lost_track_buffer_s}")
        if minimum_consecutive_frames < 1:
            raise ValueError("minimum_consecutive_frames must be >= 1")
        self.frame_rate = frame_rate
        self.lost_track_buffer_s = lost_track_buffer_s
        self.track_activation_threshold = track_activation_threshold
        self.high_conf_det_threshold = high_conf_det_threshold
        self.minimum_iou_threshold = minimum_iou_threshold
        self.minimum_consecutive_frames = minimum_consecutive_frames
        self.keep_unconfirmed = keep_unconfirmed
        self._by_class: dict[int, ByteTrackTracker] = {}
        self._ids: dict[tuple[int, int], int] = {}
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track; the next confirmed track gets id 1 again."""
        self._by_class.clear()
        self._ids.clear()
        self._next_id = 1

    def update(self, detections: Detections, ts_s: float) -> Detections:
        """Associate this frame's detections with the tracks and return them with ids.

        Args:
            detections: Detections of one frame (``confidence`` None counts as 1.0,
                ``class_id`` None as a single class). Not modified.
            ts_s: Frame timestamp in seconds, non-decreasing from call to call.

        Returns:
            A new `Detections` with ``tracker_id`` set, rows in input order. Rows not on a
            confirmed track are dropped (or kept with id -1 if ``keep_unconfirmed``).
        """
        classes = self._class_keys(detections)
        # Classes seen before but absent now must still age their tracks.
        keys = sorted(set(np.unique(classes).tolist()) | set(self._by_class))
        parts: list[Detections] = []
        for key in keys:
            in_class = classes == key
            if len(keys) == 1:  # one class (a people detector): no split to pay for
                subset = dataclasses.replace(
                    detections, data={**detections.data, _ROW: np.arange(len(detections))}
                )
            else:
                subset = cast(Detections, detections[in_class])
                subset.data = {**subset.data, _ROW: np.flatnonzero(in_class)}
            tracked = self._inner(key).update(subset, timestamp=ts_s)
            if len(tracked) == 0:
                continue
            assert tracked.tracker_id is not None
            tracked.tracker_id = self._public_ids(key, tracked.tracker_id)
            parts.append(tracked)
        self._forget_stale_ids()
        return self._assemble(detections, parts)

    def _class_keys(self, detections: Detections) -> npt.NDArray[np.int64]:
        if detections.class_id is None:
            return np.full(len(detections), _NO_CLASS, dtype=np.int64)
        return np.asarray(detections.class_id, dtype=np.int64)

    def _inner(self, key: int) -> ByteTrackTracker:
        inner = self._by_class.get(key)
        if inner is None:
            inner = ByteTrackTracker(
                # ``trackers`` counts the buffer in 30 fps frames (and in seconds as
                # buffer / 30 when timestamps are given).
                lost_track_buffer=round(self.lost_track_buffer_s * 30.0),
                frame_rate=self.frame_rate,
                track_activation_threshold=self.track_activation_threshold,
                minimum_consecutive_frames=self.minimum_consecutive_frames,
                minimum_iou_threshold=self.minimum_iou_threshold,
                high_conf_det_threshold=self.high_conf_det_threshold,
            )
            self._by_class[key] = inner
        return inner

    def _public_ids(
        self, key: int, inner_ids: npt.NDArray[np.integer[Any]]
    ) -> npt.NDArray[np.int64]:
        out = np.full(len(inner_ids), -1, dtype=np.int64)
        for i, inner_id in enumerate(inner_ids.tolist()):
            if inner_id < 0:
                continue
            public = self._ids.get((key, inner_id))
            if public is None:
                public = self._ids[(key, inner_id)] = self._next_id
                self._next_id += 1
            out[i] = public
        return out

    def _assemble(self, detections: Detections, parts: list[Detections]) -> Detections:
        if not parts:
            return _empty_like(detections)
        merged = parts[0] if len(parts) == 1 else sv.Detections.merge(parts)
        assert merged.tracker_id is not None
        rows = np.asarray(merged.data[_ROW])
        keep = np.arange(len(merged))
        if not self.keep_unconfirmed:
            keep = keep[merged.tracker_id >= 0]
        # One selection: confirmed rows, back in input order.
        result = cast(Detections, merged[keep[np.argsort(rows[keep], kind="stable")]])
        result.data = {k: v for k, v in result.data.items() if k != _ROW}
        return result

    def _forget_stale_ids(self) -> None:
        """Drop id mappings of tracks the inner trackers no longer hold."""
        alive = {(key, t.tracker_id) for key, inner in self._by_class.items() for t in inner.tracks}
        self._ids = {k: v for k, v in self._ids.items() if k in alive}


def _empty_like(detections: Detections) -> Detections:
    empty = cast(Detections, detections[np.zeros(len(detections), dtype=bool)])
    empty.tracker_id = np.empty(0, dtype=np.int64)
    return empty
