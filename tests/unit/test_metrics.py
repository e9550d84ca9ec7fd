"""Crowd metrics: level of service tables, occupancy, lines, dwell, flows, heatmap, series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdsight.analytics import SceneAnalytics, draw_scene
from crowdsight.analytics.metrics import (
    DwellStats,
    FlowMatrix,
    LineCounter,
    OccupancyHeatmap,
    OccupancyStats,
    TimeSeries,
    level_of_service,
)
from crowdsight.config.scene import LosStandard, parse_scene
from crowdsight.core.metrics import FlowCount, LineCounts, SceneMetrics, ZoneMetrics
from crowdsight.core.types import DensityMap, Detections, Frame


@pytest.mark.parametrize(
    ("per_m2", "fruin", "hcm"),
    [
        (0.0, "A", "A"),
        (0.1, "A", "A"),  # 10 m²/person
        (0.25, "A", "B"),  # 4 m²/person
        (0.4, "B", "C"),  # 2.5
        (0.6, "C", "D"),  # 1.67
        (0.9, "D", "E"),  # 1.11
        (1.5, "E", "F"),  # 0.67
        (2.5, "F", "F"),  # 0.4: Fruin F above ~2.15/m²
        (5.0, "F", "F"),
    ],
)
def test_level_of_service_tables(per_m2: float, fruin: str, hcm: str) -> None:
    assert level_of_service(per_m2, LosStandard.FRUIN) == fruin
    assert level_of_service(per_m2, LosStandard.HCM) == hcm


def test_level_of_service_is_monotonic() -> None:
    levels = [level_of_service(d) for d in np.linspace(0, 6, 200)]
    assert levels == sorted(levels)


def test_line_counter_counts_in_out_per_class() -> None:
    lc = LineCounter([0, 100], [200, 100], in_side=1)
    ids = np.array([1, 2])
    lc.update(ids, np.array([[50.0, 90], [60, 110]]), ["person", "bicycle"])
    crossed = lc.update(ids, np.array([[50.0, 110], [60, 90]]), ["person", "bicycle"])
    assert sorted(crossed) == [(1, 1, "person"), (2, -1, "bicycle")]
    assert (lc.count_in, lc.count_out) == (1, 1)
    assert lc.by_class["bicycle"] == [0, 1]
    lc.reset()
    assert (lc.count_in, lc.count_out) == (0, 0)


def test_line_counter_ignores_passing_beside_the_segment() -> None:
    lc = LineCounter([0, 100], [200, 100])
    lc.update(np.array([1]), np.array([[300.0, 90]]), ["person"])
    assert lc.update(np.array([1]), np.array([[300.0, 110]]), ["person"]) == []


def test_dwell_stats_histogram() -> None:
    d = DwellStats()
    for s in (1, 2, 20, 400):
        d.add(s)
    out = d.summary()
    assert out["count"] == 4
    assert out["max_s"] == 400
    assert out["histogram"] == {  # type: ignore[comparison-overlap]
        "0-5s": 2,
        "5-15s": 0,
        "15-30s": 1,
        "30-60s": 0,
        "60-120s": 0,
        "120-300s": 0,
        ">300s": 1,
    }
    assert DwellStats().summary() == {"count": 0}


def test_flow_matrix_counts_transitions_only() -> None:
    f = FlowMatrix()
    for tid, zones in ((1, "abc"), (2, "ab"), (3, "a"), (4, "aa")):
        for z in zones:
            f.entered(tid, z)
        f.forget(tid)
    assert f.as_dict()["links"] == [
        {"source": "a", "target": "b", "value": 2},
        {"source": "b", "target": "c", "value": 1},
    ]


def test_occupancy_stats() -> None:
    o = OccupancyStats()
    for occ, dens in ((2, 0.5), (6, 1.5), (4, 1.0)):
        o.add(occ, dens, level_of_service(dens))
    s = o.summary()
    assert s["mean_occupancy"] == pytest.approx(4.0)
    assert s["peak_occupancy"] == 6
    assert s["los_share"]["E"] == pytest.approx(1 / 3)  # type: ignore[index]


def test_heatmap_accumulates_per_cell() -> None:
    h = OccupancyHeatmap(cell_px=10)
    h.add(np.array([[5.0, 5.0], [15.0, 5.0]]), (30, 20))
    h.add(np.array([[5.0, 5.0]]), (30, 20))
    m = h.mean_per_frame()
    assert m.shape == (2, 3)
    assert m[0, 0] == pytest.approx(1.0) and m[0, 1] == pytest.approx(0.5)
    assert m.sum() == pytest.approx(1.5)


def test_time_series_buckets() -> None:
    ts = TimeSeries(interval_s=10)
    for t, v in ((0, 1.0), (5, 3.0), (12, 10.0)):
        ts.add(t, {"x": v})
    assert ts.rows() == [
        {"t_start_s": 0.0, "x:mean": 2.0, "x:max": 3.0},
        {"t_start_s": 10.0, "x:mean": 10.0, "x:max": 10.0},
    ]


def test_zone_occupancy_from_density_map_and_per_m2() -> None:
    scene = parse_scene(
        {
            "calibration": {
                "image_px": [[0, 0], [80, 0], [80, 80], [0, 80]],
                "ground_m": [[0, 0], [8, 0], [8, 8], [0, 8]],
            },
            "zones": [{"id": "left", "polygon": [[0, 0], [40, 0], [40, 80], [0, 80]]}],
            "metrics": {"los_standard": "hcm"},
        }
    )
    sa = SceneAnalytics(scene, "cam")
    density = np.zeros((10, 10), np.float32)
    density[:, :5] = 0.5  # 25 people on the left half, 0 on the right
    dm = DensityMap(density, (80, 80))
    frame = Frame("cam", 0, 0.0, np.zeros((80, 80, 3), np.uint8))
    m = sa.update(frame, Detections.empty(), dm, True).metrics
    left = m.zones["left"]
    assert left.occupancy == pytest.approx(25.0)
    assert left.density_per_m2 == pytest.approx(25.0 / 32.0)
    assert left.los_index == 4  # 1.28 m²/person: HCM E
    assert sa.roi_mask((80, 80)).sum() == 40 * 80  # type: ignore[union-attr]


def test_draw_scene_returns_new_image_with_overlays() -> None:
    scene = parse_scene(
        {
            "resolution_wh": [100, 100],
            "zones": [{"id": "z", "polygon": [[10, 10], [90, 10], [90, 90], [10, 90]]}],
            "lines": [{"id": "l", "points": [[0, 50], [100, 50]]}],
        }
    )
    img = np.zeros((200, 200, 3), np.uint8)
    live = SceneMetrics(
        zones={"z": ZoneMetrics(occupancy=3)}, lines={"l": LineCounts(count_in=2, count_out=1)}
    )
    out = draw_scene(img, scene, live)
    assert out.shape == img.shape and out is not img
    assert img.sum() == 0  # input untouched
    assert out[100, 100].sum() > 0  # zone fill, scaled to 200×200


@pytest.mark.parametrize(
    ("scores", "labels", "auc"),
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),
        ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),  # ties count half
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ],
)
def test_frame_auc_by_ranks(scores: list[float], labels: list[int], auc: float) -> None:
    from crowdsight.analytics.anomaly import frame_auc

    assert frame_auc(scores, labels) == pytest.approx(auc)


def test_motion_normality_flags_fast_blob_after_warmup() -> None:
    from crowdsight.analytics.anomaly import MotionNormality

    rng = np.random.default_rng(0)
    base = (rng.uniform(0, 255, (120, 180)) > 128).astype(np.uint8) * 255
    base = np.asarray(np.repeat(base[..., None], 3, axis=2))
    model = MotionNormality(work_width=90, cell_px=10, warmup_s=2.0)

    def frame(shift_slow: int, fast_x: int | None) -> np.ndarray:
        img = np.roll(base, shift_slow, axis=1).copy()  # slow drift everywhere: "walkers"
        if fast_x is not None:
            img[40:70, fast_x : fast_x + 30] = 255  # a bright block racing across
            img[50:60, fast_x + 10 : fast_x + 20] = 0
        return img

    normal = [model.update(frame(i // 5, None), i / 10) for i in range(40)]
    fast = [model.update(frame(8 + i // 5, 20 + 12 * i), 4.0 + i / 10) for i in range(1, 8)]
    assert max(normal[25:]) < min(fast[1:])


def _invoke(args: list[str]) -> Any:
    from typer.testing import CliRunner

    from crowdsight.cli import _register, app

    _register()
    return CliRunner().invoke(app, ["eval", "anomaly", *args])


def test_eval_anomaly_cli_input_errors(tmp_path: Path) -> None:
    from crowdsight.core.errors import InputError

    (tmp_path / "clips" / "01").mkdir(parents=True)
    cases = [
        (["--frames", str(tmp_path / "missing"), "--labels", "x.npy"], "frames folder not found"),
        (["--frames", str(tmp_path / "clips"), "--labels", "x.npy"], "no clip sub-folders"),
    ]
    for args, needle in cases:
        res = _invoke(args)
        # `crowdsight.cli.main` prints an InputError as one line and exits 2.
        assert isinstance(res.exception, InputError)
        assert needle in str(res.exception) and "\n" not in str(res.exception)


def test_eval_anomaly_cli_learned_and_training_free(tmp_path: Path) -> None:
    import json

    import cv2

    rng = np.random.default_rng(0)
    base = ((rng.uniform(0, 255, (120, 180)) > 128) * 255).astype(np.uint8)
    labels: list[int] = []

    def write_clip(folder: Path, n: int, fast: range) -> None:
        folder.mkdir(parents=True)
        for i in range(n):
            img = np.roll(base, i // 5, axis=1).copy()
            if i in fast:
                x = 10 + 15 * (i - fast.start)
                img[40:70, x : x + 30] = 255
                img[50:60, x + 10 : x + 20] = 0
            cv2.imwrite(str(folder / f"{i:03d}.png"), img)

    for clip, fast in (("01", range(12, 20)), ("02", range(3, 9))):
        write_clip(tmp_path / "test" / clip, 24, fast)
        labels += [int(i in fast) for i in range(24)]
    write_clip(tmp_path / "train" / "01", 20, range(0))
    np.save(tmp_path / "labels.npy", np.array(labels)[None, :])

    for extra, used in (([], False), (["--train-frames", str(tmp_path / "train")], True)):
        out = _invoke(
            [
                "--frames",
                str(tmp_path / "test"),
                "--labels",
                str(tmp_path / "labels.npy"),
                "--work-width",
                "90",
                "--cell-px",
                "10",
                "--sigma",
                "1",
                "--method",
                "cells",
                "--json",
                *extra,
            ]
        )
        assert out.exit_code == 0, out.output
        res = json.loads(out.stdout.strip().splitlines()[-1])
        assert (res["frames"], res["clips"], res["training_frames_used"]) == (48, 2, used)
        assert res["auc"] > 90.0, res


def test_draw_occupancy_heatmap_colours_busy_cells_only() -> None:
    from crowdsight.analytics import draw_occupancy_heatmap

    h = OccupancyHeatmap(cell_px=10)
    for _ in range(5):
        h.add(np.array([[15.0, 15.0]]), (40, 40))
    img = np.full((40, 40, 3), 128, np.uint8)
    out = draw_occupancy_heatmap(img, h.mean_per_frame())
    assert (img == 128).all()  # accumulation and drawing are separate; input untouched
    assert np.abs(out[15, 15].astype(int) - 128).sum() > 30  # busy cell coloured
    assert (out[35, 35] == 128).all()  # empty cell clear


@pytest.mark.parametrize(
    ("metrics", "rows"),
    [
        (SceneMetrics(), {}),
        (SceneMetrics(counts={"count_density": 2.5}), {"count_density": 2.5}),
        (
            SceneMetrics(zones={"a:b": ZoneMetrics(occupancy=3, density_per_m2=0.5, los_index=1)}),
            {"zone:a:b:occupancy": 3.0, "zone:a:b:density_per_m2": 0.5, "zone:a:b:los_index": 1.0},
        ),
        (SceneMetrics(zones={"z": ZoneMetrics(occupancy=3)}), {"zone:z:occupancy": 3.0}),
        (
            SceneMetrics(lines={"gate": LineCounts(count_in=4, count_out=1)}),
            {"line:gate:in": 4.0, "line:gate:out": 1.0},
        ),
        (
            SceneMetrics(flows=[FlowCount(from_zone="gate", to_zone="hall", count=7)]),
            {"flow:gate>hall": 7.0},
        ),
    ],
)
def test_scene_metrics_and_stored_rows_convert_both_ways(
    metrics: SceneMetrics, rows: dict[str, float]
) -> None:
    assert metrics.to_rows() == rows
    assert SceneMetrics.from_rows(rows) == metrics
    assert bool(metrics) == bool(rows)


def test_scene_metrics_refuse_unknown_fields_and_non_finite_values() -> None:
    with pytest.raises(ValueError, match="extra"):
        ZoneMetrics.model_validate({"occupancy": 1, "count": 2})
    with pytest.raises(ValueError, match="finite"):
        SceneMetrics(counts={"count_density": float("nan")})
