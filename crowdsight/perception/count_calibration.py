"""Per-camera count calibration: a smooth gain over image rows, fitted on a few labelled frames.

The density model errs differently on one camera's far rows (small heads, under-counted) and
near rows (large heads, over- or under-counted). The Mall benchmark protocol lets a method
learn from the camera's own labelled frames (1–800); this module does it with as few
parameters as the data supports:

- the gain is piecewise linear in the image row, with ``knots`` values at the centres of
  ``knots`` equal horizontal bands (one knot: a single gain for the whole frame), constant
  above the first and below the last centre, so the calibrated heatmap has no seams;
- the knot values are fitted by non-negative least squares, with a ridge that pulls every
  gain towards 1 (no correction) as strongly as ``ridge_frames`` perfectly fitting frames
  would, of either the labelled head counts in each band on the density model's per-band
  sums (``target="bands"``) or the whole-frame head count on the whole-frame calibrated sum
  (``target="total"``). Per-band targets use more of the labels, but they also "correct"
  mass the model put in the wrong band: on Mall training frames 1–800 the density model
  puts a third of its mass in the bottom third of the frame, where 14 % of the heads are,
  and the same frames' top-third heads are under-counted by as much, so per-band gains
  (1.28 top, 0.73 bottom) made the whole-frame count *worse* there (cross-validated MAE
  3.55 → 3.66). Which target fits a camera is therefore chosen like the rest:
- the target, the number of knots and the ridge are chosen by blocked cross-validation
  (consecutive frames held out together, so a fold is not predicted from its own
  neighbours) on the calibration frames only, by the MAE of the whole-frame count; "no
  correction" (every gain 1) is a candidate too, and is kept unless a fit beats it.

Only each frame's row profile (the density map summed along its rows) and the head rows are
needed, so fitting is instant once the maps are computed.

Example:
    >>> import numpy as np
    >>> from crowdsight.core.types import DensityMap
    >>> cal = CountCalibration(resolution_wh=(16, 16), gains=[2.0], data="demo", frames="1")
    >>> apply_calibration(DensityMap(np.ones((2, 2), np.float32), (16, 16)), cal).count
    8.0
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.optimize import nnls

from crowdsight.core.errors import InputError, validation_line
from crowdsight.core.types import DensityMap

FORMAT: Literal["crowdsight.count_calibration/1"] = "crowdsight.count_calibration/1"
F64 = npt.NDArray[np.float64]
#: Knot counts tried by cross-validation: a single gain up to one per eighth of the frame
#: (more bands than that hold too few heads per frame on a typical camera to fit).
KNOTS_GRID = (1, 2, 3, 4, 6, 8)
#: Ridge strengths tried, in frames: 0 (plain non-negative least squares) up to a prior
#: worth 100 perfectly fitting frames (which keeps gains near 1 when only a few are given).
RIDGE_GRID = (0.0, 1.0, 10.0, 100.0)
#: Blocked folds of consecutive frames.
N_FOLDS = 5
#: Aspect-ratio tolerance when applying a calibration to frames of another size (a camera's
#: sub-stream keeps the aspect ratio; a different camera or a crop does not).
ASPECT_TOLERANCE = 0.02


Target = Literal["none", "bands", "total"]


class CvRow(BaseModel):
    """Cross-validated whole-frame count MAE of one (target, knots, ridge) candidate."""

    model_config = ConfigDict(extra="forbid")

    target: Target = Field(
        description="'bands': per-band head counts; 'total': whole-frame counts; 'none': "
        "no correction (every gain 1)."
    )
    knots: int = Field(ge=1, description="Knots of the row gain.")
    ridge_frames: float = Field(ge=0, description="Ridge towards gain 1, in frames.")
    mae: float = Field(ge=0, description="Held-out MAE of the calibrated count.")


class CountCalibration(BaseModel):
    """A camera's count calibration file (JSON), as `crowdsight calibrate counting` writes it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    format: Literal["crowdsight.count_calibration/1"] = Field(
        FORMAT, description="File format and version."
    )
    resolution_wh: tuple[int, int] = Field(
        description="(width, height) of the frames it was fitted on; frames of the same "
        "aspect ratio (e.g. a sub-stream) may use it."
    )
    gains: list[Annotated[float, Field(ge=0)]] = Field(
        min_length=1,
        max_length=64,
        description="Gain at the centre of each of len(gains) equal horizontal bands, top "
        "first; linear in between, constant beyond the outer centres.",
    )
    target: Target = Field(
        "total", description="What the gains were fitted to ('none': no fit beat gain 1)."
    )
    ridge_frames: float = Field(0.0, ge=0, description="Ridge towards gain 1 used, in frames.")
    data: str = Field(description="Where the labelled frames came from.")
    frames: str = Field(description="Which frames were used (range and step).")
    n_frames: int = Field(0, ge=0, description="Number of labelled frames fitted.")
    cv_mae_uncalibrated: float | None = Field(
        None, description="Mean absolute count error of the uncalibrated density, same frames."
    )
    cv_mae_calibrated: float | None = Field(
        None, description="Cross-validated MAE with the chosen knots and ridge."
    )
    cv: list[CvRow] = Field(default_factory=list, description="Every candidate tried.")


