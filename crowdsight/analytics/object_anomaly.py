"""Object-level anomaly: which object is unlike anything in the camera's normal footage, and why.

A camera's normal footage (say ten minutes of an ordinary day) is turned into *objects*, and
each new object is compared with its nearest normal neighbours. The idea follows Reiss &
Hoshen, "Attribute-based Representations for Accurate and Interpretable Video Anomaly
Detection" (2022): describe every object by a few interpretable attributes, model each
attribute group's normal density by k-nearest-neighbour distance, normalise each group by
how far normal objects fall from *other* normal footage, add the groups, and give a frame
the score of its most abnormal object. Here it is made CPU-cheap:

* **Objects** are the detector's boxes (people, bicycles, vehicles, bags) plus *motion
  blobs*: connected regions of optical-flow magnitude that no detection covers, so a cart or
  skateboard the detector misses is scored too (class ``"motion"``).
* **Velocity** (`ObjectMotion`): dense Farnebäck flow on a downscaled grey frame; per object
  a histogram of flow direction (8 bins) weighted by flow speed, averaged over the box, in
  *person heights per second* at that image row, so a cyclist far away and one close by get
  the same value (perspective from `SizeModel`).
* **Shape**: box height relative to a person's height at that image row, aspect ratio, and
  the class (one-hot: a class never seen in the normal footage is far from everything).
* **Density**: the mean distance to the ``k`` nearest normal objects, per group. Each group
  is divided by the 99th percentile of the same distance for normal objects of a training
  clip left out of the fit (leave-one-clip-out), so "1.0" means "as unusual as the most
  unusual 1 % of normal objects", and the groups add up on a common scale.

Every hyperparameter is fixed a priori (see `ObjectAnomalyParams`); none was chosen by a
score on labelled abnormal footage. The fitted model is a plain set of arrays and saves to
one ``.npz`` with a version and the time range of footage it learned from
(`ObjectNormality.save` / `ObjectNormality.load`), so a live camera can keep it.

Example:
    >>> import numpy as np
    >>> walk = [frame_objects([[100, 100, 110, 130]], ["person"], [[8, 0, 0, 0, 0, 0, 0, 0]])]
    >>> model = ObjectNormality.fit([walk * 20, walk * 20])
    >>> fast = frame_objects([[100, 100, 110, 130]], ["person"], [[80, 0, 0, 0, 0, 0, 0, 0]])
    >>> scores = model.score(fast)
    >>> scores.reasons[0]
    'speed 10.0× normal for this area'
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from crowdsight.core.geometry import F64
from crowdsight.core.types import CLASS_NAME, Detections

#: Bumped whenever the saved arrays or features change meaning; `load` refuses others.
MODEL_VERSION = 1
#: Direction bins of the velocity histogram (Reiss & Hoshen use 8).
N_DIR_BINS = 8
#: Class name of a moving region that no detection covers.
MOTION_CLASS = "motion"
#: Feature groups, in the order of `ObjectScores.groups` columns.
GROUPS = ("velocity", "shape")
#: Smallest per-group scale (person heights/s, log size ratio): footage with almost no
#: variety (a static test scene) must not turn a 1 % difference into a huge score.
MIN_SCALE = 0.01

StrArray = npt.NDArray[np.str_]


@dataclass(frozen=True)
class ObjectAnomalyParams:
    """Hyperparameters of the object model, all fixed a priori (none tuned on test labels).

    Attributes:
        k: Neighbours in the kNN distance. Reiss & Hoshen use k=1; 5 is used here so that a
            handful of detector mistakes in the normal footage (a "bicycle" box on a
            pedestrian) do not make the same mistake look normal forever.
        normal_quantile: Held-out normal distances are divided by this quantile: 0.99 means
            a score of 1 per group is reached by 1 % of normal objects.
        work_width: Frames are resized to this width for optical flow (Ped2's native 360:
            a person 25–45 px tall keeps a few pixels of motion per frame at 10 fps).
        blob_min_px_s: Flow speed (work-width px/s) above which a pixel is "moving" for
            motion blobs; a quarter to half of a walker's speed at Ped2's scale, well above
            Farnebäck's noise on still background (median 0.4 px/s at 10 fps).
        blob_min_area: Smallest motion blob (work-width px²), about a tenth of a distant
            person, so flicker and leaves are not objects.
        blob_margin: Detection boxes grown by this share of their size on each side are
            taken as explained motion: Farnebäck's smoothing window bleeds a detected
            person's flow a few pixels past the box, which must not become a "new" object.
        class_weight: Distance between two different classes in the shape group, in units
            of log size ratio (1.0 ≈ "2.7× taller").
    """

    k: int = 5
    normal_quantile: float = 0.99
    work_width: int = 360
    blob_min_px_s: float = 5.0
    blob_min_area: int = 40
    blob_margin: float = 0.25
    class_weight: float = 1.0


@dataclass(frozen=True)
class FrameObjects:
    """One frame's objects as a struct of arrays (frame pixels).

    Attributes:
        xyxy: N×4 boxes in frame pixels.
        class_name: N class names (``"motion"`` for undetected moving regions).
        dir_hist: N×8 speed-weighted direction histogram, frame px/s: bin ``b`` sums the
            speed of box pixels whose flow points into the 45° sector starting at
            ``b·45°`` (image axes, x right, y down), divided by the box's pixel count.
        frame_wh: The frame's (width, height).
    """

    xyxy: F64
    class_name: StrArray
    dir_hist: F64
    frame_wh: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.dir_hist.shape != (n, N_DIR_BINS):
            raise ValueError(
                f"FrameObjects needs N×4 boxes and N×{N_DIR_BINS} histograms, got "
                f"{self.xyxy.shape} and {self.dir_hist.shape}"
            )
        if self.class_name.shape != (n,):
            raise ValueError(f"{n} boxes but {self.class_name.shape[0]} class names")

    def __len__(self) -> int:
        return len(self.xyxy)

    @property
    def flow_xy(self) -> F64:
        """N×2 mean flow (frame px/s), recovered from the histogram's bin centres."""
        return hist_to_flow(self.dir_hist)


