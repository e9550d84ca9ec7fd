"""Crowd density estimation (CSRNet on a `crowdsight.models.runtime.Runtime`).

The estimator takes an RGB image of any size and returns a `DensityMap` at 1/8 resolution
whose sum is the estimated count. Images are padded (with the ImageNet mean colour, i.e. zero
after normalisation) to a multiple of 8 on the right/bottom, plus an optional mirrored border
of ``border_px`` on every side; the padded cells are cropped off before summing. Cells below
``floor`` (a noise floor) are zeroed. Frames larger than ``max_tile_px`` pixels
are processed in overlapping tiles so memory stays bounded: each output cell is taken from
exactly one tile, the one in whose interior it lies (the overlap is split half-and-half
between neighbours), so nothing is double counted.

CSRNet ends in a 1×1 convolution (its *output layer*) from 64 feature channels to density.
A camera's count calibration may refit that layer on the camera's labelled frames
(`crowdsight.perception.count_calibration`); the estimator then runs a derived graph that also
returns the 64 channels (`features_model`, written once next to the installed models) and
applies the refitted `OutputLayer` itself, before the noise floor, so the map, its sum and the
zones all use it.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ModelError
from crowdsight.core.types import DensityMap, FloatArray, ImageRGB
from crowdsight.models.manifest import NORMALISATIONS, installed_model, models_dir
from crowdsight.models.runtime import load_runtime

STRIDE = 8
#: The graph normalises with the ImageNet mean/std (manifest ``extra["normalisation"]``), so
#: padding with the mean colour is zero after normalisation.
_MEAN255 = np.array(NORMALISATIONS["imagenet"][0], np.float32) * 255.0


@dataclass(frozen=True)
class OutputLayer:
    """CSRNet's last 1×1 convolution: density = ``weights`` · features + ``bias`` per cell."""

    weights: FloatArray
    bias: float

    def apply(self, features: npt.NDArray[Any]) -> FloatArray:
        """Density (h×w) of a C×h×w feature map."""
        c = features.shape[0]
        if c != len(self.weights):
            raise ValueError(f"output layer has {len(self.weights)} weights, features have {c}")
        flat = np.asarray(features, np.float32).reshape(c, -1)
        d = self.weights.astype(np.float32) @ flat + np.float32(self.bias)
        return np.asarray(d.reshape(features.shape[1:]), np.float32)


@dataclass(frozen=True)
class DensityFeatures:
    """A density map and the features under it (from `DensityEstimator.estimate_features`).

    Attributes:
        map: The map as the estimator's own output layer gives it (floor and ROI applied).
        features: C×h×w float16 features of the same cells (no floor, no ROI).
    """

    map: DensityMap
    features: npt.NDArray[np.float16]


def _final_conv(model: Any) -> tuple[Any, str]:
    """The 1×1 Conv node that makes the graph's density output, and its input tensor."""
    out = model.graph.output[0].name
    producers = {o: n for n in model.graph.node for o in n.output}
    node = producers.get(out)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Conv":
        raise ValueError(f"the density output {out!r} is not made by a final Conv")
    return node, str(node.input[0])


