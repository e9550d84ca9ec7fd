"""Per-camera count calibration: row gains recovered, files validated, the pipeline applies it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.config.scene import SceneConfig
from crowdsight.core.errors import ConfigError, InputError
from crowdsight.core.types import DensityMap, Frame
from crowdsight.perception.count_calibration import (
    CalibrationSample,
    CountCalibration,
    LayerFit,
    apply_calibration,
    blocked_folds,
    calibrate,
    cross_validate,
    fit_gains,
    load_calibration,
    row_gains,
    save_calibration,
)
from crowdsight.perception.density import DensityFeatures, OutputLayer
from crowdsight.pipeline.camera import CameraPipeline

ROWS = 60


def _synthetic(true_gains: list[float], n_frames: int, seed: int = 0) -> list[CalibrationSample]:
    """Frames whose density model misses heads by 1/gain(row): the calibration's own model."""
    rng = np.random.default_rng(seed)
    g = row_gains(ROWS, true_gains)
    out = []
    for _ in range(n_frames):
        heads = rng.uniform(0, 1, rng.poisson(30))
        profile = np.zeros(ROWS)
        np.add.at(profile, (heads * ROWS).astype(int), 1.0 / g[(heads * ROWS).astype(int)])
        out.append(CalibrationSample(profile, heads))
    return out


@pytest.mark.parametrize(
    ("true_gains", "knots"),
    [([1.3], 1), ([1.5, 1.0, 0.7], 3), ([0.8, 1.6], 2), ([2.0, 1.5, 1.0, 0.8, 0.6, 0.5], 6)],
)
def test_gains_recovered_on_synthetic_maps(true_gains: list[float], knots: int) -> None:
    gains = fit_gains(_synthetic(true_gains, 80), knots, ridge_frames=0.0)
    assert gains == pytest.approx(true_gains, abs=1e-6)


def test_ridge_pulls_gains_towards_one() -> None:
    samples = _synthetic([2.0, 0.5], 10)
    free = fit_gains(samples, 2, 0.0)
    held = fit_gains(samples, 2, 1000.0)
    assert np.all(np.abs(held - 1.0) < np.abs(free - 1.0))
    assert np.all(np.abs(held - 1.0) < 0.05)


def test_cross_validation_picks_the_knots_the_data_needs() -> None:
    flat = calibrate(_synthetic([1.4], 60), (640, 480), data="synthetic", frames="all")
    assert len(flat.gains) == 1 and flat.gains[0] == pytest.approx(1.4, abs=1e-3)
    sloped = calibrate(_synthetic([1.8, 1.0, 0.6], 60), (640, 480), data="s", frames="all")
    assert len(sloped.gains) >= 3
    assert sloped.cv_mae_calibrated is not None and sloped.cv_mae_uncalibrated is not None
    assert sloped.cv_mae_calibrated < 0.1 * sloped.cv_mae_uncalibrated


def test_no_correction_is_kept_when_no_fit_beats_it() -> None:
    # Right on average but noisy frame by frame, with mass put in the wrong band (like a
    # density model spreading far heads downwards): gains cannot help the whole-frame count.
    rng = np.random.default_rng(3)
    samples = []
    for _ in range(60):
        heads = rng.uniform(0, 0.5, rng.poisson(30))
        profile = np.zeros(ROWS)
        np.add.at(profile, ((heads + 0.5) * ROWS).astype(int), rng.normal(1.0, 0.3, len(heads)))
        samples.append(CalibrationSample(profile, heads))
    cal = calibrate(samples, (640, 480), data="s", frames="all")
    assert cal.target == "none" and cal.gains == [1.0]
    assert cal.cv_mae_calibrated == cal.cv_mae_uncalibrated
    # The per-band fit "corrects" the misplaced mass and ruins the whole-frame count.
    bands = fit_gains(samples, 2, 0.0, "bands")
    raw = np.mean([abs(s.row_profile.sum() - len(s.head_rows)) for s in samples])
    fitted = np.mean(
        [abs(row_gains(ROWS, bands) @ s.row_profile - len(s.head_rows)) for s in samples]
    )
    assert fitted > 2 * raw