def hist_to_flow(hist: F64) -> F64:
    """N×2 flow vectors from N×8 direction histograms (each bin at its sector's centre)."""
    angles = (np.arange(N_DIR_BINS) + 0.5) * 2 * np.pi / N_DIR_BINS
    out: F64 = np.stack([hist @ np.cos(angles), hist @ np.sin(angles)], 1)
    return out


def frame_objects(
    xyxy: npt.ArrayLike,
    class_name: Sequence[str],
    dir_hist: npt.ArrayLike,
    frame_wh: tuple[int, int] = (360, 240),
) -> FrameObjects:
    """`FrameObjects` from plain lists (tests, examples)."""
    return FrameObjects(
        np.asarray(xyxy, np.float64).reshape(-1, 4),
        np.asarray(class_name, dtype=np.str_).reshape(-1),
        np.asarray(dir_hist, np.float64).reshape(-1, N_DIR_BINS),
        frame_wh,
    )


def empty_objects(frame_wh: tuple[int, int]) -> FrameObjects:
    """A frame without objects."""
    return frame_objects(np.zeros((0, 4)), [], np.zeros((0, N_DIR_BINS)), frame_wh)


# --- measuring objects ----------------------------------------------------------------------


def _box_sums(integral: F64, boxes: npt.NDArray[np.int64]) -> F64:
    """Per-box sums of every channel from a (C, H+1, W+1) integral image."""
    x0, y0, x1, y1 = boxes.T
    out: F64 = (
        integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    ).T
    return out


