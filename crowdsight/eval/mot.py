"""MOTChallenge files and tracking scores (MOTA, IDF1, HOTA) for `crowdsight eval tracking`.

The metric arithmetic is Roboflow ``trackers.eval`` (a TrackEval-parity port of CLEAR MOT,
Identity and HOTA); this module only reads the files and pairs boxes frame by frame.

We do not call ``trackers.eval.evaluate_mot_sequence`` directly: it applies MOT17 rules
(ground-truth rows count only when their class column is 1, "pedestrian"), whereas MOT15
ground truth (e.g. TUD-Stadtmitte) stores world coordinates in columns 8-10, so every row
would be dropped. Here every ground-truth row with a non-zero ``conf`` column counts, which
is the MOT15 devkit's rule and matches the reference figures in ``PROVENANCE.md``.

Example:
    >>> gt = load_mot_txt("TUD-Stadtmitte/gt/gt.txt")  # doctest: +SKIP
    >>> res = load_mot_txt("TUD-Stadtmitte/results/CEM_test.txt")  # doctest: +SKIP
    >>> score_mot(gt, res).mota  # doctest: +SKIP
    56.4...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from trackers.eval import (
    box_iou,
    compute_clear_metrics,
    compute_hota_metrics,
    compute_identity_metrics,
)

from crowdsight.core.errors import InputError
from crowdsight.core.types import Detections
from crowdsight.tracking import Tracker
from crowdsight.tracking.offline import OfflineMode, TrackRecorder, TrackRows

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MotFrame:
    """The rows of one frame of a MOTChallenge file.

    Attributes:
        ids: Track / identity id of each row (-1 for raw detections).
        xywh: Boxes as (left, top, width, height) in pixels, N×4.
        scores: The ``conf`` column (detection score; 1 or -1 in ground truth).
    """

    ids: IntArray
    xywh: FloatArray
    scores: FloatArray

    def __len__(self) -> int:
        return len(self.ids)

    def to_detections(self) -> Detections:
        """These rows as `Detections` (xyxy boxes, confidence, class 0 = person)."""
        xyxy = self.xywh.copy()
        xyxy[:, 2:] += xyxy[:, :2]
        return Detections(
            xyxy=xyxy.astype(np.float32),
            confidence=self.scores.astype(np.float32),
            class_id=np.zeros(len(self), dtype=int),
        )


@dataclass(frozen=True, slots=True)
class MotSequence:
    """A MOTChallenge file grouped by frame (frames are 1-based, as in the file).

    Attributes:
        frames: Frame number → rows. Frames without rows are absent.
        num_frames: Highest frame number seen.
    """

    frames: dict[int, MotFrame]
    num_frames: int

    def frame(self, number: int) -> MotFrame:
        """Rows of frame ``number`` (empty when the frame has none)."""
        return self.frames.get(number, _EMPTY)

    def __iter__(self) -> Iterator[tuple[int, MotFrame]]:
        """Every frame 1..num_frames in order, including empty ones."""
        for number in range(1, self.num_frames + 1):
            yield number, self.frame(number)

    def filter_scores(self, min_score: float) -> MotSequence:
        """A copy keeping only rows whose ``conf`` is at least ``min_score``."""
        kept: dict[int, MotFrame] = {}
        for number, fr in self.frames.items():
            keep = fr.scores >= min_score
            kept[number] = MotFrame(fr.ids[keep], fr.xywh[keep], fr.scores[keep])
        return MotSequence(kept, self.num_frames)

    def every_nth(self, stride: int) -> MotSequence:
        """A copy keeping only frames 1, 1 + stride, 1 + 2·stride, … (numbers unchanged).

        Simulates a camera running at ``fps / stride``: the kept frames keep their
        numbers, so timestamps derived from them show the real gaps.
        """
        if stride < 1:
            raise InputError(f"stride must be >= 1, got {stride}")
        kept = {n: fr for n, fr in self.frames.items() if (n - 1) % stride == 0}
        return MotSequence(kept, self.num_frames)


_EMPTY = MotFrame(np.empty(0, np.int64), np.empty((0, 4), np.float64), np.empty(0, np.float64))


def load_mot_txt(path: Path | str) -> MotSequence:
    """Read a MOTChallenge 2D text file (``frame, id, x, y, w, h, conf, ...``).

    Args:
        path: Ground truth, detections (id -1) or tracker results, comma separated.

    Returns:
        The rows grouped by frame.

    Raises:
        InputError: The file is missing, empty or not in MOTChallenge layout.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"MOT file not found: {path}")
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path} is not a comma-separated MOTChallenge file: {exc}") from exc
    if table.size == 0:
        raise InputError(f"MOT file is empty: {path}")
    if table.shape[1] < 6:
        raise InputError(f"{path}: expected at least 6 columns (frame,id,x,y,w,h[,conf])")
    numbers = table[:, 0].astype(np.int64)
    frames: dict[int, MotFrame] = {}
    for number in np.unique(numbers):
        rows = table[numbers == number]
        frames[int(number)] = MotFrame(
            ids=rows[:, 1].astype(np.int64),
            xywh=rows[:, 2:6].copy(),
            scores=rows[:, 6].copy() if rows.shape[1] > 6 else np.ones(len(rows)),
        )
    return MotSequence(frames, int(numbers.max()))