def test_total_target_fits_whole_frame_counts() -> None:
    gains = fit_gains(_synthetic([1.3], 40), 1, 0.0, "total")
    assert gains == pytest.approx([1.3], abs=1e-6)


def test_blocked_folds_are_consecutive_and_cover_everything() -> None:
    folds = blocked_folds(23, 5)
    assert len(folds) == 5
    assert np.concatenate(folds).tolist() == list(range(23))
    assert all(np.all(np.diff(f) == 1) for f in folds)


def test_sample_from_map_uses_head_rows_as_fractions() -> None:
    dm = DensityMap(np.ones((6, 8), np.float32), (64, 48))
    s = CalibrationSample.from_map(dm, np.array([[10.0, 0.0], [10.0, 24.0], [5.0, 48.0]]))
    assert s.row_profile.tolist() == [8.0] * 6
    assert s.head_rows.tolist() == [0.0, 0.5, 1.0]


def test_apply_scales_rows_smoothly_and_keeps_the_map() -> None:
    cal = CountCalibration(resolution_wh=(640, 480), gains=[2.0, 1.0], data="d", frames="f")
    dm = DensityMap(np.ones((60, 80), np.float32), (640, 480))
    out = apply_calibration(dm, cal)
    col = out.density[:, 0]
    assert col[0] == pytest.approx(2.0) and col[-1] == pytest.approx(1.0)
    assert np.all(np.diff(col) <= 1e-6)  # monotone, no seam
    assert out.resolution_wh == dm.resolution_wh and dm.density.max() == 1.0  # input untouched
    # A sub-stream of the same camera (same aspect ratio, half the size) may use it.
    assert apply_calibration(DensityMap(np.ones((30, 40), np.float32), (320, 240)), cal).count > 0


def test_apply_refuses_another_aspect_ratio() -> None:
    cal = CountCalibration(resolution_wh=(640, 480), gains=[1.2], data="d", frames="f")
    with pytest.raises(InputError, match=r"fitted on 640x480 .* sends 1920x1080"):
        apply_calibration(DensityMap(np.ones((135, 240), np.float32), (1920, 1080)), cal)


