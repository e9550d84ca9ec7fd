"""ByteTrack for one class, with every track's Kalman filter held in arrays.

This is ``trackers.ByteTrackTracker`` (Roboflow ``trackers`` 2.6, XYXY state, timestamps)
re-expressed over arrays: same two-stage association, same noise, same time handling,
same lifecycle, and the same ids frame by frame (a test runs both side by side on
synthetic crowds and on MOT15 TUD-Stadtmitte). Association (IoU, Hungarian assignment)
still calls ``trackers``/SciPy; only the per-track Python objects are gone.

Why not use ``ByteTrackTracker`` itself: it keeps one Python object and one 8x8 Kalman
filter per track, so its cost grows with Python calls per track. Measured with
``python benchmarks/tracker.py``: 19-42 ms per frame at 500 objects (this project's
2-vCPU VM and a 16-core Xeon), i.e. slower than the people detector itself in exactly
the dense crowds this product is for, and 0.4-0.8 ms per frame at the 5-10 people of
the Mall scene, the largest share of the pipeline's overhead in ``crowdsight bench``.

Why arrays are exact here: with the XYXY state ``[x1 y1 x2 y2 vx1 vy1 vx2 vy2]``, the
identity initial covariance, measurement noise ``0.1 I`` and process noise ``0.01 I``
(ByteTrack's tuning in ``trackers``), the four coordinates never interact, start with
the same covariance and are always predicted and updated together. So each track's 8x8
covariance is four copies of one 2x2 block ``[[a, b], [b, c]]`` (position, position-
velocity, velocity), and the filter reduces to a few array expressions over all tracks.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from trackers.utils.iou import IoU

from crowdsight.tracking.appearance import signature_distance
from crowdsight.tracking.motion import warp_boxes, warp_velocities

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_R = 0.1  # measurement noise per coordinate (trackers: identity x 0.1)
_Q = 0.01  # one-frame process noise per state (trackers: identity x 0.01)
_NOMINAL_STEP_TOLERANCE_S = 0.004  # trackers: steps within 4 ms of one frame are nominal
_IOU = IoU()
#: Walking reach of the appearance rescue: ~1.4 m/s is about 3 shoulder widths a second.
RESCUE_WIDTHS_PER_S = 3.0
#: Longest miss the rescue bridges: past a second, a walker may be anywhere in a circle
#: 3+ widths wide and a crowd offers too many look-alikes for a coarse colour cue.
RESCUE_MAX_GAP_S = 1.0


class ArrayByteTrack:
    """Single-class ByteTrack over arrays; ids come from a caller-supplied allocator.

    Args:
        frame_rate: Reference frame rate (frame units of the motion model).
        lost_track_buffer: Buffer in 30 fps frames (``trackers``' unit); with timestamps
            a lost track is kept ``lost_track_buffer / 30`` seconds.
        track_activation_threshold, high_conf_det_threshold, minimum_iou_threshold,
        minimum_consecutive_frames: As ``trackers.ByteTrackTracker``.
        recovery_iou: OC-SORT's observation-centric recovery (OCR): after both ByteTrack
            stages, tracks still unmatched are matched once more to the confident boxes
            left over, by IoU with the track's LAST OBSERVED box instead of its Kalman
            prediction (a coasting prediction drifts; where the person was last seen is
            often where they reappear after a short occlusion or a stop). None (the
            default, plain ByteTrack) skips the stage.
        observation_velocity: OC-SORT's observation-centric re-update (ORU), in closed
            form: when a track is matched again after missing frames, its velocity is
            reset to (new box − last observed box) / frames between them, i.e. the
            velocity of the straight "virtual trajectory" OC-SORT re-filters along,
            instead of the velocity the filter accumulated while coasting blind.
        buffer_scales: Extra rounds of the first (confident) association, C-BIoU style
            (Yang et al., WACV 2023): tracks and boxes still unmatched after the plain
            IoU round are matched again with both boxes widened about their centres to
            ``(1 + 2 b)`` times their width and height, one round per ``b`` in order,
            gated by ``buffer_min_iou`` (None: ``minimum_iou_threshold``). () is plain
            ByteTrack.
        max_appearance_distance: Appearance veto (after BoT-SORT's appearance gate): a
            track and a confident box whose colour signatures
            (`crowdsight.tracking.appearance`) are further apart than this are never
            matched in the rounds that reach beyond plain overlap (the buffered rounds
            and recovery). Only used when ``update`` gets signatures; None: no veto.
        rescue_distance: Appearance rescue (needs signatures): confirmed tracks that are
            still unmatched after every IoU round may take a leftover confident box
            within walking reach of their last observation whose colour signature is
            closer than this. None: no rescue.
        appearance_momentum: Weight of the old value in each track's signature moving
            average (BoT-SORT / Deep OC-SORT's 0.9).
        key_counter: One-element counter for track *keys*, shared with the caller like
            ``next_id`` (None: a counter of its own). Every track gets a key when it is
            spawned, before it is confirmed; `last_keys` gives the key of each row of the
            last `update`. Offline post-processing uses keys to hand a track that was
            confirmed later the boxes it had while still tentative.
    """

    def __init__(
        self,
        *,
        frame_rate: float,
        lost_track_buffer: int,
        track_activation_threshold: float,
        high_conf_det_threshold: float,
        minimum_iou_threshold: float,
        minimum_consecutive_frames: int,
        recovery_iou: float | None = None,
        observation_velocity: bool = False,
        buffer_scales: tuple[float, ...] = (),
        buffer_min_iou: float | None = None,
        max_appearance_distance: float | None = None,
        appearance_momentum: float = 0.9,
        rescue_distance: float | None = None,
        key_counter: list[int] | None = None,
    ) -> None:
        self.frame_rate = frame_rate
        self._next_key = [1] if key_counter is None else key_counter
        self.max_lost_s = lost_track_buffer / 30.0
        self.activation = track_activation_threshold
        self.high = high_conf_det_threshold
        self.min_iou = minimum_iou_threshold
        self.min_consecutive = minimum_consecutive_frames
        self.recovery_iou = recovery_iou
        self.observation_velocity = observation_velocity
        self.buffer_scales = buffer_scales
        self.buffer_min_iou = buffer_min_iou
        self.max_app = max_appearance_distance
        self.app_momentum = appearance_momentum
        self.rescue_distance = rescue_distance
        self.reset()

    def reset(self) -> None:
        """Forget every track and the clock."""
        self._last_ts: float | None = None
        self.pos: FloatArray = np.zeros((0, 4))  # x1 y1 x2 y2
        self.vel: FloatArray = np.zeros((0, 4))
        self.cov: FloatArray = np.zeros((0, 3))  # a = var(x), b = cov(x, v), c = var(v)
        self.ids: IntArray = np.zeros(0, np.int64)  # -1 until confirmed
        self.keys: IntArray = np.zeros(0, np.int64)  # from the spawn on, never reused
        self.last_keys: IntArray = np.zeros(0, np.int64)  # per row of the last update
        self.consecutive: IntArray = np.zeros(0, np.int64)
        self.missed: IntArray = np.zeros(0, np.int64)  # frames since the last match
        self.missed_s: FloatArray = np.zeros(0)  # seconds since the last match
        self.last_obs: FloatArray = np.zeros((0, 4))  # last matched box
        self.app: FloatArray | None = None  # colour signature per track, once any is given

    def __len__(self) -> int:
        return len(self.ids)

    def update(
        self,
        xyxy: FloatArray,
        confidence: FloatArray,
        ts_s: float,
        next_id: list[int],
        appearance: FloatArray | None = None,
    ) -> tuple[IntArray, IntArray]:
        """Associate one frame's boxes; returns (row indices, ids), -1 for untracked rows.

        Rows come back in ``trackers``' order (matched confident, matched weak, unmatched
        weak, unmatched confident). ``next_id`` is a one-element counter shared with the
        caller, so ids are unique across several single-class trackers. ``appearance``
        (optional, one unit-length colour signature per box) feeds the appearance veto.
        """
        n = len(xyxy)
        if appearance is not None and self.app is None:
            self.app = np.zeros((len(self), appearance.shape[1]))
        sig = appearance if appearance is not None else self._no_signature(n)
        timing = self._timing(ts_s)
        if timing is None:  # time went backwards: nothing is associated
            self.last_keys = np.full(n, -1, np.int64)
            return np.arange(n, dtype=np.int64), np.full(n, -1, np.int64)
        step, elapsed = timing
        if len(self) == 0 and n == 0:
            self.last_keys = np.zeros(0, np.int64)
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if step > 0:
            self._predict(step, elapsed)
        self._keep(self.missed_s <= self.max_lost_s)

        high = np.flatnonzero(confidence >= self.high)
        low = np.flatnonzero(confidence < self.high)
        rows: list[int] = []
        out_ids: list[int] = []
        out_keys: list[int] = []

        predicted = self.pos.copy()
        veto = self._veto(np.arange(len(self)), sig[high])
        tracks, cols, unmatched_tracks, unmatched_high = _associate(
            predicted,
            xyxy[high],
            self.min_iou,
            (0.0, *self.buffer_scales),
            veto,
            1,
            self.buffer_min_iou,
        )
        self._matched(tracks, xyxy[high[cols]], next_id, sig[high[cols]])
        rows += high[cols].tolist()
        out_ids += self.ids[tracks].tolist()
        out_keys += self.keys[tracks].tolist()

        rest = np.asarray(unmatched_tracks, np.int64)
        sub_tracks, low_cols, _, unmatched_low = _associate(
            predicted[rest], xyxy[low], self.min_iou
        )
        tracks2 = rest[sub_tracks]
        self._matched(tracks2, xyxy[low[low_cols]], next_id, None)
        rows += low[low_cols].tolist()
        out_ids += self.ids[tracks2].tolist()
        out_keys += self.keys[tracks2].tolist()

        rows += low[unmatched_low].tolist()
        out_ids += [-1] * len(unmatched_low)
        out_keys += [-1] * len(unmatched_low)

        left = np.asarray(unmatched_high, np.int64)
        if self.recovery_iou is not None and len(left):
            lost = np.setdiff1d(rest, tracks2)
            lost = lost[self.missed[lost] > 0] if len(lost) else lost
            veto = self._veto(lost, sig[high[left]])
            r_t, r_c, _, un_h = _associate(
                self.last_obs[lost], xyxy[high[left]], self.recovery_iou, (0.0,), veto
            )
            tracks3 = lost[r_t]
            self._matched(tracks3, xyxy[high[left[r_c]]], next_id, sig[high[left[r_c]]])
            rows += high[left[r_c]].tolist()
            out_ids += self.ids[tracks3].tolist()
            out_keys += self.keys[tracks3].tolist()
            left = left[np.asarray(un_h, np.int64)]

        if self.rescue_distance is not None and self.app is not None and len(left):
            lost = np.setdiff1d(rest, tracks2)
            lost = lost[(self.missed[lost] > 0) & (self.ids[lost] >= 0)] if len(lost) else lost
            r_t, r_c = self._rescue(lost, xyxy[high[left]], sig[high[left]])
            tracks4 = lost[r_t]
            self._matched(tracks4, xyxy[high[left[r_c]]], next_id, sig[high[left[r_c]]])
            rows += high[left[r_c]].tolist()
            out_ids += self.ids[tracks4].tolist()
            out_keys += self.keys[tracks4].tolist()
            left = np.delete(left, r_c)

        spawn = high[left]
        rows += spawn.tolist()
        out_ids += [-1] * len(spawn)
        born = confidence[spawn] >= self.activation
        out_keys += np.where(born, self._next_key[0] + np.cumsum(born) - 1, -1).tolist()
        self._spawn(xyxy[spawn[born]], sig[spawn[born]])

        mature = (self.ids >= 0) | (self.consecutive >= self.min_consecutive)
        self._keep((self.missed_s <= self.max_lost_s) & (mature | (self.missed == 0)))
        self.last_keys = np.asarray(out_keys, np.int64)
        return np.asarray(rows, np.int64), np.asarray(out_ids, np.int64)

    def apply_camera_motion(self, warp: FloatArray) -> None:
        """Move every track (box, velocity, last observation) by a 2 x 3 image transform.

        Called before `update` with the frame-to-frame camera motion (BoT-SORT's GMC);
        the covariance is left as is (the transform is near-identity between frames).
        """
        if len(self) == 0:
            return
        self.pos = warp_boxes(self.pos, warp)
        self.vel = warp_velocities(self.vel, warp)
        self.last_obs = warp_boxes(self.last_obs, warp)

    def _timing(self, ts_s: float) -> tuple[float, float] | None:
        """(Kalman step in frames, elapsed seconds), or None to skip the whole update."""
        if not math.isfinite(ts_s):
            warnings.warn(f"tracker: timestamp {ts_s!r} is not finite; skipped", stacklevel=3)
            return None
        last = self._last_ts
        if last is None:
            self._last_ts = ts_s
            return 1.0, 1.0 / self.frame_rate
        if ts_s < last:
            warnings.warn(
                f"tracker: timestamp {ts_s} is earlier than the previous {last}; skipped",
                stacklevel=3,
            )
            return None
        if ts_s == last:
            return 0.0, 0.0  # duplicate: associate on the current state, no predict
        self._last_ts = ts_s
        return (ts_s - last) * self.frame_rate, ts_s - last

    def _predict(self, step: float, elapsed: float) -> None:
        if abs(step - 1.0) <= _NOMINAL_STEP_TOLERANCE_S * self.frame_rate:
            q_xx, q_xv, q_vv = _Q, 0.0, _Q  # one nominal frame: the tuned noise as is
        else:  # a gap (or a short step): discrete white-noise acceleration scaling
            q_xx, q_xv, q_vv = _Q * step**4 / 4.0, _Q * step**3 / 2.0, _Q * step**2
        a, b, c = self.cov[:, 0], self.cov[:, 1], self.cov[:, 2]
        self.cov = np.stack(
            [a + 2 * step * b + step * step * c + q_xx, b + step * c + q_xv, c + q_vv], axis=1
        )
        self.pos = self.pos + step * self.vel
        # A track that missed its last frame starts counting consecutive matches again.
        self.consecutive = np.where(self.missed > 0, 0, self.consecutive)
        self.missed = self.missed + 1
        self.missed_s = self.missed_s + elapsed

    def _rescue(
        self, lost: IntArray, boxes: FloatArray, sig: FloatArray
    ) -> tuple[IntArray, IntArray]:
        """Appearance-led last chance for confirmed tracks that lost their box.

        A track and a leftover confident box are paired when the box lies within walking
        reach of where the track was last seen (``RESCUE_WIDTHS_PER_S`` box widths per
        second since then, plus one width) and their colour signatures are closer than
        ``rescue_distance``; the Hungarian assignment minimises the colour distance.
        """
        empty = np.zeros(0, np.int64)
        if len(lost) == 0 or len(boxes) == 0 or sig.shape[1] == 0:
            return empty, empty
        assert self.app is not None and self.rescue_distance is not None
        dist = signature_distance(self.app[lost], sig)
        known = (np.abs(self.app[lost]).sum(1) > 0)[:, None] & (np.abs(sig).sum(1) > 0)[None]
        last = self.last_obs[lost]
        width = (last[:, 2] - last[:, 0])[:, None]
        centre_t = (last[:, :2] + last[:, 2:]) / 2.0
        centre_b = (boxes[:, :2] + boxes[:, 2:]) / 2.0
        gap = np.linalg.norm(centre_t[:, None] - centre_b[None], axis=2)
        missed_s = self.missed_s[lost][:, None]
        reach = width * (1.0 + RESCUE_WIDTHS_PER_S * missed_s)
        recent = missed_s <= RESCUE_MAX_GAP_S
        ok = known & recent & (gap <= reach) & (dist <= self.rescue_distance)
        cost = np.where(ok, dist, 2.0)
        r, c = linear_sum_assignment(cost)
        keep = ok[r, c]
        return r[keep].astype(np.int64), c[keep].astype(np.int64)

    def _no_signature(self, n: int) -> FloatArray:
        """All-zero signatures ("no cue") for ``n`` boxes."""
        return np.zeros((n, 0 if self.app is None else self.app.shape[1]))

    def _veto(self, tracks: IntArray, sig: FloatArray) -> npt.NDArray[np.bool_] | None:
        """Track x box mask of pairs the appearance gate forbids (None: no gate)."""
        if self.max_app is None or self.app is None or sig.shape[1] == 0:
            return None
        return signature_distance(self.app[tracks], sig) > self.max_app

    def _matched(
        self, tracks: IntArray, boxes: FloatArray, next_id: list[int], sig: FloatArray | None
    ) -> None:
        """Kalman update (Joseph form, as ``trackers``) of matched tracks; confirm ids.

        ``sig``: the matched boxes' colour signatures (None: weak boxes, whose colours
        are often someone else's in front, leave the track's signature as it is).
        """
        if len(tracks) == 0:
            return
        if sig is not None and self.app is not None and sig.shape[1]:
            self._blend_signatures(tracks, sig)
        back = tracks[self.missed[tracks] > 1] if self.observation_velocity else tracks[:0]
        if len(back):  # matched again after missing at least one frame
            frames = np.maximum(self.missed_s[back] * self.frame_rate, 1.0)
            seen = (boxes[self.missed[tracks] > 1] - self.last_obs[back]) / frames[:, None]
        a, b, c = self.cov[tracks, 0], self.cov[tracks, 1], self.cov[tracks, 2]
        s = a + _R
        k1, k2 = a / s, b / s
        innovation = boxes - self.pos[tracks]
        self.pos[tracks] += k1[:, None] * innovation
        self.vel[tracks] += k2[:, None] * innovation
        self.cov[tracks] = np.stack(
            [
                (1 - k1) ** 2 * a + k1 * k1 * _R,
                (1 - k1) * (b - k2 * a) + k1 * k2 * _R,
                k2 * k2 * a - 2 * k2 * b + c + k2 * k2 * _R,
            ],
            axis=1,
        )
        if len(back):  # the straight virtual trajectory's velocity replaces the blind one
            self.vel[back] = seen
        self.last_obs[tracks] = boxes
        self.missed[tracks] = 0
        self.missed_s[tracks] = 0.0
        self.consecutive[tracks] += 1
        for t in tracks.tolist():  # in match order, as ``trackers`` numbers them
            if self.ids[t] < 0 and self.consecutive[t] >= self.min_consecutive:
                self.ids[t] = next_id[0]
                next_id[0] += 1

    def _blend_signatures(self, tracks: IntArray, sig: FloatArray) -> None:
        assert self.app is not None
        old = self.app[tracks]
        has_old = np.abs(old).sum(1, keepdims=True) > 0
        has_new = np.abs(sig).sum(1, keepdims=True) > 0
        blend = self.app_momentum * old + (1.0 - self.app_momentum) * sig
        blend /= np.maximum(np.linalg.norm(blend, axis=1, keepdims=True), 1e-12)
        self.app[tracks] = np.where(has_old & has_new, blend, np.where(has_new, sig, old))

    def _spawn(self, boxes: FloatArray, sig: FloatArray) -> None:
        m = len(boxes)
        if m == 0:
            return
        if self.app is not None:
            self.app = np.concatenate([self.app, sig if sig.shape[1] else self._no_signature(m)])
        self.pos = np.concatenate([self.pos, boxes.astype(np.float64)])
        self.vel = np.concatenate([self.vel, np.zeros((m, 4))])
        self.cov = np.concatenate([self.cov, np.tile([1.0, 0.0, 1.0], (m, 1))])
        self.ids = np.concatenate([self.ids, np.full(m, -1, np.int64)])
        self.keys = np.concatenate([self.keys, self._next_key[0] + np.arange(m, dtype=np.int64)])
        self._next_key[0] += m
        self.consecutive = np.concatenate([self.consecutive, np.ones(m, np.int64)])
        self.missed = np.concatenate([self.missed, np.zeros(m, np.int64)])
        self.missed_s = np.concatenate([self.missed_s, np.zeros(m)])
        self.last_obs = np.concatenate([self.last_obs, boxes.astype(np.float64)])

    def _keep(self, mask: npt.NDArray[np.bool_]) -> None:
        if mask.all():
            return
        self.pos, self.vel, self.cov = self.pos[mask], self.vel[mask], self.cov[mask]
        self.ids, self.consecutive = self.ids[mask], self.consecutive[mask]
        self.keys = self.keys[mask]
        self.missed, self.missed_s = self.missed[mask], self.missed_s[mask]
        self.last_obs = self.last_obs[mask]
        if self.app is not None:
            self.app = self.app[mask]


def _associate(
    tracks: FloatArray,
    boxes: FloatArray,
    min_iou: float,
    buffers: tuple[float, ...] = (0.0,),
    veto: npt.NDArray[np.bool_] | None = None,
    veto_from: int = 0,
    buffer_min_iou: float | None = None,
) -> tuple[IntArray, IntArray, list[int], list[int]]:
    """Hungarian matching on IoU: (track idx, box idx) pairs, unmatched tracks, boxes.

    One round per buffer scale ``b`` (0: plain IoU; else C-BIoU's buffered IoU with both
    boxes widened to ``1 + 2b`` times their size), each on what earlier rounds left.
    Buffered IoU is multiplied by the plain boxes' height IoU (Hybrid-SORT's HMIoU), so a
    widened box never reaches the person standing just above or below in the image.
    Pairs with ``veto`` True are never matched in round ``veto_from`` and later. Rounds
    with a buffer (b > 0) gate at ``buffer_min_iou`` when given, else at ``min_iou``.
    """
    n_t, n_b = len(tracks), len(boxes)
    un_t, un_b = np.arange(n_t), np.arange(n_b)
    r_all: list[IntArray] = []
    c_all: list[IntArray] = []
    for k, b in enumerate(buffers):
        if len(un_t) == 0 or len(un_b) == 0:
            break
        iou = _IOU.compute(_buffered(tracks[un_t], b), _buffered(boxes[un_b], b))
        if b > 0:  # Hybrid-SORT's height modulation: stacked neighbours never overlap
            iou = iou * _height_iou(tracks[un_t], boxes[un_b])
        gated = veto is not None and k >= veto_from
        if gated:
            assert veto is not None
            iou = np.where(veto[np.ix_(un_t, un_b)], 0.0, iou)
        r, c = linear_sum_assignment(iou, maximize=True)
        gate = buffer_min_iou if b > 0 and buffer_min_iou is not None else min_iou
        ok = iou[r, c] >= gate
        if gated:
            assert veto is not None
            ok &= ~veto[un_t[r], un_b[c]]
        r_all.append(un_t[r[ok]])
        c_all.append(un_b[c[ok]])
        un_t = np.setdiff1d(un_t, un_t[r[ok]])
        un_b = np.setdiff1d(un_b, un_b[c[ok]])
    if not r_all:
        empty = np.zeros(0, np.int64)
        return empty, empty, un_t.tolist(), un_b.tolist()
    rr = np.concatenate(r_all).astype(np.int64)
    cc = np.concatenate(c_all).astype(np.int64)
    return rr, cc, un_t.tolist(), un_b.tolist()


def _height_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Overlap / union of the boxes' vertical extents (Hybrid-SORT's HIoU), M x N."""
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    low = np.minimum(a[:, None, 1], b[None, :, 1])
    high = np.maximum(a[:, None, 3], b[None, :, 3])
    overlap: FloatArray = np.clip(bottom - top, 0.0, None) / np.maximum(high - low, 1e-9)
    return overlap


def _buffered(xyxy: FloatArray, b: float) -> FloatArray:
    """Boxes widened about their centres to ``1 + 2b`` times their width and height."""
    if b == 0.0:
        return xyxy
    pad = b * (xyxy[:, 2:] - xyxy[:, :2])
    return np.concatenate([xyxy[:, :2] - pad, xyxy[:, 2:] + pad], axis=1)