def output_layer_of(model_file: Path) -> OutputLayer:
    """The output layer stored in a CSRNet ONNX file (the shipped weights)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_file))
    node, _ = _final_conv(model)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    w = np.asarray(init[node.input[1]], np.float32).reshape(-1)
    b = float(np.asarray(init[node.input[2]]).reshape(-1)[0]) if len(node.input) > 2 else 0.0
    return OutputLayer(w, b)


def features_model(model_file: Path, out_dir: Path | None = None) -> Path:
    """An ONNX file like ``model_file`` with the output layer's input as a second output.

    Written once into ``out_dir`` (default ``models_dir()/derived``, or the temp folder when
    that is read-only), named after the source file's SHA-256, so a reinstalled model gets a
    new derived file.

    Raises:
        ModelError: no folder could take the file.
    """
    import hashlib

    import onnx

    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    name = f"{model_file.stem}-features-{digest}.onnx"
    folders = [out_dir] if out_dir else [models_dir() / "derived", Path(tempfile.gettempdir())]
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    model = onnx.load(str(model_file))
    _, tensor = _final_conv(model)
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
    )
    for i, folder in enumerate(folders):
        out = folder / name
        try:  # a read-only models folder (a shared install) falls back to the temp folder
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(f".{os.getpid()}.tmp")
            onnx.save(model, str(tmp))
            tmp.replace(out)
            return out
        except OSError as exc:
            if i == len(folders) - 1:
                raise ModelError(f"cannot write the derived density graph {out}: {exc}") from exc
    raise AssertionError("unreachable")


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
        output_layer: A refitted output layer (a camera's count calibration) used instead of
            the graph's own; the derived graph `features_model` then runs.
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
        output_layer: OutputLayer | None = None,
    ) -> None:
        self.model_file = model_file or installed_model("csrnet").file("csrnet.onnx")
        self._config = (runtime or RuntimeConfig()).with_threads(threads)
        self.output_layer: OutputLayer | None = None
        # The derived graph that also returns the features (loaded on first need).
        self._features_runtime: Any = None
        self.runtime = load_runtime(self.model_file, self._config)
        if output_layer is not None:
            self.use_output_layer(output_layer)
        self.max_tile_px = max_tile_px
        self.tile_cells = max(8, tile_px // STRIDE)
        self.overlap_cells = max(0, min(overlap_px // STRIDE, self.tile_cells // 2))
        self.border_cells = max(0, border_px // STRIDE)
        self.floor = floor

    def _features(self) -> Any:
        if self._features_runtime is None:
            self._features_runtime = load_runtime(features_model(self.model_file), self._config)
        return self._features_runtime

    def use_output_layer(self, layer: OutputLayer) -> None:
        """Estimate with ``layer`` (a camera's refitted output layer) from now on."""
        self.runtime = self._features()
        self.output_layer = layer

    def _infer(self, padded: FloatArray, runtime: Any) -> FloatArray:
        """Run ``runtime``'s network on a padded H×W×3 float image (H, W multiples of 8).

        Returns a K×h×w stack: the density alone (K = 1), or, on the derived graph, the
        graph's density followed by the C feature channels (K = 1 + C).
        """
        x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None])
        outs = runtime.run({"image": x})
        if len(outs) == 1:
            return np.asarray(outs[0][0], dtype=np.float32)
        return np.concatenate([np.asarray(o[0], np.float32) for o in outs[:2]])

    def _stack(self, image: ImageRGB, runtime: Any) -> tuple[FloatArray, int, int]:
        """The network's K×hc×wc output stack for the whole image (padded, tiled, cropped)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
        h, w = image.shape[:2]
        hc, wc = math.ceil(h / STRIDE), math.ceil(w / STRIDE)
        b = self.border_cells * STRIDE
        padded = _mirror_pad(image, b, b + hc * STRIDE - h, b, b + wc * STRIDE - w)
        bc = self.border_cells
        ph, pw = hc + 2 * bc, wc + 2 * bc
        if ph * pw * STRIDE * STRIDE <= self.max_tile_px:
            full = self._infer(padded, runtime)
        else:
            full = np.empty((0, ph, pw), np.float32)
            for t in plan_tiles(ph, pw, self.tile_cells, self.overlap_cells):
                tile = padded[
                    t.y0 * STRIDE : (t.y0 + t.h) * STRIDE, t.x0 * STRIDE : (t.x0 + t.w) * STRIDE
                ]
                d = self._infer(tile, runtime)
                if not full.shape[0]:
                    full = np.zeros((d.shape[0], ph, pw), np.float32)
                ky0, ky1 = t.keep_y0 - t.y0, t.keep_y1 - t.y0
                kx0, kx1 = t.keep_x0 - t.x0, t.keep_x1 - t.x0
                full[:, t.keep_y0 : t.keep_y1, t.keep_x0 : t.keep_x1] = d[:, ky0:ky1, kx0:kx1]
        return np.ascontiguousarray(full[:, bc : bc + hc, bc : bc + wc]), h, w

    def _floored(self, density: FloatArray, cell_mask: npt.NDArray[np.bool_] | None) -> FloatArray:
        """A copy of ``density`` with the noise floor, then the region of interest, applied."""
        density = np.array(density, np.float32)
        if self.floor > 0:
            density[density < self.floor] = 0.0
        if cell_mask is not None:
            density = np.where(cell_mask, density, np.float32(0.0)).astype(np.float32)
        return density

    def _finish(
        self, density: FloatArray, h: int, w: int, roi_mask: npt.NDArray[np.bool_] | None
    ) -> DensityMap:
        """Noise floor and region of interest applied to an hc×wc density."""
        cell_mask = None
        if roi_mask is not None:
            if roi_mask.shape != (h, w):
                raise ValueError(f"roi_mask shape {roi_mask.shape} != image shape {(h, w)}")
            cell_mask = _mask_to_cells(roi_mask, *density.shape)
        return DensityMap(self._floored(density, cell_mask), (w, h), cell_mask)

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
        stack, h, w = self._stack(image, self.runtime)
        if self.output_layer is not None:
            return self._finish(self.output_layer.apply(stack[1:]), h, w, roi_mask)
        return self._finish(stack[0], h, w, roi_mask)

    def estimate_features(
        self, image: ImageRGB, roi_mask: npt.NDArray[np.bool_] | None = None
    ) -> DensityFeatures:
        """The map `estimate` gives and the C×h×w features under it (for calibration).

        Runs the derived graph (`features_model`), built on first use.
        """
        stack, h, w = self._stack(image, self._features())
        feats = stack[1:]
        density = stack[0] if self.output_layer is None else self.output_layer.apply(feats)
        return DensityFeatures(self._finish(density, h, w, roi_mask), feats.astype(np.float16))

    def refit_map(
        self, features: npt.NDArray[Any], layer: OutputLayer, like: DensityMap
    ) -> DensityMap:
        """The map an estimator with ``layer`` would give for ``features`` (same cells and
        region of interest as ``like``)."""
        return replace(like, density=self._floored(layer.apply(features), like.roi_mask))


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
    small, small_roi = _scaled_input(image, scale, roi_mask)
    dm: DensityMap = estimator.estimate(small, small_roi)
    return dm if small is image else replace(dm, resolution_wh=(image.shape[1], image.shape[0]))


def features_at_scale(
    estimator: DensityEstimator,
    image: ImageRGB,
    scale: float,
    roi_mask: npt.NDArray[np.bool_] | None = None,
) -> DensityFeatures:
    """`DensityEstimator.estimate_features` of ``image`` resized by ``scale``, the map
    described in the original's pixels (as `estimate_at_scale`)."""
    small, small_roi = _scaled_input(image, scale, roi_mask)
    df = estimator.estimate_features(small, small_roi)
    if small is image:
        return df
    return replace(df, map=replace(df.map, resolution_wh=(image.shape[1], image.shape[0])))