def test_file_round_trip(tmp_path: Path) -> None:
    cal = calibrate(_synthetic([1.2, 0.9], 20), (640, 480), data="mall", frames="1-800")
    path = tmp_path / "cal.json"
    save_calibration(cal, path)
    assert load_calibration(path) == cal
    text = json.loads(path.read_text())
    assert {"format", "resolution_wh", "gains", "cv", "data", "frames"} <= text.keys()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        (
            '{"format": "other/1", "resolution_wh": [640, 480], "gains": [1.0], "data": "d", '
            '"frames": "f"}',
            "format",
        ),
        ('{"resolution_wh": [640, 480], "gains": [], "data": "d", "frames": "f"}', "gains"),
        ('{"resolution_wh": [640, 480], "gains": [-1.0], "data": "d", "frames": "f"}', "gains"),
        ('{"resolution_wh": [640], "gains": [1.0], "data": "d", "frames": "f"}', "resolution_wh"),
        ('{"resolution_wh": [640, 480], "gains": [1.0], "data": "d", "frames": "f", "x": 1}', "x"),
    ],
)
def test_bad_files_give_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        load_calibration(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read count calibration"):
        load_calibration(tmp_path / "absent.json")


class FlatDensity:
    """A uniform map of 0.01 people per cell."""

    def estimate(self, image: Any, roi_mask: Any = None) -> DensityMap:
        h, w = image.shape[:2]
        return DensityMap(np.full((-(-h // 8), -(-w // 8)), 0.01, np.float32), (w, h))


def test_pipeline_applies_the_scene_calibration(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    save_calibration(
        CountCalibration(resolution_wh=(640, 480), gains=[3.0, 1.0], data="d", frames="f"), path
    )
    settings = PipelineSettings(detect=False, density_every_n=1, density_scale=1.0)
    frame = Frame("cam", 0, 0.0, np.zeros((480, 640, 3), np.uint8))
    plain = CameraPipeline("cam", settings, density_estimator=FlatDensity()).process(frame)
    scene = SceneConfig.model_validate({"counting": {"calibration": str(path)}})
    calibrated = CameraPipeline(
        "cam", settings, scene=scene, density_estimator=FlatDensity()
    ).process(frame)
    assert plain.density is not None and calibrated.density is not None
    # The map the heatmap shows and the fused count are both the calibrated ones.
    expected = float((row_gains(60, [3.0, 1.0]) * 0.01 * 80).sum())
    assert calibrated.density.count == pytest.approx(expected, rel=1e-4)
    assert calibrated.metrics.counts["count_fused"] == pytest.approx(expected, rel=1e-4)
    assert calibrated.density.density[0, 0] == pytest.approx(0.03)
    assert plain.metrics.counts["count_fused"] == pytest.approx(48.0, rel=1e-4)
    # The dashboard says the counts are calibrated, and on how many labelled frames.
    assert "count_calibration_frames" not in plain.metrics.counts
    assert calibrated.metrics.counts["count_calibration_frames"] == 0.0
    assert "count_calibration_mae" not in calibrated.metrics.counts


def test_pipeline_refuses_a_bad_calibration_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text("[]")
    scene = SceneConfig.model_validate({"counting": {"calibration": str(path)}})
    with pytest.raises(InputError, match="not a count calibration"):
        CameraPipeline(
            "cam",
            PipelineSettings(detect=False),
            scene=scene,
            density_estimator=FlatDensity(),
        )


# --- Output-layer refits (target "cells") ---------------------------------------------------

TRUE_LAYER = OutputLayer(np.array([0.02, 0.05, 0.01, 0.0], np.float32), 0.002)


def _feature_frames(base: OutputLayer, n: int, seed: int = 0) -> list[CalibrationSample]:
    """Frames of 4-channel features whose heads follow `TRUE_LAYER`, mapped by ``base``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # Spatially smooth features, like a CNN's; channel 1 (the crowd) changes per frame.
        f = gaussian_filter(rng.gamma(2.0, 1.0, (4, 12, 16)), (0, 1.5, 1.5)).astype(np.float16)
        f[1] *= rng.uniform(0.1, 3.0)
        heads = rng.poisson(np.maximum(TRUE_LAYER.apply(f), 0.0))
        rows, cols = np.nonzero(heads)
        cells = np.repeat(np.stack([rows, cols], axis=1), heads[rows, cols], axis=0)
        points = (cells[:, ::-1] + 0.5) * 8.0  # (x, y) pixels at the cell centres
        dm = DensityMap(np.maximum(base.apply(f), 0.0), (128, 96))
        out.append(CalibrationSample.from_features(DensityFeatures(dm, f), points))
    return out


def test_sample_from_features_puts_heads_in_their_cells() -> None:
    f = np.ones((2, 3, 4), np.float16)
    dm = DensityMap(np.zeros((3, 4), np.float32), (32, 24))  # 8 px cells
    s = CalibrationSample.from_features(
        DensityFeatures(dm, f), np.array([[20.0, 9.0], [31.9, 23.9], [40.0, -3.0]])
    )
    assert s.head_cells is not None
    assert s.head_cells.tolist() == [[1, 2], [2, 3], [0, 3]]  # outside points clipped in
    assert s.features is f


def test_refit_of_a_wrong_output_layer_is_chosen_and_fixes_the_count() -> None:
    wrong = OutputLayer(TRUE_LAYER.weights * np.array([1.0, 0.3, 1.5, 1.0], np.float32), 0.002)
    samples = _feature_frames(wrong, 40)
    cal = calibrate(samples, (128, 96), data="synthetic", frames="all", base_layer=wrong)
    assert cal.target == "cells" and cal.output_layer is not None
    assert cal.gains == [1.0]
    assert cal.cv_mae_uncalibrated is not None and cal.cv_mae_calibrated is not None
    assert cal.cv_mae_calibrated < 0.5 * cal.cv_mae_uncalibrated
    # The refitted layer counts fresh frames of the same camera better than the wrong one.
    fresh = _feature_frames(wrong, 20, seed=1)
    layer = cal.output_layer.layer()

    def mae(lay: OutputLayer) -> float:
        assert all(s.features is not None for s in fresh)
        return float(
            np.mean([abs(lay.apply(s.features).sum() - len(s.head_rows)) for s in fresh])  # type: ignore[arg-type]
        )

    assert mae(layer) < 0.5 * mae(wrong)


def test_refit_is_not_chosen_when_the_shipped_layer_is_right() -> None:
    samples = _feature_frames(TRUE_LAYER, 40)
    cal = calibrate(samples, (128, 96), data="synthetic", frames="all", base_layer=TRUE_LAYER)
    assert cal.target != "cells" and cal.output_layer is None
    assert any(r.target == "cells" for r in cal.cv)  # it was tried


def test_refits_are_tried_only_with_features_and_a_base_layer() -> None:
    with_features = _feature_frames(TRUE_LAYER, 6)
    plain = [CalibrationSample(s.row_profile, s.head_rows) for s in with_features]
    assert not any(r.target == "cells" for r in cross_validate(plain, base_layer=TRUE_LAYER))
    assert not any(r.target == "cells" for r in cross_validate(with_features))


def _refit_file(path: Path, weights: list[float], bias: float) -> Path:
    """A calibration file whose correction is a refitted output layer."""
    fit = LayerFit(weights=weights, bias=bias, sigma_cells=2.0)
    cal = CountCalibration(
        resolution_wh=(640, 480),
        gains=[1.0],
        target="cells",
        data="d",
        frames="f",
        output_layer=fit,
    )
    save_calibration(cal, path)
    return path


def test_a_refit_file_round_trips_and_must_carry_its_layer(tmp_path: Path) -> None:
    path = _refit_file(tmp_path / "cal.json", [0.1, 0.2], 0.01)
    back = load_calibration(path)
    assert back.output_layer is not None
    assert back.output_layer.layer().weights.tolist() == pytest.approx([0.1, 0.2])
    raw = json.loads(path.read_text())
    raw.pop("output_layer")
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="output_layer"):
        load_calibration(path)


def test_output_layer_refuses_features_of_another_width() -> None:
    with pytest.raises(ValueError, match="4 weights, features have 3"):
        TRUE_LAYER.apply(np.zeros((3, 2, 2), np.float32))


class RefitDensity(FlatDensity):
    """A flat map that records the output layer the pipeline hands it."""

    def __init__(self) -> None:
        self.layers: list[OutputLayer] = []

    def use_output_layer(self, layer: OutputLayer) -> None:
        self.layers.append(layer)


def test_pipeline_hands_a_refitted_layer_to_its_estimator(tmp_path: Path) -> None:
    path = _refit_file(tmp_path / "cal.json", [0.5] * 4, 0.0)
    scene = SceneConfig.model_validate({"counting": {"calibration": str(path)}})
    settings = PipelineSettings(detect=False, density_every_n=1, density_scale=1.0)
    est = RefitDensity()
    CameraPipeline("cam", settings, scene=scene, density_estimator=est)
    assert len(est.layers) == 1 and est.layers[0].weights.tolist() == [0.5] * 4
    with pytest.raises(ConfigError, match="cannot use"):
        CameraPipeline("cam", settings, scene=scene, density_estimator=FlatDensity())
