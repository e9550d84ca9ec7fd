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

**Refitting the density model's output layer** (``target="cells"``) is the other kind of
candidate, tried when the frames come with the network's features
(`DensityEstimator.estimate_features`): CSRNet's last 1×1 convolution (64 weights and a bias)
is refitted by ridge least squares of every cell's value on the labelled heads spread over
the cells by a Gaussian of ``sigma_cells``, pulled towards the shipped weights as strongly as
``ridge_frames`` frames' worth of cells would (features standardised by their root mean
square, so the pull is the same on every channel). It can move density between *kinds* of
texture, not only between rows: on Mall training frames 1–800 (every 2nd, blocked 5-fold CV)
row gains could not beat no correction (3.51) and the refit reached 2.7 (per-cell targets,
evaluated with the estimator's noise floor, as the camera will run it). Its Gaussian width
and ridge are chosen by the same cross-validation; the camera's estimator then applies the
refitted layer (`DensityEstimator.use_output_layer`) before its noise floor.

Row gains need only each frame's row profile (the density map summed along its rows) and
the head rows, so fitting them is instant once the maps are computed; a refit needs the
features of every frame (64 × cells × 2 bytes each, 0.6 MB for a 640×480 frame).

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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.optimize import nnls

from crowdsight.core.errors import InputError, validation_line
from crowdsight.core.types import DensityMap
from crowdsight.perception.density import DensityFeatures, OutputLayer

FORMAT: Literal["crowdsight.count_calibration/1"] = "crowdsight.count_calibration/1"
F64 = npt.NDArray[np.float64]
#: Knot counts tried by cross-validation: a single gain up to one per eighth of the frame
#: (more bands than that hold too few heads per frame on a typical camera to fit).
KNOTS_GRID = (1, 2, 3, 4, 6, 8)
#: Ridge strengths tried, in frames: 0 (plain non-negative least squares) up to a prior
#: worth 100 perfectly fitting frames (which keeps gains near 1 when only a few are given).
RIDGE_GRID = (0.0, 1.0, 10.0, 100.0)
#: Gaussian widths (density cells) of the head targets tried by an output-layer refit:
#: from a head's own cell to a neighbourhood wider than the heads CSRNet was trained on.
SIGMA_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
#: Ridge strengths tried by an output-layer refit, in frames' worth of cells.
LAYER_RIDGE_GRID = (0.2, 2.0, 20.0)
#: Blocked folds of consecutive frames.
N_FOLDS = 5
#: Aspect-ratio tolerance when applying a calibration to frames of another size (a camera's
#: sub-stream keeps the aspect ratio; a different camera or a crop does not).
ASPECT_TOLERANCE = 0.02


Target = Literal["none", "bands", "total", "cells"]


class CvRow(BaseModel):
    """Cross-validated whole-frame count MAE of one (target, knots, ridge) candidate."""

    model_config = ConfigDict(extra="forbid")

    target: Target = Field(
        description="'bands': per-band head counts; 'total': whole-frame counts; 'cells': "
        "the output layer refitted to per-cell head density; 'none': no correction."
    )
    knots: int = Field(ge=1, description="Knots of the row gain (1 for 'cells').")
    ridge_frames: float = Field(
        ge=0, description="Ridge towards gain 1 (towards the shipped layer for 'cells'), in frames."
    )
    sigma_cells: float | None = Field(
        None, gt=0, description="Gaussian width of the per-cell head targets ('cells' only)."
    )
    mae: float = Field(ge=0, description="Held-out MAE of the calibrated count.")


class LayerFit(BaseModel):
    """A refitted output layer of the density model (``target="cells"``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    weights: list[float] = Field(
        min_length=1, max_length=4096, description="One weight per feature channel."
    )
    bias: float = Field(description="Bias (people per cell).")
    sigma_cells: float = Field(gt=0, description="Gaussian width of the head targets, cells.")

    def layer(self) -> OutputLayer:
        """The layer the density estimator applies."""
        return OutputLayer(np.asarray(self.weights, np.float32), float(self.bias))


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
    output_layer: LayerFit | None = Field(
        None,
        description="The refitted output layer (target 'cells'; the gains are then all 1).",
    )

    @model_validator(mode="after")
    def _layer_iff_cells(self) -> CountCalibration:
        if (self.target == "cells") != (self.output_layer is not None):
            raise ValueError("target 'cells' needs an output_layer, and only it has one")
        return self


@dataclass(frozen=True)
class CalibrationSample:
    """One labelled frame reduced to what a fit needs.

    Attributes:
        row_profile: The density map summed along each cell row (top first).
        head_rows: Labelled head rows as fractions of the image height (0 top, 1 bottom).
    """

    row_profile: F64
    head_rows: F64
    features: npt.NDArray[np.float16] | None = None
    head_cells: npt.NDArray[np.intp] | None = None

    @classmethod
    def from_map(cls, dm: DensityMap, points_xy: npt.NDArray[np.float64]) -> CalibrationSample:
        """A sample from a density map and the frame's head points (x, y in pixels)."""
        h = dm.resolution_wh[1]
        rows = np.asarray(points_xy, np.float64).reshape(-1, 2)[:, 1] / h
        return cls(dm.density.sum(axis=1, dtype=np.float64), np.clip(rows, 0.0, 1.0))

    @classmethod
    def from_features(
        cls, df: DensityFeatures, points_xy: npt.NDArray[np.float64]
    ) -> CalibrationSample:
        """A sample that also allows an output-layer refit: the map, its features, and each
        head's (row, column) cell."""
        base = cls.from_map(df.map, points_xy)
        pts = np.asarray(points_xy, np.float64).reshape(-1, 2)
        sx, sy = df.map.scale_xy
        hc, wc = df.map.density.shape
        cells = np.stack(
            [np.clip(pts[:, 1] // sy, 0, hc - 1), np.clip(pts[:, 0] // sx, 0, wc - 1)], axis=1
        ).astype(np.intp)
        return replace(base, features=df.features, head_cells=cells)


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

    A refitted output layer (``cal.output_layer``) is not applied here: the map must come
    from an estimator using it (`DensityEstimator.use_output_layer`); its gains are all 1.

    Raises:
        InputError: the map's image has another aspect ratio than the calibration's frames.
    """
    (cw, ch), (w, h) = cal.resolution_wh, dm.resolution_wh
    if abs((w / h) / (cw / ch) - 1.0) > ASPECT_TOLERANCE:
        raise InputError(
            f"count calibration was fitted on {cw}x{ch} frames but this camera sends {w}x{h} "
            "(another aspect ratio): calibrate it again on this camera's frames"
        )
    if all(g == 1.0 for g in cal.gains):  # no correction, or a refit the estimator applied
        return dm
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


class _LayerData:
    """Per-frame normal equations of an output-layer refit, for every target width."""

    def __init__(self, samples: list[CalibrationSample], sigmas: tuple[float, ...]) -> None:
        from scipy.ndimage import gaussian_filter

        self.grams: list[F64] = []
        self.moments: dict[float, list[F64]] = {s: [] for s in sigmas}
        cells = []
        for smp in samples:
            assert smp.features is not None and smp.head_cells is not None
            cells.append(smp.features.shape[1] * smp.features.shape[2])
            z = _with_ones(smp.features)
            self.grams.append(z @ z.T)
            heads = np.zeros(smp.features.shape[1:])
            np.add.at(heads, (smp.head_cells[:, 0], smp.head_cells[:, 1]), 1.0)
            for sg in sigmas:
                target = gaussian_filter(heads, sg, mode="constant").reshape(-1)
                self.moments[sg].append(z @ target)
        #: Mean cells per frame (the unit of the ridge).
        self.cells = float(np.mean(cells))

    def fit(
        self, idx: npt.NDArray[np.intp], sigma: float, ridge_frames: float, base: OutputLayer
    ) -> OutputLayer:
        """Ridge least squares of the ``idx`` frames' cells, pulled towards ``base``."""
        gram = np.sum([self.grams[i] for i in idx], axis=0)
        moment = np.sum([self.moments[sigma][i] for i in idx], axis=0)
        theta0 = np.append(base.weights.astype(np.float64), base.bias)
        rms = np.sqrt(np.maximum(np.diag(gram) / (len(idx) * self.cells), 1e-12))
        lam = ridge_frames * self.cells
        a = gram / np.outer(rms, rms) + lam * np.eye(len(rms))
        theta = np.linalg.solve(a, moment / rms + lam * theta0 * rms) / rms
        return OutputLayer(theta[:-1].astype(np.float32), float(theta[-1]))


def _with_ones(features: npt.NDArray[np.float16]) -> F64:
    flat = np.asarray(features, np.float64).reshape(features.shape[0], -1)
    return np.vstack([flat, np.ones((1, flat.shape[1]))])


def _layer_count(sample: CalibrationSample, layer: OutputLayer, floor: float) -> float:
    assert sample.features is not None
    d = layer.apply(sample.features)
    return float(d[d >= floor].sum(dtype=np.float64)) if floor > 0 else float(d.sum())


def fit_output_layer(
    samples: list[CalibrationSample],
    base: OutputLayer,
    sigma_cells: float,
    ridge_frames: float,
) -> OutputLayer:
    """The output layer refitted on every sample (all must carry features)."""
    data = _LayerData(samples, (sigma_cells,))
    return data.fit(np.arange(len(samples)), sigma_cells, ridge_frames, base)


def cross_validate(
    samples: list[CalibrationSample],
    knots_grid: tuple[int, ...] = KNOTS_GRID,
    ridge_grid: tuple[float, ...] = RIDGE_GRID,
    n_folds: int = N_FOLDS,
    *,
    base_layer: OutputLayer | None = None,
    floor: float = 0.0,
    sigma_grid: tuple[float, ...] = SIGMA_GRID,
    layer_ridge_grid: tuple[float, ...] = LAYER_RIDGE_GRID,
) -> list[CvRow]:
    """Held-out whole-frame MAE of every candidate (and of no correction), blocked folds.

    Output-layer refits (``target="cells"``) are tried when ``base_layer`` is given and every
    sample carries features; their held-out counts apply the estimator's noise ``floor``.
    """
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
    if base_layer is None or any(s.features is None for s in samples):
        return rows
    data = _LayerData(samples, sigma_grid)
    everything = np.arange(len(samples))
    for sigma in sigma_grid:
        for ridge in layer_ridge_grid:
            err = []
            for held in folds:
                layer = data.fit(np.setdiff1d(everything, held), sigma, ridge, base_layer)
                err += [
                    abs(_layer_count(samples[i], layer, floor) - len(samples[i].head_rows))
                    for i in held
                ]
            mae = round(float(np.mean(err)), 4)
            rows.append(
                CvRow(target="cells", knots=1, ridge_frames=ridge, sigma_cells=sigma, mae=mae)
            )
    return rows


_COMPLEXITY = {"none": 0, "total": 1, "bands": 1, "cells": 2}


def calibrate(
    samples: list[CalibrationSample],
    resolution_wh: tuple[int, int],
    *,
    data: str,
    frames: str,
    base_layer: OutputLayer | None = None,
    floor: float = 0.0,
) -> CountCalibration:
    """Choose the kind of correction and its settings by blocked cross-validation, then fit
    it on every sample.

    The lowest held-out MAE wins; a simpler candidate within 1 % of it is preferred: no
    correction first, then row gains (fewer knots, then a stronger ridge), then an
    output-layer refit (a stronger ridge, then a narrower target). ``base_layer`` and
    ``floor``: the estimator's own output layer and noise floor (refits are tried only with
    them and samples that carry features).
    """
    cv = cross_validate(samples, base_layer=base_layer, floor=floor)
    best = min(r.mae for r in cv)
    pick = min(
        (r for r in cv if r.mae <= best * 1.01 + 1e-9),
        key=lambda r: (_COMPLEXITY[r.target], r.knots, -r.ridge_frames, r.sigma_cells or 0.0),
    )
    fit: LayerFit | None = None
    if pick.target == "cells":
        assert base_layer is not None and pick.sigma_cells is not None
        layer = fit_output_layer(samples, base_layer, pick.sigma_cells, pick.ridge_frames)
        fit = LayerFit(
            weights=[float(w) for w in layer.weights],
            bias=layer.bias,
            sigma_cells=pick.sigma_cells,
        )
        gains = np.ones(1)
    else:
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
        output_layer=fit,
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
    "LayerFit",
    "apply_calibration",
    "blocked_folds",
    "calibrate",
    "cross_validate",
    "fit_gains",
    "fit_output_layer",
    "load_calibration",
    "row_gains",
    "save_calibration",
]
