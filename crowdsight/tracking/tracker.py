"""Per-camera multi-object tracker: ByteTrack, one track set per class.

ByteTrack associates in two stages. Confident detections are matched first to every
track's Kalman-predicted box (Hungarian assignment on IoU); the weak detections left over
are then matched to the tracks still unmatched, which keeps a person who is half hidden
(and therefore scored low by the detector) on the same id instead of dropping them. Only
confident detections can start a track, so weak false alarms never create ids. A track
that misses detections is kept, coasting on its motion model, for ``lost_track_buffer_s``
seconds before it is forgotten.

The algorithm is Roboflow ``trackers``' ``ByteTrackTracker`` (XYXY state, timestamps),
run over arrays by `crowdsight.tracking.bytetrack.ArrayByteTrack` for speed; a test checks
that both give the same ids frame by frame. This wrapper adds:

* Ids start at 1 per `Tracker` instance and never collide across classes.
* Classes are tracked separately: a person is never associated with a car.
* The input `Detections` is never mutated; the output is a new value in input row order.
* Two OC-SORT steps (Cao et al. 2023), on by default: observation-centric recovery
  (a third association of still-unmatched tracks to leftover confident boxes by IoU with
  the track's last observed box, IoU ≥ 0.3 as OC-SORT's published default) and the
  observation-centric re-update in closed form (a track found again after a miss takes
  the velocity of the straight line from its last observation). Both matter most at low
  frame rates, where a blind Kalman prediction drifts furthest.
* C-BIoU's buffered association (Yang et al., WACV 2023), on by default: confident
  boxes and tracks left unmatched by plain IoU get two more rounds with both boxes widened
  about their centres by the published buffer scales 0.3 and 0.5. At 2 fps a walker
  moves about a body width between frames, where plain IoU is 0 and the buffered one
  about 1/3. Buffered IoU is multiplied by the height IoU (Hybrid-SORT's HMIoU, Yang et
  al., AAAI 2024): without it, on Mall training frames 1-800, the widened boxes handed
  ids to the person standing just behind (implausible jumps per 100 track steps
  0.16 → 1.59, `benchmarks/tracker_mall.py`); with it 0.14, while tracks per
  person-minute went 7.34 → 6.80 and head coverage 0.618 → 0.643.
* With the frame (``image``), a clothing-colour cue (`crowdsight.tracking.appearance`),
  kept per live track only: a confirmed track still unmatched after every IoU round may
  take a leftover confident box within walking reach (missed at most 1 s) whose colours
  match closely (the "rescue"; Mall 1-800: tracks per person-minute 6.80 → 6.58, mean
  track 6.81 → 7.08 s, jumps 0.14 → 0.24 per 100 steps). An optional veto refuses
  buffered and recovery matches between clearly different colours (off by default).
* Optional camera-motion compensation (BoT-SORT's sparse-flow GMC) for moving cameras.
* Time comes from frame timestamps (``ts_s``), so dropped frames and variable frame rates
  stretch the motion model and the lost buffer correctly.

Example:
    >>> tracker = Tracker(frame_rate=25.0)
    >>> tracked = tracker.update(detections, ts_s=frame.ts_s)  # doctest: +SKIP
    >>> tracked.tracker_id  # doctest: +SKIP
    array([1, 2, 3])
"""

from __future__ import annotations

import math
from collections import deque
from typing import cast

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import Detections
from crowdsight.tracking.appearance import colour_signatures
from crowdsight.tracking.bytetrack import ArrayByteTrack
from crowdsight.tracking.motion import CameraMotion
from crowdsight.tracking.scores import OtsuScoreSplit

