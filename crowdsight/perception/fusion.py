"""Fused crowd count: detection where people are large, density where they are small.

DecideNet (Liu et al., CVPR 2018) observed that detectors count sparse, large people better
than density maps, and density maps count small, packed people better than detectors, and
fused the two per region. crowdsight does the same without learning the fusion:

* a person box is *reliable* when it is at least `RELIABLE_HEIGHT_PX` tall (the detector
  finds such people almost always and rarely twice) — each reliable box counts one person;
* every density cell whose centre lies inside a reliable box is dropped, so the person the
  box stands for is not counted again by the density map (no double counting at the seam);
* the rest of the density map counts everybody else (small, far or packed people).

``fused = reliable boxes + density outside them``. Both inputs are reported too.

DecideNet fuses per *region*, not only per box: where the camera shows people large, the
density model (trained on dense, small heads) sees textures — planters, hedges, railings — as
crowds, and its mass there is mostly false, while the detector finds nearly everyone. So
when a frame shows at least `ZONE_MIN_BOXES` reliable people, the perspective of its person
boxes (`crowdsight.perception.perspective`) marks the rows where a person is expected to be
at least `RELIABLE_HEIGHT_PX` tall: the *detection zone*. There every person box counts one
and the density is dropped; elsewhere the per-box rule above holds. The zone reaches no higher
than the highest tall box: in a packed crowd the detector finds only the near rows, and a
height line through them extrapolated upwards would hand the far crowd to it (ShanghaiTech A,
computed from cached boxes and maps: MAE 76.75 → 73.89; an image of 549 people had read 20).

Where the frame's person boxes agree on a flat floor seen from eye level
(`perspective.fit_ground_plane`, `GroundPlane.eye_level`), the floor also says where heads
*cannot* be: above the band of rows where heads of people up to
`RELIABLE_HEIGHT_PX` tall lie (sky, tree tops, façades) and below it (where everybody is
taller, so detection counts). Density outside the band is dropped too; person boxes whose
head is there count one each. On an eye-level street camera this removes the density model's
"crowds" in foliage and on the pavement. From a higher camera the horizon is extrapolated
from the people the detector sees (in a packed crowd, only the near ones), and the band is not
used: on ShanghaiTech A a band at any camera height dropped real far crowds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import CLASS_NAME, DensityMap, Detections
from crowdsight.perception.perspective import GroundPlane, fit_ground_plane, fit_heights, head_rows

#: Person boxes at least this tall (frame px) are counted by detection. Chosen a priori on
#: Mall training frames 1–800 (``benchmarks/density_scale.py --part scale``): 143 px is the
#: 90th percentile of the detector's person boxes there, i.e. people taller than nearly all
#: those the density model was seen to count well (Mall MAE ≈ 3–4 at native scale); beyond
#: it detection takes over. On Mall training frames the fused count's MAE for thresholds
#: 64/96/128/160/192/never was 4.64/4.55/4.41/4.21/4.20/4.14 — Mall holds almost no people
#: that tall, so it cannot favour fusion; it shows the threshold costs little there.
RELIABLE_HEIGHT_PX = 144.0
#: Reliable (tall) person boxes a frame needs before it has a detection zone: the zone is
#: where the camera *shows* people large, not where a perspective line fitted on small
#: people extrapolates to large ones (on Mall training frames 1–800 a zone from any 8 boxes
#: opened in 28 of 80 frames, at the bottom edge, and cost 0.15 MAE). 8 is the same
#: a-priori minimum as the density scale estimate (`density_scale.scale_for_heights`).
ZONE_MIN_BOXES = 8


@dataclass(frozen=True)
class FusedCount:
    """Counts of one frame: detection, density and fused."""

    detection: float
    """All person boxes."""
    density: float
    """The whole density map."""
    fused: float
    """Reliable boxes plus density outside them."""
    reliable: int
    """How many boxes were counted by detection."""
    zone_rows: int = 0
    """Rows of the density map counted by detection alone (0: none)."""
    horizon_px: float | None = None
    """Row of the floor's horizon when the boxes agreed on one (see the module)."""