def detections_to_mot_frame(detections: Detections) -> MotFrame:
    """Tracked `Detections` as MOT rows (rows without a tracker id are left out)."""
    if detections.tracker_id is None or len(detections) == 0:
        return _EMPTY
    keep = detections.tracker_id >= 0
    xyxy = detections.xyxy[keep].astype(np.float64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    conf = detections.confidence
    scores = np.ones(int(keep.sum())) if conf is None else conf[keep].astype(np.float64)
    return MotFrame(detections.tracker_id[keep].astype(np.int64), xywh, scores)


@dataclass(frozen=True, slots=True)
class MotScores:
    """Tracking scores of one sequence; rates are percentages (0-100, MOTA may be < 0).

    Attributes:
        mota: CLEAR MOT accuracy, 100·(1 − (FN + FP + IDSW) / GT).
        idf1: Identity F1 (share of boxes given the globally right identity).
        hota: Higher Order Tracking Accuracy, mean over IoU thresholds 0.05-0.95.
        id_switches: Times a ground-truth track changed its matched tracker id.
        false_positives: Tracker boxes matching no ground truth (IoU threshold).
        false_negatives: Ground-truth boxes left unmatched.
        recall: 100·TP / GT boxes.
        precision: 100·TP / tracker boxes.
        mostly_tracked: Ground-truth tracks covered for more than 80 % of their life.
        mostly_lost: Ground-truth tracks covered for less than 20 % of their life.
        fragmentations: Times a covered ground-truth track was interrupted.
    """

    mota: float
    idf1: float
    hota: float
    id_switches: int
    false_positives: int
    false_negatives: int
    recall: float
    precision: float
    mostly_tracked: int
    mostly_lost: int
    fragmentations: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict, rates rounded to 3 decimals."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _id_map(frames: list[MotFrame]) -> dict[int, int]:
    """Original ids → 0..K-1, as the metric functions expect."""
    ids = np.unique(np.concatenate([_EMPTY.ids, *(f.ids for f in frames)]))
    return {int(v): i for i, v in enumerate(ids)}


def _contiguous(ids: IntArray, mapping: dict[int, int]) -> IntArray:
    return np.array([mapping[int(i)] for i in ids], dtype=np.int64)


def score_mot(gt: MotSequence, results: MotSequence, iou_threshold: float = 0.5) -> MotScores:
    """Score tracker ``results`` against ground truth ``gt`` (MOT15 rules).

    Every ground-truth row with non-zero ``conf`` counts; result rows with a negative id
    are ignored. Boxes match when their IoU is at least ``iou_threshold`` (0.5 is the
    MOTChallenge convention; HOTA always sweeps 0.05-0.95).

    Args:
        gt: Ground truth.
        results: Tracker output in the same frame numbering.
        iou_threshold: IoU needed for a match in CLEAR MOT and Identity metrics.

    Returns:
        The scores, as percentages.
    """
    num_frames = max(gt.num_frames, results.num_frames)
    gt_frames = [_valid(gt.frame(n), gt_rows=True) for n in range(1, num_frames + 1)]
    res_frames = [_valid(results.frame(n), gt_rows=False) for n in range(1, num_frames + 1)]
    gt_map = _id_map(gt_frames)
    res_map = _id_map(res_frames)
    gt_ids = [_contiguous(f.ids, gt_map) for f in gt_frames]
    res_ids = [_contiguous(f.ids, res_map) for f in res_frames]
    sims = [
        box_iou(g.xywh, r.xywh, box_format="xywh")
        for g, r in zip(gt_frames, res_frames, strict=True)
    ]
    clear = compute_clear_metrics(gt_ids, res_ids, sims, threshold=iou_threshold)
    ident = compute_identity_metrics(gt_ids, res_ids, sims, threshold=iou_threshold)
    hota = compute_hota_metrics(gt_ids, res_ids, sims)
    return MotScores(
        mota=100.0 * float(clear["MOTA"]),
        idf1=100.0 * float(ident["IDF1"]),
        hota=100.0 * float(hota["HOTA"]),
        id_switches=int(clear["IDSW"]),
        false_positives=int(clear["CLR_FP"]),
        false_negatives=int(clear["CLR_FN"]),
        recall=100.0 * float(clear["CLR_Re"]),
        precision=100.0 * float(clear["CLR_Pr"]),
        mostly_tracked=int(clear["MT"]),
        mostly_lost=int(clear["ML"]),
        fragmentations=int(clear["Frag"]),
    )


def _valid(fr: MotFrame, *, gt_rows: bool) -> MotFrame:
    keep = fr.scores != 0 if gt_rows else fr.ids >= 0
    return MotFrame(fr.ids[keep], fr.xywh[keep], fr.scores[keep])


def track_mot_detections(
    detections: MotSequence,
    tracker: Tracker,
    fps: float = 25.0,
    stride: int = 1,
    offline: OfflineMode = "none",
) -> MotSequence:
    """Run ``tracker`` over MOT detections frame by frame and return its output as MOT rows.

    Args:
        detections: Public detections (``frame, -1, x, y, w, h, score, ...``).
        tracker: A fresh (or reset) tracker. For ``offline="linear"`` build it with
            ``keep_unconfirmed=True`` so tentative starts can be given their ids.
        fps: Frame rate used to turn frame numbers into timestamps.
        stride: Only frames 1, 1 + stride, … reach the tracker (pass the same
            ``every_nth(stride)`` sequence); the others are skipped, not fed empty.
        offline: Post-processing of the whole run (`crowdsight.tracking.offline`):
            ``"none"`` is the online output as is, ``"linear"`` adds tentative starts and
            fills short gaps by linear interpolation.

    Returns:
        The tracker output, one row per confirmed tracked box.
    """
    return track_rows_to_mot(
        record_mot_tracking(detections, tracker, fps, stride).rows(offline),
        detections.num_frames,
    )


def record_mot_tracking(
    detections: MotSequence, tracker: Tracker, fps: float = 25.0, stride: int = 1
) -> TrackRecorder:
    """Run ``tracker`` over MOT detections; the recorder holds every frame's output."""
    recorder = TrackRecorder()
    for number, frame in detections:
        if number not in detections.frames and (number - 1) % stride:
            continue  # a frame the subsampled camera never delivered
        ts_s = (number - 1) / fps
        tracked = tracker.update(frame.to_detections(), ts_s=ts_s)
        recorder.add(number, ts_s, tracked, tracker.last_track_keys)
    return recorder


def track_rows_to_mot(rows: TrackRows, num_frames: int) -> MotSequence:
    """Post-processed track rows as a MOT sequence (frame numbers = the rows' frames)."""
    out: dict[int, MotFrame] = {}
    xywh = np.concatenate([rows.xyxy[:, :2], rows.xyxy[:, 2:] - rows.xyxy[:, :2]], axis=1)
    for number in np.unique(rows.frame).tolist():
        sel = rows.frame == number
        out[number] = MotFrame(rows.tracker_id[sel], xywh[sel], rows.confidence[sel])
    return MotSequence(out, num_frames)