def motion_blobs(
    moving: npt.NDArray[np.bool_], covered: npt.NDArray[np.bool_], min_area: int
) -> npt.NDArray[np.int64]:
    """Boxes (x0, y0, x1, y1, work pixels, exclusive ends) of moving regions nobody detected.

    Args:
        moving: H×W mask of moving pixels.
        covered: H×W mask of pixels already explained by detections (their boxes, grown by
            the flow's bleed): they are removed before regions are formed.
        min_area: Smallest region, in pixels.
    """
    # Opening removes speckle; closing joins the limbs and wheels of one object.
    opened = cv2.morphologyEx(
        (moving & ~covered).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
    )
    mask = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = [(x, y, x + w, y + h) for x, y, w, h, a in np.asarray(stats)[1:n] if a >= min_area]
    return np.asarray(boxes, np.int64).reshape(-1, 4)


class ObjectMotion:
    """Turns frames (+ the detector's boxes) into `FrameObjects` with their velocity.

    Dense Farnebäck flow runs between consecutive frames at ``work_width``; each detection
    and each uncovered motion blob gets a speed-weighted direction histogram from per-bin
    integral images, so the cost per object is constant.

    Args:
        params: See `ObjectAnomalyParams` (``work_width``, ``blob_*``).
    """

    def __init__(self, params: ObjectAnomalyParams | None = None) -> None:
        self.params = params or ObjectAnomalyParams()
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame."""
        self._prev: npt.NDArray[np.uint8] | None = None
        self._prev_ts: float | None = None

    def _grey(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], float]:
        g = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image)
        h, w = g.shape
        scale = self.params.work_width / w
        if scale != 1.0:
            size = (self.params.work_width, max(1, round(h * scale)))
            g = np.asarray(cv2.resize(g, size, interpolation=cv2.INTER_AREA))
        return g.astype(np.uint8), scale

    def flow(self, image: npt.NDArray[np.uint8], ts_s: float) -> tuple[F64, float] | None:
        """(H×W×2 flow in work px/s, work scale) since the previous frame; None for the first."""
        g, scale = self._grey(image)
        prev, prev_ts = self._prev, self._prev_ts
        self._prev, self._prev_ts = g, ts_s
        if prev is None or prev_ts is None or prev.shape != g.shape or ts_s <= prev_ts:
            return None
        flow = np.asarray(
            cv2.calcOpticalFlowFarneback(prev, g, None, 0.5, 3, 9, 3, 5, 1.1, 0),  # type: ignore[call-overload]
            dtype=np.float64,
        )
        return flow / (ts_s - prev_ts), scale

    def measure(
        self, flow: F64, scale: float, detections: Detections, frame_wh: tuple[int, int]
    ) -> FrameObjects:
        """Objects of one frame from its flow (work px/s) and detections (frame pixels)."""
        p = self.params
        hh, ww = flow.shape[:2]
        f32 = flow.astype(np.float32)
        speed_f32, angle = cv2.cartToPolar(f32[..., 0], f32[..., 1])
        speed = np.asarray(speed_f32)
        bins = np.minimum((np.asarray(angle) * (N_DIR_BINS / (2 * np.pi))).astype(np.int32), 7)
        # One integral image per direction bin: any box's histogram in four lookups.
        integral = np.empty((N_DIR_BINS, hh + 1, ww + 1))
        for b in range(N_DIR_BINS):
            chan = np.where(bins == b, speed, 0).astype(np.float32)
            integral[b] = cv2.integral(chan, sdepth=cv2.CV_64F)

        det_xyxy = np.asarray(detections.xyxy, np.float64).reshape(-1, 4)
        names = detections.data.get(CLASS_NAME)
        det_names = (
            np.asarray(names, dtype=np.str_)
            if names is not None
            else np.asarray(["person"] * len(det_xyxy), dtype=np.str_)
        )
        work = np.clip(np.round(det_xyxy * scale), 0, [ww, hh, ww, hh]).astype(np.int64)
        work[:, 2:] = np.maximum(work[:, 2:], work[:, :2] + 1)
        work = np.minimum(work, [ww - 1, hh - 1, ww, hh])
        covered = np.zeros((hh, ww), bool)
        for x0, y0, x1, y1 in work:
            mx, my = round(p.blob_margin * (x1 - x0)), round(p.blob_margin * (y1 - y0))
            covered[max(y0 - my, 0) : y1 + my, max(x0 - mx, 0) : x1 + mx] = True
        blobs = motion_blobs(speed >= p.blob_min_px_s, covered, p.blob_min_area)
        boxes = np.concatenate([work, blobs])
        area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1)
        hist = _box_sums(integral, boxes) / area[:, None] / scale
        xyxy = np.concatenate([det_xyxy, blobs / scale]).astype(np.float64)
        classes = np.concatenate(
            [det_names, np.asarray([MOTION_CLASS] * len(blobs), dtype=np.str_)]
        )
        return FrameObjects(xyxy.reshape(-1, 4), classes, hist.reshape(-1, N_DIR_BINS), frame_wh)

    def update(
        self, image: npt.NDArray[np.uint8], ts_s: float, detections: Detections
    ) -> FrameObjects | None:
        """Objects of this frame (None for the first frame: no flow yet)."""
        got = self.flow(image, ts_s)
        if got is None:
            return None
        h, w = image.shape[:2]
        return self.measure(got[0], got[1], detections, (w, h))


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeModel:
    """A person's box height as a straight line of the box's bottom row (perspective).

    ``height(y) = a + b·y`` fitted on the median person height in each of ``bands`` bands of
    image rows (robust to a few wrong boxes), clipped below at 2 % of the frame height.
    """

    a: float
    b: float
    min_h: float

    @classmethod
    def fit(cls, bottoms: F64, heights: F64, frame_h: int, bands: int = 10) -> SizeModel:
        """Fit from person boxes' bottom rows and heights (frame pixels)."""
        min_h = 0.02 * frame_h
        if len(heights) == 0:
            raise ValueError("no person detections in the normal footage: cannot learn sizes")
        edges = np.linspace(0, frame_h, bands + 1)
        ys, hs, ws = [], [], []
        for lo, hi in itertools.pairwise(edges):
            sel = (bottoms >= lo) & (bottoms < hi)
            if sel.sum() >= 5:
                ys.append(float(np.median(bottoms[sel])))
                hs.append(float(np.median(heights[sel])))
                ws.append(float(np.sqrt(sel.sum())))
        if len(ys) < 2:
            return cls(float(np.median(heights)), 0.0, min_h)
        b, a = np.polyfit(ys, hs, 1, w=ws)
        return cls(float(a), float(b), min_h)

    def height(self, bottom_y: F64) -> F64:
        """Expected person height (frame px) for boxes ending at row ``bottom_y``."""
        out: F64 = np.maximum(self.a + self.b * bottom_y, self.min_h)
        return out


