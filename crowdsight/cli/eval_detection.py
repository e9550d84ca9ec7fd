"""`crowdsight eval detection`: person AP50 on MOTChallenge frames, head recall on Mall.

AP50 follows the MOT17Det conventions: pedestrians (class 1) with ``conf=1`` are the
positives; rows with ``conf=0`` and the person-like classes 2 (person on vehicle), 7 (static
person), 8 (distractor) and 12 (reflection) are *ignore* regions — a detection matching one
(IoU ≥ 0.5) is neither a true nor a false positive. Other classes (cars, occluders...) are
background. AP is the area under the interpolated precision/recall curve (VOC 2010+ "all
points"), pooled over every frame.

Mall head recall is the fraction of annotated head points that fall inside some person box:
a detector-only proxy for how many people a tracker could count in that scene.

Clear-person recall answers "is any clearly visible person left unboxed?": among the
pedestrians MOT17 marks at least `CLEAR_VISIBILITY` visible and at least
`CLEAR_MIN_HEIGHT_PX` tall, the share that a person box at the detector's *operating*
threshold matches one-to-one at IoU ≥ 0.5. Both limits were set a priori (MOT17's
visibility is the annotated unoccluded fraction; 80 px is a person whose face and clothing
an operator can make out at 1080p), not fitted to any score.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.progress import track

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError
from crowdsight.core.types import Detections, FloatArray, Frame
from crowdsight.datasets.counting import iter_mall_items
from crowdsight.sources.files import read_image

console = Console(stderr=True)

#: MOTChallenge classes treated as "don't care" for person detection.
MOT_IGNORE_CLASSES = frozenset({2, 7, 8, 12})
MOT_PEDESTRIAN = 1
#: A pedestrian at least this visible (MOT17's annotated unoccluded fraction) ...
CLEAR_VISIBILITY = 0.8
#: ... and at least this tall in pixels counts as clearly visible.
CLEAR_MIN_HEIGHT_PX = 80.0

#: A detector's ``detect`` method (any `crowdsight.perception.detector.Detector`).
DetectFn = Callable[[Frame], Detections]


@dataclass(frozen=True)
class FrameGT:
    """Ground truth of one frame: boxes to find and regions to ignore (xyxy pixels)."""

    positives: FloatArray
    ignore: FloatArray
    clear: FloatArray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


def load_mot_gt(gt_file: Path) -> dict[int, FrameGT]:
    """Per-frame person boxes of a MOTChallenge ``gt.txt`` (see the module docstring)."""
    if not gt_file.exists():
        raise InputError(f"{gt_file} not found (expected a MOTChallenge sequence folder)")
    rows = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    out: dict[int, FrameGT] = {}
    for frame in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == frame]
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        pos = (r[:, 6] != 0) & (r[:, 7] == MOT_PEDESTRIAN)
        ign = (r[:, 6] == 0) & np.isin(r[:, 7], [MOT_PEDESTRIAN, *MOT_IGNORE_CLASSES])
        ign |= np.isin(r[:, 7], list(MOT_IGNORE_CLASSES))
        vis = r[:, 8] if r.shape[1] > 8 else np.ones(len(r))
        clear = pos & (vis >= CLEAR_VISIBILITY) & (r[:, 5] >= CLEAR_MIN_HEIGHT_PX)
        out[int(frame)] = FrameGT(xyxy[pos], xyxy[ign & ~pos], xyxy[clear])
    return out


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes (len(a) × len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    iou: FloatArray = (inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)).astype(
        np.float32
    )
    return iou


@dataclass
class APAccumulator:
    """Collects scored matches frame by frame and computes AP at one IoU threshold.

    Attributes:
        iou_threshold: Minimum IoU for a detection to match a ground-truth box.
    """

    iou_threshold: float = 0.5
    scores: list[float] = field(default_factory=list)
    true_pos: list[bool] = field(default_factory=list)
    n_gt: int = 0

    def add(self, xyxy: FloatArray, confidence: FloatArray, gt: FrameGT) -> None:
        """Greedily match one frame's detections (best score first) to its ground truth."""
        self.n_gt += len(gt.positives)
        order = np.argsort(-confidence, kind="stable")
        ious = iou_matrix(xyxy[order], gt.positives)
        ign = iou_matrix(xyxy[order], gt.ignore)
        taken = np.zeros(len(gt.positives), bool)
        for k, i in enumerate(order):
            cand = np.where(taken, -1.0, ious[k]) if len(gt.positives) else np.zeros(0)
            if cand.size and cand.max() >= self.iou_threshold:
                taken[int(cand.argmax())] = True
                self.scores.append(float(confidence[i]))
                self.true_pos.append(True)
            elif ign.shape[1] and ign[k].max() >= self.iou_threshold:
                continue  # on an ignore region: neither TP nor FP
            else:
                self.scores.append(float(confidence[i]))
                self.true_pos.append(False)

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.scores.clear()
        self.true_pos.clear()
        self.n_gt = 0

    def average_precision(self) -> float:
        """Area under the monotone precision envelope over recall (all-point)."""
        if self.n_gt == 0:
            return float("nan")
        order = np.argsort(-np.asarray(self.scores), kind="stable")
        tp = np.asarray(self.true_pos, bool)[order]
        ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
        recall = np.concatenate([[0.0], ctp / self.n_gt, [ctp[-1] / self.n_gt if len(tp) else 0]])
        precision = np.concatenate([[1.0], ctp / np.maximum(ctp + cfp, 1), [0.0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        return float(np.sum(np.diff(recall) * precision[1:]))


@dataclass
class ClearRecall:
    """Clearly visible pedestrians matched by a box at the operating threshold.

    Matching is one-to-one (Hungarian on IoU), so one box around two people side by side
    finds only one of them.

    Attributes:
        conf_threshold: The detector's operating score threshold.
        iou_threshold: Minimum IoU of a match.
    """

    conf_threshold: float
    iou_threshold: float = 0.5
    found: int = 0
    total: int = 0

    def add(self, xyxy: FloatArray, confidence: FloatArray, gt: FrameGT) -> None:
        """Count one frame's clearly visible pedestrians and those a box matches."""
        from scipy.optimize import linear_sum_assignment

        self.total += len(gt.clear)
        boxes = xyxy[confidence >= self.conf_threshold]
        if len(boxes) == 0 or len(gt.clear) == 0:
            return
        iou = iou_matrix(gt.clear, boxes)
        rows, cols = linear_sum_assignment(-iou)
        self.found += int((iou[rows, cols] >= self.iou_threshold).sum())

    @property
    def recall(self) -> float:
        """Found ÷ total (NaN without clearly visible pedestrians)."""
        return self.found / self.total if self.total else float("nan")


#: crowdsight class -> (MOTChallenge class id, detector class names counted as it). MOT17
#: labels every car-like vehicle "car" (3), so buses and trucks count as cars.
MOT_CLASSES: dict[str, tuple[int, tuple[str, ...]]] = {
    "person": (MOT_PEDESTRIAN, ("person",)),
    "car": (3, ("car", "truck", "bus")),
    "bicycle": (4, ("bicycle",)),
    "motorcycle": (5, ("motorcycle",)),
}


def load_mot_class_gt(gt_file: Path, mot_class: int) -> dict[int, FrameGT]:
    """Per-frame boxes of one non-pedestrian MOT class (every row counts; no ignore regions).

    MOT17 marks non-pedestrian rows ``conf=0`` (not scored by its benchmark), so the flag is
    not used here: every annotated vehicle is a positive.
    """
    rows = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    out: dict[int, FrameGT] = {}
    empty = np.zeros((0, 4), np.float32)
    for frame in np.unique(rows[:, 0]).astype(int):
        r = rows[(rows[:, 0] == frame) & (rows[:, 7] == mot_class)]
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        out[int(frame)] = FrameGT(xyxy, empty)
    return out


def mot_sequences(root: Path) -> list[Path]:
    """MOTChallenge sequence folders (with ``img1/`` and ``gt/gt.txt``) under ``root``."""
    seqs = sorted(p.parent.parent for p in root.glob("*/gt/gt.txt"))
    if (root / "gt" / "gt.txt").exists():
        seqs = [root]
    if not seqs:
        raise InputError(f"no MOTChallenge sequences (*/gt/gt.txt) under {root}")
    return seqs


def evaluate_mot(
    detect: DetectFn, root: Path, *, limit: int | None = None
) -> tuple[float, int, int]:
    """Person AP50 of ``detect`` over every annotated frame present under ``root``.

    Frames are those with both an image and GT rows (``mot17_mini`` truncates both).

    Returns:
        (AP50, number of frames, number of positive boxes).
    """
    per_class, n_images = evaluate_mot_classes(detect, root, ("person",), limit=limit)
    acc = per_class["person"]
    return acc.average_precision(), n_images, acc.n_gt


def evaluate_mot_classes(
    detect: DetectFn,
    root: Path,
    classes: tuple[str, ...],
    *,
    limit: int | None = None,
    clear: ClearRecall | None = None,
) -> tuple[dict[str, APAccumulator], int]:
    """AP50 accumulators per crowdsight class (`MOT_CLASSES` keys) in one pass over ``root``.

    ``clear``, when given, also counts clearly visible pedestrians found by person boxes.

    Returns:
        (accumulator by class, number of frames).
    """
    gts: dict[str, dict[Path, dict[int, FrameGT]]] = {c: {} for c in classes}
    items: list[tuple[Path, int]] = []
    for seq in mot_sequences(root):
        gt_file = seq / "gt" / "gt.txt"
        person = load_mot_gt(gt_file)
        for c in classes:
            mot_id = MOT_CLASSES[c][0]
            gts[c][seq] = person if c == "person" else load_mot_class_gt(gt_file, mot_id)
        items += [(seq, f) for f in sorted(person) if (seq / "img1" / f"{f:06d}.jpg").exists()]
    items = items[:limit]
    accs = {c: APAccumulator() for c in classes}
    empty = FrameGT(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))
    for seq, frame in track(items, description="MOT frames", console=console):
        image = read_image(seq / "img1" / f"{frame:06d}.jpg")
        dets = detect(Frame(seq.name, frame - 1, 0.0, image))
        names = _class_names(dets)
        for c in classes:
            rows = np.isin(names, MOT_CLASSES[c][1])
            xyxy = dets.xyxy[rows].astype(np.float32)
            accs[c].add(xyxy, _confidence(dets)[rows], gts[c][seq].get(frame, empty))
            if clear is not None and c == "person":
                clear.add(xyxy, _confidence(dets)[rows], gts[c][seq].get(frame, empty))
    return accs, len(items)


def _class_names(d: Detections) -> npt.NDArray[np.str_]:
    from crowdsight.core.types import CLASS_NAME

    names = d.data.get(CLASS_NAME)
    if names is None:  # a detector without names: everything is a person
        return np.full(len(d), "person")
    return np.asarray(names, dtype=str)


def head_recall(xyxy: FloatArray, points: npt.NDArray[np.float64]) -> tuple[int, int]:
    """(points inside at least one box, all points); points are (x, y) pixels."""
    if len(points) == 0:
        return 0, 0
    if len(xyxy) == 0:
        return 0, len(points)
    px, py = points[:, 0:1], points[:, 1:2]
    inside = (px >= xyxy[:, 0]) & (px <= xyxy[:, 2]) & (py >= xyxy[:, 1]) & (py <= xyxy[:, 3])
    return int(inside.any(axis=1).sum()), len(points)


def evaluate_mall(detect: DetectFn, frames: Path, gt_mat: Path, rng: str | None) -> float:
    """Fraction of Mall head points covered by a person box over the frames in ``rng``."""
    hit = total = 0
    items = list(iter_mall_items(frames, gt_mat, rng))
    for i, item in enumerate(track(items, description="Mall frames", console=console)):
        dets = detect(Frame("mall", i, 0.0, read_image(item.image)))
        h, n = head_recall(dets.xyxy.astype(np.float32), item.points)
        hit, total = hit + h, total + n
    return hit / total if total else float("nan")


def _confidence(d: Detections) -> FloatArray:
    return d.confidence if d.confidence is not None else np.ones(len(d), np.float32)


@eval_app.command("detection")
def eval_detection(
    mot: Annotated[
        Path, typer.Option(help="MOTChallenge root with <seq>/img1 and <seq>/gt/gt.txt.")
    ],
    mall_frames: Annotated[
        Path | None, typer.Option(help="Mall frames folder (for head recall).")
    ] = None,
    mall_gt: Annotated[Path | None, typer.Option(help="Mall mall_gt.mat.")] = None,
    rng: Annotated[
        str | None, typer.Option("--range", help="Mall frame range, e.g. 801-2000.")
    ] = None,
    detector: Annotated[
        str,
        typer.Option(help="'ssdlite' (default), 'nanodet' or a path to a YOLO .onnx file."),
    ] = "ssdlite",
    conf: Annotated[
        float, typer.Option(help="Score threshold for AP (low: AP integrates over it).")
    ] = 0.05,
    mall_conf: Annotated[
        float | None,
        typer.Option(
            help="Operating score threshold for Mall head recall and clear-person recall "
            "(default: the detector's own)."
        ),
    ] = None,
    slice_frames: Annotated[
        bool, typer.Option("--slice/--no-slice", help="Sliced inference on large frames.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """AP50 per class (person, car, bicycle, motorcycle) on MOTChallenge frames and,
    optionally, Mall head-point recall."""
    from crowdsight.config.runtime import RuntimeConfig
    from crowdsight.perception.detector import build_detector
    from crowdsight.perception.slicing import SliceSettings

    slicing = SliceSettings() if slice_frames else None
    runtime = RuntimeConfig.from_env()  # the edge: CROWDSIGHT_PROVIDERS read here
    kwargs = {} if mall_conf is None else {"conf_threshold": mall_conf}
    operating = build_detector(detector, slicing=slicing, runtime=runtime, **kwargs)
    op_conf = float(getattr(operating, "conf_threshold", 0.4))
    clear = ClearRecall(op_conf)
    accs, n_images = evaluate_mot_classes(
        build_detector(detector, conf_threshold=conf, slicing=slicing, runtime=runtime).detect,
        mot,
        tuple(MOT_CLASSES),
        clear=clear,
    )
    per_class = {
        c: {"ap50": round(a.average_precision(), 4), "n_gt": a.n_gt}
        for c, a in accs.items()
        if a.n_gt > 0
    }
    ap = accs["person"].average_precision()
    console.print(f"MOT: person AP50 {ap:.3f} over {n_images} frames")
    for c, row in per_class.items():
        console.print(f"  {c:<10} AP50 {row['ap50']:.3f}  ({row['n_gt']} boxes)")
    console.print(
        f"  clearly visible pedestrians found: {clear.found} of {clear.total} at score ≥ {op_conf}"
    )
    recall: float | None = None
    if mall_frames is not None and mall_gt is not None:
        recall = evaluate_mall(operating.detect, mall_frames, mall_gt, rng)
        console.print(f"Mall: head recall {recall:.3f} at score ≥ {op_conf}")
    result = {
        "ap50": round(ap, 4),
        "images": n_images,
        "mall_head_recall": None if recall is None else round(recall, 4),
        "per_class": per_class,
        "detector": detector,
        "clear_person_recall": None if clear.total == 0 else round(clear.recall, 4),
        "clear_persons": clear.total,
        "operating_conf": op_conf,
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(f"AP50 {ap:.3f} images={n_images} mall_head_recall={result['mall_head_recall']}")
