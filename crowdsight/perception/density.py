"""Crowd density estimation (CSRNet on a `crowdsight.models.runtime.Runtime`).

The estimator takes an RGB image of any size and returns a `DensityMap` at 1/8 resolution
whose sum is the estimated count. Images are padded (with the ImageNet mean colour, i.e. zero
after normalisation) to a multiple of 8 on the right/bottom, plus an optional mirrored border
of ``border_px`` on every side; the padded cells are cropped off before summing. Cells below
``floor`` (a noise floor) are zeroed. Frames larger than ``max_tile_px`` pixels
are processed in overlapping tiles so memory stays bounded: each output cell is taken from
exactly one tile, the one in whose interior it lies (the overlap is split half-and-half
between neighbours), so nothing is double counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.types import DensityMap, FloatArray, ImageRGB
from crowdsight.models.manifest import NORMALISATIONS, installed_model
from crowdsight.models.runtime import load_runtime

STRIDE = 8
#: The graph normalises with the ImageNet mean/std (manifest ``extra["normalisation"]``), so
#: padding with the mean colour is zero after normalisation.
_MEAN255 = np.array(NORMALISATIONS["imagenet"][0], np.float32) * 255.0


@dataclass(frozen=True)
class TilePlan:
    """Where one tile reads the image and which of its output cells it keeps (cell units)."""

    y0: int
    x0: int
    h: int
    w: int
    keep_y0: int
    keep_y1: int
    keep_x0: int
    keep_x1: int


def _axis_tiles(
    n_cells: int, tile_cells: int, overlap_cells: int
) -> list[tuple[int, int, int, int]]:
    """Split one axis of ``n_cells`` into tiles: (start, length, keep_start, keep_end) in cells."""
    if n_cells <= tile_cells:
        return [(0, n_cells, 0, n_cells)]
    step = tile_cells - overlap_cells
    n = math.ceil((n_cells - overlap_cells) / step)
    starts = [min(i * step, n_cells - tile_cells) for i in range(n)]
    out = []
    for i, s in enumerate(starts):
        keep0 = 0 if i == 0 else (starts[i - 1] + tile_cells + s) // 2
        keep1 = n_cells if i == n - 1 else (s + tile_cells + starts[i + 1]) // 2
        out.append((s, tile_cells, keep0, keep1))
    return out


def plan_tiles(h_cells: int, w_cells: int, tile_cells: int, overlap_cells: int) -> list[TilePlan]:
    """Tiles covering an h×w cell grid; their kept regions partition the grid exactly."""
    return [
        TilePlan(ys, xs, yl, xl, yk0, yk1, xk0, xk1)
        for ys, yl, yk0, yk1 in _axis_tiles(h_cells, tile_cells, overlap_cells)
        for xs, xl, xk0, xk1 in _axis_tiles(w_cells, tile_cells, overlap_cells)
    ]


class DensityEstimator:
    """CSRNet density estimation with padding, tiling and an optional region of interest.

    Args:
        model_file: ONNX file (default: the installed ``csrnet`` model).
        max_tile_px: Frames with more pixels than this are tiled. Larger tiles give slightly
            more context per cell and fewer seams; smaller tiles bound peak memory (CSRNet's
            first layers hold ~1 KB per input pixel).
        tile_px: Tile side in pixels when tiling (rounded to a multiple of 8).
        overlap_px: Overlap between neighbouring tiles; enough context (≥ the receptive
            field's useful part, ~64–128 px) keeps tiled counts within ~1 % of untiled ones.
        threads: Intra-op threads of the model (None: ``runtime``'s, by default all cores).
        border_px: Mirrored context added on every side and cropped off again (a multiple
            of 8). CSRNet answers zero padding with warmer edge cells: the outer 2-cell ring
            of a blank grey 640×480 frame holds 14.3 of its 81.9 "people" with no border and
            8.4 of 75.4 with 32 px mirrored (``benchmarks/density_scale.py --part edges``).
            But on Mall *training* frames 1–800 the ring also holds real people cut by the
            frame edge: mirroring lowered the mean count from 30.9 to 25.8 (truth 30.3) and
            raised the MAE from 4.1 to 5.0, so the default stays 0 (no mirrored border).
        floor: Cells with less density than this (including the network's small negative
            outputs) are zeroed. CSRNet leaves a faint haze
            (~0.005 people per cell) over any texture, which on a 1080p frame adds up to
            more than the people in it. 0.0025 was chosen by Mall *training* frames 1–800
            (every 20th): among floors 0 / 0.0025 / 0.005 / 0.0075 / 0.01 / 0.015 / 0.02 /
            0.03 (hard) and the same subtracted (soft) it gave the lowest MAE (3.94 vs 4.25
            without; every larger floor loses real people there).
        runtime: Model backend (None: ONNX Runtime with its defaults).

    Example:
        >>> est = DensityEstimator()                       # doctest: +SKIP
        >>> dm = est.estimate(image_rgb)                   # doctest: +SKIP
        >>> round(dm.count)                                # doctest: +SKIP
        42
    """

    def __init__(
        self,
        model_file: Path | None = None,
        *,
        max_tile_px: int = 2_300_000,
        tile_px: int = 1024,
        overlap_px: int = 128,
        threads: int | None = None,
        border_px: int = 0,
        floor: float = 0.0025,
        runtime: RuntimeConfig | None = None,
    ) -> None:
        self.model_file = model_file or installed_model("csrnet").file("csrnet.onnx")
        config = (runtime or RuntimeConfig()).with_threads(threads)
        self.runtime = load_runtime(self.model_file, config)
        self.max_tile_px = max_tile_px
        self.tile_cells = max(8, tile_px // STRIDE)
        self.overlap_cells = max(0, min(overlap_px // STRIDE, self.tile_cells // 2))
        self.border_cells = max(0, border_px // STRIDE)
        self.floor = floor

    def _infer(self, padded: FloatArray) -> FloatArray:
        """Run the network on a padded H×W×3 float image (H, W multiples of 8)."""
        x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None])
        out = self.runtime.run({"image": x})[0]
        return np.asarray(out[0, 0], dtype=np.float32)

    def estimate(
        self, image: ImageRGB, roi_mask: npt.NDArray[np.bool_] | None = None
    ) -> DensityMap:
        """Density map of an RGB image.

        Args:
            image: H×W×3 uint8 RGB.
            roi_mask: Optional H×W bool mask; density outside it is zeroed (people there are
                not counted). The map is computed on the whole image, so context is kept.

        Returns:
            A `DensityMap` at ceil(H/8)×ceil(W/8) cells whose sum is the count.
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
        h, w = image.shape[:2]
        hc, wc = math.ceil(h / STRIDE), math.ceil(w / STRIDE)
        b = self.border_cells * STRIDE
        padded = _mirror_pad(image, b, b + hc * STRIDE - h, b, b + wc * STRIDE - w)
        bc = self.border_cells
        ph, pw = hc + 2 * bc, wc + 2 * bc
        if ph * pw * STRIDE * STRIDE <= self.max_tile_px:
            full = self._infer(padded)
        else:
            full = np.zeros((ph, pw), np.float32)
            for t in plan_tiles(ph, pw, self.tile_cells, self.overlap_cells):
                tile = padded[
                    t.y0 * STRIDE : (t.y0 + t.h) * STRIDE, t.x0 * STRIDE : (t.x0 + t.w) * STRIDE
                ]
                d = self._infer(tile)
                ky0, ky1 = t.keep_y0 - t.y0, t.keep_y1 - t.y0
                kx0, kx1 = t.keep_x0 - t.x0, t.keep_x1 - t.x0
                full[t.keep_y0 : t.keep_y1, t.keep_x0 : t.keep_x1] = d[ky0:ky1, kx0:kx1]
        density = np.ascontiguousarray(full[bc : bc + hc, bc : bc + wc])
        if self.floor > 0:
            density[density < self.floor] = 0.0
        cell_mask = None
        if roi_mask is not None:
            if roi_mask.shape != (h, w):
                raise ValueError(f"roi_mask shape {roi_mask.shape} != image shape {(h, w)}")
            cell_mask = _mask_to_cells(roi_mask, hc, wc)
            density = np.where(cell_mask, density, np.float32(0.0)).astype(np.float32)
        return DensityMap(density=density, resolution_wh=(w, h), roi_mask=cell_mask)


def _mirror_pad(image: ImageRGB, top: int, bottom: int, left: int, right: int) -> FloatArray:
    """Float copy of ``image`` padded: mirrored when a border is asked for, else mean colour."""
    h, w = image.shape[:2]
    if top and left and top < h and bottom < h and left < w and right < w:
        out = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REFLECT_101)
        return np.asarray(out, np.float32)
    padded = np.empty((h + top + bottom, w + left + right, 3), np.float32)
    padded[...] = _MEAN255
    padded[top : top + h, left : left + w] = image
    return padded


def estimate_at_scale(
    estimator: Any,
    image: ImageRGB,
    scale: float,
    roi_mask: npt.NDArray[np.bool_] | None = None,
) -> DensityMap:
    """Density of ``image`` resized by ``scale`` first, described in the original's pixels.

    CSRNet counts people well only near the sizes it was trained on; `scale` (from
    `crowdsight.perception.density_scale`) brings a camera's people to that size. The map
    has ceil(scale·H/8)×ceil(scale·W/8) cells and ``resolution_wh`` of the original image, so
    `DensityMap.scale_xy` maps cells back to frame pixels. ``estimator`` is anything with
    ``estimate(image, roi_mask) -> DensityMap``.
    """
    if scale <= 0:
        raise ValueError(f"density scale must be > 0, got {scale}")
    h, w = image.shape[:2]
    if abs(scale - 1.0) < 1e-3:
        dm: DensityMap = estimator.estimate(image, roi_mask)
        return dm
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (sw, sh), interpolation=interp)
    small_roi = None
    if roi_mask is not None:
        small_roi = cv2.resize(
            roi_mask.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    dm = estimator.estimate(small, small_roi)
    return replace(dm, resolution_wh=(w, h))


def _mask_to_cells(mask: npt.NDArray[np.bool_], hc: int, wc: int) -> npt.NDArray[np.bool_]:
    """A cell is inside when at least half of its pixels are."""
    h, w = mask.shape
    padded = np.zeros((hc * STRIDE, wc * STRIDE), np.float32)
    padded[:h, :w] = mask
    frac = padded.reshape(hc, STRIDE, wc, STRIDE).mean(axis=(1, 3))
    return np.asarray(frac >= 0.5)
