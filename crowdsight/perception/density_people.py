"""People the detector missed, found as peaks of the density map.

In a packed crowd a detector sees heads and shoulders, not people, and misses most of them;
the density model (CSRNet) is trained on exactly those head points. Each person is a small
blob of mass ≈ 1 in its map, so a local maximum whose neighbourhood holds enough mass is a
head. `missed_people` turns the peaks that no person box covers into person boxes, sized by
the perspective of the boxes the detector did find in the same frame (people higher in the
image are farther away and smaller), so the tracker, zones and line counts see them too.

The boxes are marked ``data["origin"] == "density"`` and carry the peak's mass as their
confidence, so they can be told apart (and drawn differently) downstream.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.core.types import CLASS_NAME, DensityMap, Detections, FloatArray
from crowdsight.perception.fusion import covered_cells
from crowdsight.perception.perspective import HEAD_OFFSET, WIDTH_RATIO, HeightModel, fit_heights

ORIGIN = "origin"


#: How peaks become heads. A fixed mass threshold needs tuning per scene and scale; instead
#: the map's own count decides: the ``round(count)`` strongest local maxima (by the mass of
#: their 3×3-cell window) are the heads. On Mall training frames 1–800 (every 10th frame,
#: `benchmarks/density_people.py --part choose`) this parameter-free rule matched heads
#: with F1 0.49 (16 px) / 0.55 (24 px), as good as the best of nine fixed thresholds (0.49
#: at 0.15 people per window) and far better than the rest (0.43 … 0.03).
def density_peaks(
    density: DensityMap,
    min_mass: float | None = None,
    exclude: npt.NDArray[np.bool_] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Head points of the map: (N×2 frame-pixel x, y; N window masses), strongest first.

    Candidates are cells that are the maximum of their 3×3 neighbourhood, ranked by the mass
    of that neighbourhood. Without ``min_mass`` the ``round(count)`` strongest are kept (the
    default, see the module constants); with it, those whose window holds ``min_mass``.
    With ``exclude`` (a cell mask), peaks in those cells are skipped and the count is that of
    the cells left.
    """
    d = np.asarray(density.density, np.float32)
    if d.size == 0 or float(d.max()) <= 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    local_max = d >= cv2.dilate(d, np.ones((3, 3), np.uint8))
    mass = cv2.boxFilter(d, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    candidates = local_max & (d > 0)
    count = density.count
    if exclude is not None:
        candidates &= ~exclude
        count = float(d[~exclude].sum(dtype=np.float64))
    rows, cols = np.nonzero(candidates)
    m = mass[rows, cols].astype(np.float32)
    order = np.argsort(-m, kind="stable")
    rows, cols, m = rows[order], cols[order], m[order]
    if min_mass is None:
        k = round(count)
        rows, cols, m = rows[:k], cols[:k], m[:k]
    else:
        keep = m >= min_mass
        rows, cols, m = rows[keep], cols[keep], m[keep]
    sx, sy = density.scale_xy
    pts = np.stack([(cols + 0.5) * sx, (rows + 0.5) * sy], axis=1).astype(np.float32)
    return pts, m


def missed_people(
    density: DensityMap,
    detections: Detections,
    *,
    min_mass: float | None = None,
    heights: HeightModel | None = None,
) -> Detections:
    """Person boxes for the people the density map counts outside every detected person box.

    The mass of the cells no person box covers says how many people the detector missed;
    that many of the strongest peaks among those cells become boxes.

    Args:
        density: This frame's density map.
        detections: This frame's detections (person rows are those named ``person``).
        min_mass: Peak mass threshold (None: the map's count decides, see `density_peaks`).
        heights: Height model (default: fitted on the frame's person boxes; without enough
            boxes no person box can be sized and nothing is added).

    Returns:
        New ``person`` detections (confidence = peak mass, clipped to 1), ``origin`` =
        ``density``; empty when there is nothing to add.
    """
    names = detections.data.get(CLASS_NAME)
    xyxy = np.asarray(detections.xyxy, np.float32).reshape(-1, 4)
    people = xyxy if names is None else xyxy[np.asarray(names) == "person"]
    model = heights or fit_heights(people)
    if model is None:
        return _empty()
    # Only the mass outside the found people is left to explain: as many peaks as it counts,
    # taken outside their boxes (the same split as the fused count).
    pts, mass = density_peaks(density, min_mass, exclude=covered_cells(density, people))
    if len(pts) == 0:
        return _empty()
    h = model.height_at(pts[:, 1])
    w = WIDTH_RATIO * h
    top = pts[:, 1] - HEAD_OFFSET * h
    boxes = np.stack([pts[:, 0] - w / 2, top, pts[:, 0] + w / 2, top + h], axis=1)
    fw, fh = density.resolution_wh
    boxes = np.clip(boxes, 0, [fw, fh, fw, fh]).astype(np.float32)
    return Detections(
        xyxy=boxes,
        confidence=np.clip(mass, 0.0, 1.0).astype(np.float32),
        class_id=np.zeros(len(boxes), int),
        data={
            CLASS_NAME: np.full(len(boxes), "person"),
            ORIGIN: np.full(len(boxes), "density"),
        },
    )


def _empty() -> Detections:
    e = Detections.empty()
    e.data[CLASS_NAME] = np.array([], dtype=str)
    e.data[ORIGIN] = np.array([], dtype=str)
    return e


def with_missed_people(
    density: DensityMap | None, detections: Detections, min_mass: float | None = None
) -> Detections:
    """``detections`` plus `missed_people` (unchanged without a density map).

    Detector rows get ``origin`` = ``detector`` so the merged set has one column for all.
    """
    if density is None:
        return detections
    extra = missed_people(density, detections, min_mass=min_mass)
    if len(extra) == 0:
        return detections
    base = detections
    base.data[ORIGIN] = np.full(len(base), "detector")
    if base.confidence is None:
        base.confidence = np.ones(len(base), np.float32)
    return Detections.merge([base, extra])