@dataclass(frozen=True)
class CalibrationSample:
    """One labelled frame reduced to what a fit needs.

    Attributes:
        row_profile: The density map summed along each cell row (top first).
        head_rows: Labelled head rows as fractions of the image height (0 top, 1 bottom).
    """

    row_profile: F64
    head_rows: F64

    @classmethod
    def from_map(cls, dm: DensityMap, points_xy: npt.NDArray[np.float64]) -> CalibrationSample:
        """A sample from a density map and the frame's head points (x, y in pixels)."""
        h = dm.resolution_wh[1]
        rows = np.asarray(points_xy, np.float64).reshape(-1, 2)[:, 1] / h
        return cls(dm.density.sum(axis=1, dtype=np.float64), np.clip(rows, 0.0, 1.0))


def _row_centres(n_rows: int) -> F64:
    return (np.arange(n_rows, dtype=np.float64) + 0.5) / n_rows


def _basis(n_rows: int, knots: int) -> F64:
    """n_rows × knots: row r's weight on each knot (hat functions; rows sum to 1)."""
    centres = (np.arange(knots) + 0.5) / knots
    y = _row_centres(n_rows)
    eye = np.eye(knots)
    return np.stack([np.interp(y, centres, eye[k]) for k in range(knots)], axis=1)


def row_gains(n_rows: int, gains: list[float] | F64) -> F64:
    """The gain of each of ``n_rows`` cell rows (piecewise linear between band centres)."""
    g = np.asarray(gains, np.float64)
    return _basis(n_rows, len(g)) @ g


def apply_calibration(dm: DensityMap, cal: CountCalibration) -> DensityMap:
    """The density map with each row multiplied by its calibrated gain.

    Raises:
        InputError: the map's image has another aspect ratio than the calibration's frames.
    """
    (cw, ch), (w, h) = cal.resolution_wh, dm.resolution_wh
    if abs((w / h) / (cw / ch) - 1.0) > ASPECT_TOLERANCE:
        raise InputError(
            f"count calibration was fitted on {cw}x{ch} frames but this camera sends {w}x{h} "
            "(another aspect ratio): calibrate it again on this camera's frames"
        )
    g = row_gains(dm.density.shape[0], cal.gains).astype(np.float32)
    return replace(dm, density=np.ascontiguousarray(dm.density * g[:, None]))


def _design(sample: CalibrationSample, knots: int, target: Target = "bands") -> tuple[F64, F64]:
    """(design, targets): per band (``bands``: knots rows) or for the whole frame (``total``:
    one row), the density under each knot's weight and the labelled heads there."""
    n = len(sample.row_profile)
    band_of_row = np.minimum((_row_centres(n) * knots).astype(int), knots - 1)
    weighted = _basis(n, knots) * sample.row_profile[:, None]
    x = np.zeros((knots, knots))
    np.add.at(x, band_of_row, weighted)
    band_of_head = np.minimum((sample.head_rows * knots).astype(int), knots - 1)
    y = np.bincount(band_of_head, minlength=knots).astype(np.float64)
    if target == "total":
        return x.sum(axis=0, keepdims=True), y.sum(keepdims=True)
    return x, y