@dataclass(frozen=True)
class ObjectScores:
    """Per-object anomaly scores of one frame.

    Attributes:
        xyxy: N×4 boxes (frame pixels).
        class_name: N class names.
        groups: N×2 normalised group scores (`GROUPS`: velocity, shape); 1.0 is the 99th
            percentile of held-out normal objects.
        total: N summed scores.
        reasons: One sentence per object saying what is unusual about it.
    """

    xyxy: F64
    class_name: StrArray
    groups: F64
    total: F64
    reasons: list[str] = field(default_factory=list)

    @property
    def frame_score(self) -> float:
        """The frame's score: its most abnormal object's (0.0 without objects)."""
        return float(self.total.max()) if len(self.total) else 0.0

    @property
    def top(self) -> int | None:
        """Row of the most abnormal object, or None without objects."""
        return int(np.argmax(self.total)) if len(self.total) else None


def _knn_distance(tree: cKDTree, x: F64, k: int) -> F64:
    """Mean distance to the ``k`` nearest points of ``tree`` (k capped by its size)."""
    if len(x) == 0:
        return np.zeros(0)
    kk = min(k, tree.n)
    d, _ = tree.query(x, k=kk)
    out: F64 = np.asarray(d, np.float64).reshape(len(x), kk).mean(1)
    return out