def person_boxes(detections: Detections) -> npt.NDArray[np.float32]:
    """xyxy of the rows the detector found as people (all rows when no class names are given).

    Boxes made from density peaks (``data["origin"] == "density"``) are left out: they stand
    for density mass already, and must not feed the density scale or the fused count back.
    """
    names = detections.data.get(CLASS_NAME)
    xyxy = np.asarray(detections.xyxy, np.float32).reshape(-1, 4)
    keep = np.ones(len(xyxy), bool)
    if names is not None:
        keep &= np.asarray(names) == "person"
    origin = detections.data.get("origin")
    if origin is not None:
        keep &= np.asarray(origin) != "density"
    return np.asarray(xyxy[keep], np.float32)


def covered_cells(density: DensityMap, boxes_xyxy: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Cells of the density map whose centre lies inside any of the boxes (frame px)."""
    h, w = density.density.shape
    sx, sy = density.scale_xy
    cx = (np.arange(w) + 0.5) * sx
    cy = (np.arange(h) + 0.5) * sy
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in np.asarray(boxes_xyxy, np.float64).reshape(-1, 4):
        cols = (cx >= x0) & (cx < x1)
        rows = (cy >= y0) & (cy < y1)
        mask |= rows[:, None] & cols[None, :]
    return mask


def fuse_counts(
    density: DensityMap | None,
    detections: Detections | None,
    reliable_height_px: float = RELIABLE_HEIGHT_PX,
    *,
    regional: bool = True,
    ground: GroundPlane | Literal["fit"] | None = "fit",
) -> FusedCount:
    """Detection, density and fused counts of one frame.

    Without a density map the fused count is the detection count; without detections it is
    the density count. When the map carries a region of interest, only boxes whose feet
    (bottom centre) stand inside it are counted, like the density. With ``regional`` (the
    default) and at least `ZONE_MIN_BOXES` person boxes that tall, rows where people are
    expected ``reliable_height_px`` tall or taller are counted by detection alone, and rows
    outside the floor's head band are dropped (see the module). ``ground`` is the floor to
    use: ``"fit"`` (default) fits it on this frame's boxes, None uses none, and a pipeline
    passes the one it fits on many frames' boxes.
    """
    boxes = person_boxes(detections) if detections is not None else np.zeros((0, 4), np.float32)
    n_det = float(len(boxes))
    if density is None:
        return FusedCount(n_det, float("nan"), n_det, int(n_det))
    split = _split(density, boxes, reliable_height_px, regional, ground)
    return _counts(density, boxes, split)


def fused_density(
    density: DensityMap,
    detections: Detections | None,
    reliable_height_px: float = RELIABLE_HEIGHT_PX,
    *,
    regional: bool = True,
    ground: GroundPlane | Literal["fit"] | None = "fit",
) -> DensityMap:
    """The map the fused count sums to, for heatmaps and zone counts.

    The density where detection counts (under reliable boxes, in the detection zone) is
    replaced by one person per counted box, as a blob at the box's head (a Gaussian a third
    of the box width wide, kept inside the box); the rest of the map is the density model's.
    ``fused_density(...).count`` equals ``fuse_counts(...).fused``.
    """
    return fuse(density, detections, reliable_height_px, regional=regional, ground=ground)[1]


def fuse(
    density: DensityMap,
    detections: Detections | None,
    reliable_height_px: float = RELIABLE_HEIGHT_PX,
    *,
    regional: bool = True,
    ground: GroundPlane | Literal["fit"] | None = "fit",
) -> tuple[FusedCount, DensityMap]:
    """`fuse_counts` and `fused_density` of one frame, deciding the split once."""
    boxes = person_boxes(detections) if detections is not None else np.zeros((0, 4), np.float32)
    split = _split(density, boxes, reliable_height_px, regional, ground)
    return _counts(density, boxes, split), _replaced(density, split)


def _counts(density: DensityMap, boxes: npt.NDArray[np.float32], split: _Split) -> FusedCount:
    rest = float(density.density[~split.dropped].sum(dtype=np.float64))
    return FusedCount(
        float(len(boxes)),
        density.count,
        len(split.counted) + rest,
        len(split.counted),
        split.zone_rows,
        split.horizon_px,
    )


def _replaced(density: DensityMap, split: _Split) -> DensityMap:
    """``density`` with the split's dropped cells replaced by its counted boxes' blobs."""
    if not split.dropped.any():
        return density
    out = np.where(split.dropped, 0.0, density.density).astype(np.float32)
    h, w = out.shape
    sx, sy = density.scale_xy
    cx = (np.arange(w) + 0.5) * sx
    cy = (np.arange(h) + 0.5) * sy
    for box in split.counted:
        cells = covered_cells(density, box[None])
        if not cells.any():  # smaller than a cell: all of it where its centre is
            col = min(int((box[0] + box[2]) / 2 / sx), w - 1)
            row = min(int((box[1] + box[3]) / 2 / sy), h - 1)
            out[max(row, 0), max(col, 0)] += 1.0
            continue
        # A blob at the head, like the density model's own (it is trained on head points):
        # a Gaussian of a third of the box width around the head, inside the box.
        bw = max(float(box[2] - box[0]), 1.0)
        head_y = float(head_rows(box[None])[0])
        gx = np.exp(-0.5 * ((cx - (box[0] + box[2]) / 2) / (bw / 3)) ** 2)
        gy = np.exp(-0.5 * ((cy - head_y) / (bw / 3)) ** 2)
        weight = np.where(cells, gy[:, None] * gx[None, :], 0.0)
        total = float(weight.sum())
        if total <= 1e-12:  # the blob falls between cell centres: spread over the box
            weight, total = cells.astype(np.float64), float(cells.sum())
        out += (weight / total).astype(np.float32)
    return DensityMap(out, density.resolution_wh, roi_mask=density.roi_mask)


@dataclass(frozen=True)
class _Split:
    counted: npt.NDArray[np.float32]
    """Person boxes counted one each (xyxy)."""
    dropped: npt.NDArray[np.bool_]
    """Density cells the counted boxes and the detection zone replace."""
    zone_rows: int
    horizon_px: float | None = None


def _split(
    density: DensityMap,
    boxes: npt.NDArray[np.float32],
    reliable_px: float,
    regional: bool,
    ground: GroundPlane | Literal["fit"] | None = "fit",
) -> _Split:
    """Which boxes count one each and which density cells they replace."""
    h = density.density.shape[0]
    zone = np.zeros(h, bool)
    rows_y = (np.arange(h) + 0.5) * density.scale_xy[1]
    is_tall = (boxes[:, 3] - boxes[:, 1]) >= reliable_px
    if regional and int(is_tall.sum()) >= ZONE_MIN_BOXES:
        model = fit_heights(boxes)
        if model is not None:
            # Only rows where the frame shows tall people: from the highest tall box's top
            # down (nearer the camera people are larger still). Above it the line through
            # the boxes is extrapolated, and in a packed crowd, where the detector finds only
            # the near rows, it claims every row for detection (see `ZONE_MIN_BOXES`).
            shown = rows_y >= float(boxes[is_tall, 1].min())
            zone = (model.height_at(rows_y) >= reliable_px) & shown
    floor: GroundPlane | None = None
    if regional:
        fitted = fit_ground_plane(boxes) if ground == "fit" else ground
        floor = fitted if isinstance(fitted, GroundPlane) and fitted.eye_level else None
    if floor is not None:
        lo, hi = floor.head_band(reliable_px)
        zone |= (rows_y < lo) | (rows_y > hi)
    counted = (boxes[:, 3] - boxes[:, 1]) >= reliable_px
    if zone.any():
        row = np.clip((head_rows(boxes) / density.scale_xy[1]).astype(int), 0, h - 1)
        counted |= zone[row]
    reliable = boxes[counted]
    if density.roi_mask is not None and len(reliable):
        reliable = reliable[_feet_inside(density, reliable)]
    dropped = covered_cells(density, reliable) | zone[:, None]
    return _Split(reliable, dropped, int(zone.sum()), floor.horizon if floor else None)


def _feet_inside(density: DensityMap, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Whether each box's bottom centre lies in a counted cell of the map's region of interest."""
    assert density.roi_mask is not None
    h, w = density.density.shape
    sx, sy = density.scale_xy
    col = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2 / sx).astype(int), 0, w - 1)
    row = np.clip((boxes[:, 3] / sy - 1e-6).astype(int), 0, h - 1)
    return np.asarray(density.roi_mask[row, col], bool)