def fit_gains(
    samples: list[CalibrationSample], knots: int, ridge_frames: float, target: Target = "bands"
) -> F64:
    """Non-negative ridge least squares of head counts on density (per band or per frame).

    The ridge adds, per knot, ``ridge_frames`` rows saying "gain 1", each weighted like an
    average frame's density under that knot, so its strength is in frames whatever the crowd.
    ``target="none"`` returns gain 1.
    """
    if target == "none":
        return np.ones(knots)
    designs = [_design(s, knots, target) for s in samples]
    a = np.concatenate([d[0] for d in designs])
    b = np.concatenate([d[1] for d in designs])
    if ridge_frames > 0:
        rows_per_frame = a.shape[0] / len(samples)
        scale = np.sqrt(ridge_frames * np.mean(a**2, axis=0) * rows_per_frame)
        a = np.concatenate([a, np.diag(scale)])
        b = np.concatenate([b, scale])
    gains, _ = nnls(a, b)
    return np.asarray(gains, np.float64)


def _count(sample: CalibrationSample, gains: F64) -> float:
    return float(row_gains(len(sample.row_profile), gains) @ sample.row_profile)


def blocked_folds(n: int, n_folds: int = N_FOLDS) -> list[npt.NDArray[np.intp]]:
    """Indices of ``n_folds`` runs of consecutive items (the held-out sets)."""
    return [f for f in np.array_split(np.arange(n), min(n_folds, n)) if len(f)]


def cross_validate(
    samples: list[CalibrationSample],
    knots_grid: tuple[int, ...] = KNOTS_GRID,
    ridge_grid: tuple[float, ...] = RIDGE_GRID,
    n_folds: int = N_FOLDS,
) -> list[CvRow]:
    """Held-out whole-frame MAE of every candidate (and of no correction), blocked folds."""
    if len(samples) < 2:
        raise InputError("count calibration needs at least 2 labelled frames")
    folds = blocked_folds(len(samples), n_folds)
    grid: list[tuple[Target, int, float]] = [("none", 1, 0.0)]
    grid += [(t, k, r) for t in ("total", "bands") for k in knots_grid for r in ridge_grid]
    rows = []
    for target, knots, ridge in grid:
        err = []
        for held in folds:
            keep = set(held.tolist())
            train = [s for i, s in enumerate(samples) if i not in keep]
            g = fit_gains(train, knots, ridge, target)
            err += [abs(_count(samples[i], g) - len(samples[i].head_rows)) for i in held]
        mae = round(float(np.mean(err)), 4)
        rows.append(CvRow(target=target, knots=knots, ridge_frames=ridge, mae=mae))
    return rows


def calibrate(
    samples: list[CalibrationSample],
    resolution_wh: tuple[int, int],
    *,
    data: str,
    frames: str,
) -> CountCalibration:
    """Choose knots and ridge by blocked cross-validation, then fit on every sample.

    The lowest held-out MAE wins; a simpler candidate within 1 % of it is preferred: no
    correction first, then fewer knots, then a stronger ridge.
    """
    cv = cross_validate(samples)
    best = min(r.mae for r in cv)
    pick = min(
        (r for r in cv if r.mae <= best * 1.01 + 1e-9),
        key=lambda r: (r.target != "none", r.knots, -r.ridge_frames),
    )
    gains = fit_gains(samples, pick.knots, pick.ridge_frames, pick.target)
    raw = float(np.mean([abs(s.row_profile.sum() - len(s.head_rows)) for s in samples]))
    return CountCalibration(
        resolution_wh=resolution_wh,
        gains=[round(float(g), 4) for g in gains],
        target=pick.target,
        ridge_frames=pick.ridge_frames,
        data=data,
        frames=frames,
        n_frames=len(samples),
        cv_mae_uncalibrated=round(raw, 4),
        cv_mae_calibrated=pick.mae,
        cv=cv,
    )


def load_calibration(path: Path) -> CountCalibration:
    """Read and validate a count calibration file.

    Raises:
        InputError: one line naming the file and what is wrong with it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read count calibration ({exc})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        return CountCalibration.model_validate(raw)
    except ValidationError as exc:
        raise InputError(
            f"{validation_line(path, exc)} — not a count calibration; write one with "
            "`crowdsight calibrate counting`"
        ) from None


def save_calibration(cal: CountCalibration, path: Path) -> None:
    """Write a calibration file (indented JSON)."""
    path.write_text(cal.model_dump_json(indent=2) + "\n", encoding="utf-8")


__all__ = [
    "FORMAT",
    "CalibrationSample",
    "CountCalibration",
    "CvRow",
    "apply_calibration",
    "blocked_folds",
    "calibrate",
    "cross_validate",
    "fit_gains",
    "load_calibration",
    "row_gains",
    "save_calibration",
]