class ObjectNormality:
    """A camera's model of normal objects; scores new objects with reasons.

    Build it with `fit` from normal footage (clips of `FrameObjects`), then call `score` on
    each frame's objects. All state is plain arrays: `save`/`load` round-trip it.

    Args:
        params: Hyperparameters (a priori; see `ObjectAnomalyParams`).
        size: Person height per image row.
        classes: Class names of the normal footage, in one-hot order.
        velocity: M×8 normal velocity features.
        shape: M×(2+C) normal shape features.
        scale: Per-group divisor (99th percentile of held-out normal distances).
        speed_bands: Median normal speed (person heights/s) in ten bands of image rows, for
            the "speed 3.1× normal for this area" reason.
        frame_wh: Frame size the model was learned at.
        footage: (start, end) of the normal footage, seconds (epoch seconds when live).
    """

    def __init__(
        self,
        params: ObjectAnomalyParams,
        size: SizeModel,
        classes: list[str],
        velocity: F64,
        shape: F64,
        scale: F64,
        speed_bands: F64,
        frame_wh: tuple[int, int],
        footage: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.params = params
        self.size = size
        self.classes = classes
        self.velocity = velocity
        self.shape = shape
        self.scale = scale
        self.speed_bands = speed_bands
        self.frame_wh = frame_wh
        self.footage = footage
        self._trees = (cKDTree(velocity), cKDTree(shape))
        counts = (shape[:, 2:] > 0).sum(0)
        self._class_counts = {c: int(n) for c, n in zip(classes, counts, strict=True)}

    # features -----------------------------------------------------------------------------

    @staticmethod
    def _features(
        objs: FrameObjects, size: SizeModel, classes: list[str], class_weight: float
    ) -> tuple[F64, F64]:
        """(velocity N×8 in person heights/s, shape N×(2+C)) of a frame's objects."""
        h_exp = size.height(objs.xyxy[:, 3])
        vel: F64 = objs.dir_hist / h_exp[:, None]
        w = np.maximum(objs.xyxy[:, 2] - objs.xyxy[:, 0], 1.0)
        h = np.maximum(objs.xyxy[:, 3] - objs.xyxy[:, 1], 1.0)
        onehot = np.zeros((len(objs), len(classes)))
        index = {c: i for i, c in enumerate(classes)}
        for r, c in enumerate(objs.class_name):
            if str(c) in index:
                onehot[r, index[str(c)]] = class_weight
        shape: F64 = np.concatenate(
            [np.log(h / h_exp)[:, None], np.log(w / h)[:, None], onehot], axis=1
        )
        return vel, shape

    # fitting ------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        clips: Sequence[Sequence[FrameObjects]],
        params: ObjectAnomalyParams | None = None,
        footage: tuple[float, float] = (0.0, 0.0),
        folds: int = 5,
    ) -> ObjectNormality:
        """Learn normal objects from normal footage.

        Args:
            clips: Normal footage as clips (lists of frames' objects). The per-group scale is
                measured leave-one-clip-out; a single clip is cut into ``folds`` contiguous
                parts for that.
            params: Hyperparameters.
            footage: (start, end) time of the footage, stored with the model.
            folds: Parts a single clip is cut into.

        Raises:
            ValueError: no objects, or no person detections to learn sizes from.
        """
        p = params or ObjectAnomalyParams()
        parts = [list(c) for c in clips if len(c)]
        if len(parts) == 1:
            one = parts[0]
            cuts = np.linspace(0, len(one), folds + 1).astype(int)
            parts = [one[a:b] for a, b in itertools.pairwise(cuts) if b > a]
        frames = [f for part in parts for f in part]
        if not frames or sum(len(f) for f in frames) == 0:
            raise ValueError("the normal footage has no objects to learn from")
        frame_wh = frames[0].frame_wh
        xyxy = np.concatenate([f.xyxy for f in frames])
        names = np.concatenate([f.class_name for f in frames])
        person = names == "person"
        size = SizeModel.fit(
            xyxy[person, 3], xyxy[person, 3] - xyxy[person, 1], max(frame_wh[1], 1)
        )
        classes = sorted({str(c) for c in names})
        feats = [[cls._features(f, size, classes, p.class_weight) for f in part] for part in parts]
        vel_parts = [np.concatenate([v for v, _ in part]) for part in feats]
        shape_parts = [np.concatenate([s for _, s in part]) for part in feats]
        scale = np.ones(len(GROUPS))
        if len(parts) > 1:
            for g, group in enumerate((vel_parts, shape_parts)):
                held: list[F64] = []
                for i in range(len(parts)):
                    rest = np.concatenate([x for j, x in enumerate(group) if j != i])
                    if len(rest) and len(group[i]):
                        held.append(_knn_distance(cKDTree(rest), group[i], p.k))
                d = np.concatenate(held) if held else np.zeros(0)
                if len(d):
                    scale[g] = max(float(np.quantile(d, p.normal_quantile)), MIN_SCALE)
        vel = np.concatenate(vel_parts)
        speed = np.hypot(*hist_to_flow(vel).T)
        band = cls._band(xyxy[:, 3], frame_wh[1])
        bands = np.array(
            [float(np.median(speed[band == b])) if (band == b).any() else np.nan for b in range(10)]
        )
        bands = np.where(np.isnan(bands), float(np.median(speed)), bands)
        return cls(
            p, size, classes, vel, np.concatenate(shape_parts), scale, bands, frame_wh, footage
        )

    @staticmethod
    def _band(bottom_y: F64, frame_h: int) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = np.clip(
            (bottom_y * 10 / max(frame_h, 1)).astype(np.int64), 0, 9
        )
        return out

    # scoring ------------------------------------------------------------------------------

    def score(self, objs: FrameObjects) -> ObjectScores:
        """Score each object of a frame against the normal footage, with a reason.

        Raises:
            ValueError: the frame is not the size the model learned (another camera or a
                changed stream resolution: learn normal again).
        """
        if objs.frame_wh != self.frame_wh and 0 not in objs.frame_wh:
            raise ValueError(
                f"frame is {objs.frame_wh[0]}×{objs.frame_wh[1]} but the normal model was "
                f"learned at {self.frame_wh[0]}×{self.frame_wh[1]}: learn normal again"
            )
        vel, shape = self._features(objs, self.size, self.classes, self.params.class_weight)
        groups = np.stack(
            [
                _knn_distance(tree, x, self.params.k) / s
                for tree, x, s in zip(self._trees, (vel, shape), self.scale, strict=True)
            ],
            axis=1,
        ).reshape(len(objs), len(GROUPS))
        total = groups.sum(1)
        speed = np.hypot(*hist_to_flow(vel).T)
        normal = self.speed_bands[self._band(objs.xyxy[:, 3], self.frame_wh[1])]
        rel_h = np.exp(shape[:, 0]) if len(shape) else np.zeros(0)
        reasons = [
            self._reason(str(objs.class_name[i]), groups[i], speed[i], normal[i], rel_h[i])
            for i in range(len(objs))
        ]
        return ObjectScores(objs.xyxy, objs.class_name, groups, total, reasons)

    def _reason(self, name: str, groups: F64, speed: float, normal: float, rel_h: float) -> str:
        """What is unusual about one object, in an operator's words."""
        if int(np.argmax(groups)) == 0:
            ratio = speed / max(normal, 1e-6)
            if ratio >= 1.5:
                return f"speed {ratio:.1f}× normal for this area"
            if ratio <= 0.5:
                return f"speed {ratio:.1f}× normal for this area (unusually slow)"
            return "moving in a direction unusual for this area"
        if self._class_counts.get(name, 0) < self.params.k:
            what = "moving object" if name == MOTION_CLASS else name
            return f"a {what}: rarely or never seen in the normal footage"
        return f"object size unlike anything seen here ({rel_h:.1f}× a person's height here)"

    # persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the model to one ``.npz`` (arrays + a JSON header with version and footage)."""
        meta = {
            "version": MODEL_VERSION,
            "params": asdict(self.params),
            "size": asdict(self.size),
            "classes": self.classes,
            "frame_wh": list(self.frame_wh),
            "footage_s": list(self.footage),
        }
        with Path(path).open("wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.array(json.dumps(meta)),
                velocity=self.velocity,
                shape=self.shape,
                scale=self.scale,
                speed_bands=self.speed_bands,
            )

    @classmethod
    def load(cls, path: Path) -> ObjectNormality:
        """Read a model written by `save`.

        Raises:
            ValueError: not such a file, or written by another model version.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: np.asarray(z[k], np.float64) for k in ("velocity", "shape")}
                scale = np.asarray(z["scale"], np.float64)
                bands = np.asarray(z["speed_bands"], np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not an object-anomaly model: {exc}") from None
        if meta.get("version") != MODEL_VERSION:
            raise ValueError(
                f"{path} holds an object-anomaly model of version {meta.get('version')}, "
                f"this crowdsight reads version {MODEL_VERSION}: learn normal again"
            )
        w, h = meta["frame_wh"]
        start, end = meta["footage_s"]
        return cls(
            ObjectAnomalyParams(**meta["params"]),
            SizeModel(**meta["size"]),
            list(meta["classes"]),
            arrays["velocity"],
            arrays["shape"],
            scale,
            bands,
            (int(w), int(h)),
            (float(start), float(end)),
        )


# --- offline (whole clips) ------------------------------------------------------------------


def clip_objects(
    frames: Iterable[tuple[npt.NDArray[np.uint8], Detections]],
    fps: float,
    params: ObjectAnomalyParams | None = None,
) -> list[FrameObjects]:
    """Objects of every frame of a clip, from (image, its detections) pairs in order.

    Frame 0 has no previous frame: its objects get the flow from frame 0 to frame 1, so
    every frame is scored (none skipped, as the frame-level protocol requires).
    """
    motion = ObjectMotion(params)
    out: list[FrameObjects] = []
    first: tuple[Detections, tuple[int, int]] | None = None
    for i, (image, dets) in enumerate(frames):
        h, w = image.shape[:2]
        got = motion.flow(image, i / fps)
        if got is None:
            first = (dets, (w, h))
            continue
        if first is not None:
            out.append(motion.measure(got[0], got[1], *first))
            first = None
        out.append(motion.measure(got[0], got[1], dets, (w, h)))
    if first is not None:
        raise ValueError("a clip needs at least 2 frames")
    return out


def save_clip_objects(path: Path, clip: Sequence[FrameObjects]) -> None:
    """Write a clip's objects to one ``.npz`` (measuring them is the slow part)."""
    counts = np.array([len(f) for f in clip], np.int64)
    wh = np.array([f.frame_wh for f in clip], np.int64).reshape(-1, 2)
    with Path(path).open("wb") as fh:
        np.savez_compressed(
            fh,
            version=np.array(MODEL_VERSION),
            counts=counts,
            frame_wh=wh,
            xyxy=np.concatenate([f.xyxy for f in clip]).reshape(-1, 4),
            class_name=np.concatenate([f.class_name for f in clip]).astype(np.str_),
            dir_hist=np.concatenate([f.dir_hist for f in clip]).reshape(-1, N_DIR_BINS),
        )


def load_clip_objects(path: Path) -> list[FrameObjects]:
    """Read what `save_clip_objects` wrote."""
    with np.load(Path(path), allow_pickle=False) as z:
        if int(z["version"]) != MODEL_VERSION:
            raise ValueError(f"{path}: objects of another version, measure them again")
        ends = np.cumsum(z["counts"])
        starts = ends - z["counts"]
        xyxy, names, hist = z["xyxy"], z["class_name"], z["dir_hist"]
        return [
            FrameObjects(
                np.asarray(xyxy[a:b], np.float64),
                np.asarray(names[a:b], np.str_),
                np.asarray(hist[a:b], np.float64),
                (int(w), int(h)),
            )
            for a, b, (w, h) in zip(starts, ends, z["frame_wh"], strict=True)
        ]