def _scaled_input(
    image: ImageRGB, scale: float, roi_mask: npt.NDArray[np.bool_] | None
) -> tuple[ImageRGB, npt.NDArray[np.bool_] | None]:
    """The image and region of interest the network sees at ``scale``."""
    if scale <= 0:
        raise ValueError(f"density scale must be > 0, got {scale}")
    small = resize_for_scale(image, scale)
    if roi_mask is None or small is image:
        return small, roi_mask
    small_roi = cv2.resize(
        roi_mask.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    return small, small_roi


def resize_for_scale(image: ImageRGB, scale: float) -> ImageRGB:
    """``image`` resized by ``scale`` as `estimate_at_scale` feeds it to the network."""
    if abs(scale - 1.0) < 1e-3:
        return image
    h, w = image.shape[:2]
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (sw, sh), interpolation=interp), np.uint8)


def _mask_to_cells(mask: npt.NDArray[np.bool_], hc: int, wc: int) -> npt.NDArray[np.bool_]:
    """A cell is inside when at least half of its pixels are."""
    h, w = mask.shape
    padded = np.zeros((hc * STRIDE, wc * STRIDE), np.float32)
    padded[:h, :w] = mask
    frac = padded.reshape(hc, STRIDE, wc, STRIDE).mean(axis=(1, 3))
    return np.asarray(frac >= 0.5)