_NO_CLASS = -1
# Default lost buffer: 1 s (ByteTrack's 30 frames at 30 fps), but never fewer than 6
# frames. At Mall's 2 fps, 1 s is 2 frames, too short to bridge two missed detections;
# chosen on Mall frames 1-800 (`benchmarks/tracker_mall.py`): 1 s → 3 s took mean track
# duration 3.0 → 4.2 s and tracks per person-minute 1.62 → 1.45. No effect at >= 6 fps.
_MIN_LOST_FRAMES = 6.0
#: Recent update intervals whose median sets the adaptive lost buffer (a few seconds of a
#: slow live camera; robust to one stalled frame).
_CADENCE_UPDATES = 9
#: The default buffer spans at least this many update intervals: a track survives one
#: missed detection (2 intervals) with room for jittery intervals. Not 6 like the nominal
#: rule: at 0.7 updates/s that is 8.5 s of a coasting motion model, and the demo's trails
#: showed such tracks landing on neighbours; 2.5 intervals stays within the 3 s that
#: `benchmarks/tracker_mall.py` measured on Mall at 2 fps, down to 0.8 updates/s.
_MIN_LOST_UPDATES = 2.5
#: Below this frame rate (fps) the match IoU drops from 0.3 to 0.1: both are published
#: defaults; the switch was checked on Mall training frames 1–400 at 2 fps with NanoDet
#: (`benchmarks/tracker_mall.py --detector nanodet`): head coverage by tracks 0.512 → 0.587,
#: mean track 4.45 → 5.45 s, tracks per person-minute 8.62 → 7.89. Video-rate sequences
#: (TUD at 25 fps, or 5 fps with ``--stride 5``) keep 0.3.
LOW_FRAME_RATE = 5.0
#: C-BIoU's two buffer scales (Yang et al., WACV 2023: b1 = 0.3, b2 = 0.5), used as extra
#: association rounds for what plain IoU left unmatched.
BUFFER_SCALES: tuple[float, ...] = (0.3, 0.5)
#: Buffered IoU a buffered-round match needs; None: the match IoU (0.3, or 0.1 below
#: `LOW_FRAME_RATE`). With the height modulation, 0.1 at 2 fps added no implausible jumps
#: on Mall 1-800 (0.14 per 100 steps, 0.17 with a 0.2 or 0.3 gate, fewer tracks kept).
BUFFER_MIN_IOU: float | None = None
#: Appearance veto: colour-signature distance above which a track and a box never match.
#: None (off): on Mall training frames 1-800 (`benchmarks/tracker_mall.py`) a veto at the
#: 99th percentile of same-person distances (0.24) cost continuity (tracks per
#: person-minute 6.80 → 7.08) without fewer implausible jumps (0.14 → 0.15 per 100 steps).
MAX_APPEARANCE_DISTANCE: float | None = None
#: Appearance rescue: colour-signature distance under which a lost track may take a box.
#: 0.041 is the 5th percentile of distances between neighbouring different people on Mall
#: training frames 1-800 (only 1 neighbour pair in 20 looks this alike; 6395 same-person
#: pairs have median 0.018); the rule fixed the value, not a tracking score.
RESCUE_DISTANCE: float | None = 0.041


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
            and can take its id back; None (default) is max(1 s, 6 frames). Longer
            bridges occlusions (someone behind a pillar) and detector misses, so fewer
            id switches; too long and a stale track can
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
            risks swapping ids between people walking close together. None (default): 0.3
            (SORT's value) at `LOW_FRAME_RATE` fps and above, 0.1 (``trackers``' ByteTrack
            default) below it, where a walker moves about a body width between frames.
        minimum_consecutive_frames: Consecutive matched frames before a track is
            confirmed and gets an id. 1 reports everyone at once (flicker-prone false
            tracks); 2-3 suppresses one-frame false alarms at the cost of reporting new
            people a frame or two late.
        keep_unconfirmed: If True, detections that are not (yet) on a confirmed track are
            returned with ``tracker_id == -1``; by default they are dropped, so every
            returned row has an id. After each `update`, ``last_track_keys`` holds one
            internal track key per returned row (-1: on no track): unlike ids, keys exist
            from a track's first box, so offline post-processing
            (`crowdsight.tracking.offline`) can give a track confirmed later the boxes it
            had while tentative.
        recovery_iou: IoU with a lost track's last observed box for OC-SORT's recovery
            stage; 0.3 is OC-SORT's published association threshold (not fitted here).
            None turns the stage off (plain ByteTrack).
        observation_velocity: OC-SORT's re-update: a track matched after missed frames
            takes the observed velocity since its last observation. False is plain
            ByteTrack.
        buffer_scales: C-BIoU buffer scales of the extra association rounds for what
            plain IoU left unmatched; () turns them off (plain ByteTrack). Larger
            scales reach further (fast movers, low frame rates, missed frames) but
            offer more wrong candidates in a crowd.
        max_appearance_distance: Colour-signature distance (0-1) above which the
            buffered and recovery rounds refuse a match; needs ``image`` in `update`.
            Lower vetoes more: fewer swaps between differently dressed neighbours, but
            more broken tracks when lighting changes someone's colours. None: no veto.
        camera_motion: Compensate camera pan/shake (BoT-SORT's sparse-flow GMC,
            `crowdsight.tracking.motion`) when ``update`` gets the frame. Off by default:
            fixed cameras gain nothing from it.
        adaptive_scores: Replace both score thresholds by the Otsu split of the scores
            this tracker has seen (`crowdsight.tracking.scores`) once there are enough;
            the fixed thresholds apply until then. Off by default (see the module for
            what it measured).

    Measured with ``crowdsight eval tracking`` on TUD-Stadtmitte (SORT's detections),
    plain ByteTrack → with OCR+ORU: every frame MOTA 71.0 → 70.8, IDF1 76.2 → 76.1;
    every 5th frame (``--stride 5``, 5 fps) MOTA 61.8 → 63.9, IDF1 65.8 → 66.0; adding the
    height-modulated buffered rounds: every frame unchanged (70.85 / 76.11), every 5th
    frame MOTA 64.4, IDF1 66.2 (TUD has no images, so the colour cue is not in these).
    """

    def __init__(
        self,
        *,
        frame_rate: float = 25.0,
        lost_track_buffer_s: float | None = None,
        track_activation_threshold: float = 0.7,
        high_conf_det_threshold: float = 0.6,
        minimum_iou_threshold: float | None = None,
        minimum_consecutive_frames: int = 2,
        keep_unconfirmed: bool = False,
        recovery_iou: float | None = 0.3,
        observation_velocity: bool = True,
        buffer_scales: tuple[float, ...] = BUFFER_SCALES,
        buffer_min_iou: float | None = BUFFER_MIN_IOU,
        max_appearance_distance: float | None = MAX_APPEARANCE_DISTANCE,
        rescue_distance: float | None = RESCUE_DISTANCE,
        camera_motion: bool = False,
        adaptive_scores: bool = False,
    ) -> None:
        if not math.isfinite(frame_rate) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        # The default follows the update cadence (see `_lost_buffer_s`); a given value is kept.
        self._adaptive_buffer = lost_track_buffer_s is None
        if lost_track_buffer_s is None:
            lost_track_buffer_s = max(1.0, _MIN_LOST_FRAMES / frame_rate)
        if lost_track_buffer_s < 0:
            raise ValueError(f"lost_track_buffer_s must be >= 0, got {lost_track_buffer_s}")
        if minimum_consecutive_frames < 1:
            raise ValueError("minimum_consecutive_frames must be >= 1")
        self.frame_rate = frame_rate
        self.lost_track_buffer_s = lost_track_buffer_s
        self.track_activation_threshold = track_activation_threshold
        self.high_conf_det_threshold = high_conf_det_threshold
        if minimum_iou_threshold is None:
            minimum_iou_threshold = 0.3 if frame_rate >= LOW_FRAME_RATE else 0.1
        self.minimum_iou_threshold = minimum_iou_threshold
        self.minimum_consecutive_frames = minimum_consecutive_frames
        self.keep_unconfirmed = keep_unconfirmed
        self.recovery_iou = recovery_iou
        self.observation_velocity = observation_velocity
        if any(not math.isfinite(b) or b < 0 for b in buffer_scales):
            raise ValueError(f"buffer_scales must be >= 0, got {buffer_scales}")
        self.buffer_scales = tuple(buffer_scales)
        self.buffer_min_iou = buffer_min_iou
        self.max_appearance_distance = max_appearance_distance
        self.rescue_distance = rescue_distance
        self._camera_motion = CameraMotion() if camera_motion else None
        self._score_split = OtsuScoreSplit() if adaptive_scores else None
        self._by_class: dict[int, ArrayByteTrack] = {}
        self._next_id = [1]  # shared by the per-class trackers: ids never collide
        self._next_key = [1]
        self.last_track_keys: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._intervals: deque[float] = deque(maxlen=_CADENCE_UPDATES)
        self._last_ts: float | None = None

    def reset(self) -> None:
        """Forget every track; the next confirmed track gets id 1 again."""
        self._by_class.clear()
        self._next_id = [1]
        self._next_key = [1]
        self.last_track_keys = np.zeros(0, np.int64)
        self._intervals.clear()
        self._last_ts = None
        if self._camera_motion is not None:
            self._camera_motion.reset()
        if self._score_split is not None:
            self._score_split.reset()

    def update(
        self,
        detections: Detections,
        ts_s: float,
        image: npt.NDArray[np.uint8] | None = None,
    ) -> Detections:
        """Associate this frame's detections with the tracks and return them with ids.

        Args:
            detections: Detections of one frame (``confidence`` None counts as 1.0,
                ``class_id`` None as a single class). Not modified.
            ts_s: Frame timestamp in seconds, non-decreasing from call to call.
            image: The frame (H x W x 3 RGB) the detections come from, optional. With
                it (and ``max_appearance_distance`` set) each box's clothing-colour
                signature (`crowdsight.tracking.appearance`) vetoes matches to tracks of
                clearly different colours; signatures live only as long as their track.

        Returns:
            A new `Detections` with ``tracker_id`` set, rows in input order. Rows not on a
            confirmed track are dropped (or kept with id -1 if ``keep_unconfirmed``).
        """
        n = len(detections)
        xyxy = np.asarray(detections.xyxy, np.float64).reshape(n, 4)
        conf = (
            np.ones(n)
            if detections.confidence is None
            else np.asarray(detections.confidence, np.float64)
        )
        sig = None
        wants_colour = self.max_appearance_distance is not None or self.rescue_distance is not None
        if image is not None and wants_colour:
            sig = colour_signatures(image, xyxy)
        if image is not None and self._camera_motion is not None:
            warp = self._camera_motion.estimate(image)
            for inner in self._by_class.values():
                inner.apply_camera_motion(warp)
        if self._score_split is not None:
            self._adapt_thresholds(conf)
        buffer_s = self._lost_buffer_s(ts_s)
        classes = self._class_keys(detections)
        # Classes seen before but absent now must still age their tracks.
        keys = sorted(set(np.unique(classes).tolist()) | set(self._by_class))
        rows: list[npt.NDArray[np.int64]] = []
        ids: list[npt.NDArray[np.int64]] = []
        track_keys: list[npt.NDArray[np.int64]] = []
        for key in keys:
            sel = np.flatnonzero(classes == key) if len(keys) > 1 else np.arange(n)
            inner = self._inner(key)
            inner.max_lost_s = buffer_s
            local, got = inner.update(
                xyxy[sel], conf[sel], ts_s, self._next_id, None if sig is None else sig[sel]
            )
            rows.append(sel[local])
            ids.append(got)
            track_keys.append(inner.last_keys)
        all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        all_keys = np.concatenate(track_keys) if track_keys else np.zeros(0, np.int64)
        if not self.keep_unconfirmed:
            on = all_ids >= 0
            all_rows, all_ids, all_keys = all_rows[on], all_ids[on], all_keys[on]
        order = np.argsort(all_rows, kind="stable")
        result = cast(Detections, detections[all_rows[order]])
        result.tracker_id = all_ids[order]
        self.last_track_keys = all_keys[order]
        return result

    def _adapt_thresholds(self, conf: npt.NDArray[np.float64]) -> None:
        """Move both score thresholds to the Otsu split of every score seen so far."""
        assert self._score_split is not None
        self._score_split.add(conf)
        split = self._score_split.threshold()
        if split is None:
            return
        self.track_activation_threshold = self.high_conf_det_threshold = split
        for inner in self._by_class.values():
            inner.activation = inner.high = split

    def _lost_buffer_s(self, ts_s: float) -> float:
        """The lost-track buffer now: the default also spans a few *update* intervals.

        A live camera on a busy CPU runs the detector (and this update) far less often than
        its nominal frame rate: at 0.7 updates/s a fixed 1 s buffer drops every track between
        two updates, so nobody is ever confirmed ("tracked 0"). The default buffer therefore
        spans `_MIN_LOST_UPDATES` of the median recent interval between updates, and never
        less than the nominal default (unchanged at video rates).
        """
        if self._last_ts is not None and math.isfinite(ts_s) and ts_s > self._last_ts:
            self._intervals.append(ts_s - self._last_ts)
        if math.isfinite(ts_s) and (self._last_ts is None or ts_s > self._last_ts):
            self._last_ts = ts_s
        if not self._adaptive_buffer or not self._intervals:
            return self.lost_track_buffer_s
        return max(self.lost_track_buffer_s, _MIN_LOST_UPDATES * float(np.median(self._intervals)))

    def _class_keys(self, detections: Detections) -> npt.NDArray[np.int64]:
        if detections.class_id is None:
            return np.full(len(detections), _NO_CLASS, dtype=np.int64)
        return np.asarray(detections.class_id, dtype=np.int64)

    def _inner(self, key: int) -> ArrayByteTrack:
        inner = self._by_class.get(key)
        if inner is None:
            inner = ArrayByteTrack(
                frame_rate=self.frame_rate,
                # ``trackers``' unit: 30 fps frames (seconds = buffer / 30 with timestamps).
                lost_track_buffer=round(self.lost_track_buffer_s * 30.0),
                track_activation_threshold=self.track_activation_threshold,
                high_conf_det_threshold=self.high_conf_det_threshold,
                minimum_iou_threshold=self.minimum_iou_threshold,
                minimum_consecutive_frames=self.minimum_consecutive_frames,
                recovery_iou=self.recovery_iou,
                observation_velocity=self.observation_velocity,
                buffer_scales=self.buffer_scales,
                buffer_min_iou=self.buffer_min_iou,
                max_appearance_distance=self.max_appearance_distance,
                rescue_distance=self.rescue_distance,
                key_counter=self._next_key,
            )
            self._by_class[key] = inner
        return inner
