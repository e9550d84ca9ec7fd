"""`crowdsight eval counting`: MAE / RMSE of crowd counts on labelled images."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import track

from crowdsight.cli.apps import eval_app
from crowdsight.config.pipeline import DEFAULT_DETECTOR, PipelineSettings
from crowdsight.datasets.counting import CountingFormat, iter_items
from crowdsight.sources.files import read_image

if TYPE_CHECKING:
    from crowdsight.core.types import DensityMap, Detections, ImageRGB
    from crowdsight.perception.density import DensityEstimator, DensityFeatures

console = Console(stderr=True)


def _errors(err: list[float], gt: list[int]) -> dict[str, float]:
    n = len(err)
    rel = [abs(e) / g for e, g in zip(err, gt, strict=True) if g > 0]
    return {
        "mae": round(sum(abs(e) for e in err) / n, 3),
        "rmse": round(math.sqrt(sum(e * e for e in err) / n), 3),
        "mean_rel": round(sum(rel) / len(rel), 4) if rel else float("nan"),
    }


def density_for_image(
    image: ImageRGB, estimator: Any, detector: Any, *, auto_scale: bool, features: bool = False
) -> tuple[DensityMap, Detections | None, float, DensityFeatures | None]:
    """The density map of one image as `eval counting` and `calibrate counting` see it.

    Returns (map, the detector's detections or None, the density input scale used, and with
    ``features`` the map and network features at that scale, as
    `DensityEstimator.estimate_features` gives them, described in the original's pixels).
    """
    from crowdsight.core.types import Frame
    from crowdsight.perception.density import estimate_at_scale, features_at_scale
    from crowdsight.perception.density_scale import scale_for_heights
    from crowdsight.perception.fusion import person_boxes

    dets = detector.detect(Frame("eval", 0, 0.0, image)) if detector is not None else None
    scale = 1.0
    if auto_scale and dets is not None:
        boxes = person_boxes(dets)
        scale = scale_for_heights(boxes[:, 3] - boxes[:, 1]) or 1.0
    if not features:
        return estimate_at_scale(estimator, image, scale), dets, scale, None
    df = features_at_scale(estimator, image, scale)
    return df.map, dets, scale, df


def counting_models(detector_spec: str, *, detector: bool) -> tuple[DensityEstimator, Any]:
    """(density estimator, detector or None) as `eval counting` and `calibrate counting`
    build them: the runtime from the environment (the edge), the detector as the pipeline
    builds it."""
    from crowdsight.config.runtime import RuntimeConfig
    from crowdsight.perception.density import DensityEstimator

    runtime = RuntimeConfig.from_env()  # the edge: CROWDSIGHT_PROVIDERS read here
    est = DensityEstimator(runtime=runtime)
    if not detector:
        return est, None
    from crowdsight.pipeline.camera import build_pipeline_detector

    return est, build_pipeline_detector(PipelineSettings(detector=detector_spec, runtime=runtime))


@eval_app.command("counting")
def eval_counting(
    images: Annotated[
        Path,
        typer.Option(
            help="Folder of images (Mall: the frames folder; MOT: a sequence folder with "
            "img1/, or a folder of sequences)."
        ),
    ],
    fmt: Annotated[CountingFormat, typer.Option("--format", help="Dataset layout.")],
    points: Annotated[
        Path | None,
        typer.Option(
            help="Folder of ground-truth .mat files (Mall: the mall_gt.mat file; MOT: the "
            "gt.txt, default <sequence>/gt/gt.txt)."
        ),
    ] = None,
    rng: Annotated[
        str | None,
        typer.Option(
            "--range", help="1-based inclusive item range, e.g. 801-2000 for Mall's test split."
        ),
    ] = None,
    step: Annotated[
        int,
        typer.Option(
            "--step", min=1, help="Score every k-th item of the range (long sequences on a CPU)."
        ),
    ] = 1,
    auto_scale: Annotated[
        bool,
        typer.Option(
            "--auto-scale/--no-auto-scale",
            help="Resize each image for the density model so its detected people are the "
            "size it counts well (needs ≥ 8 person boxes; otherwise scale 1).",
        ),
    ] = True,
    fuse: Annotated[
        bool,
        typer.Option(
            "--fuse/--no-fuse",
            help="Count large people by detection and the rest by density (the predicted "
            "count); --no-fuse predicts the density count alone.",
        ),
    ] = True,
    regional: Annotated[
        bool,
        typer.Option(
            "--regional/--no-regional",
            help="With --fuse: rows where people look large enough to detect are counted by "
            "detection alone (the pipeline's default); --no-regional fuses per box only.",
        ),
    ] = True,
    detector_spec: Annotated[
        str,
        typer.Option(
            "--detector",
            help="Person detector for --auto-scale and --fuse, built as the pipeline builds "
            "it (its own threshold, slicing: auto): 'nanodet' (default), 'ssdlite', ….",
        ),
    ] = DEFAULT_DETECTOR,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="Count calibration JSON of this camera (`crowdsight calibrate counting`): "
            "its refitted output layer or row gains correct the density map before fusion; "
            "the uncalibrated figures are reported too."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Predict every image and print MAE, RMSE and mean relative error.

    The density model sees the image at full resolution (CSRNet's protocol) or, with
    --auto-scale, resized so its median person box is the height the model counts well;
    very large images are tiled with overlap. With --fuse (default) the detector's large
    person boxes are counted one each and the density under them dropped; the detection,
    density and fused counts are all reported.
    """
    from crowdsight.perception.count_calibration import apply_calibration, load_calibration
    from crowdsight.perception.fusion import fuse_counts

    cal = load_calibration(calibration) if calibration is not None else None
    layer = cal.output_layer.layer() if cal is not None and cal.output_layer else None
    items = iter_items(images, points, fmt, rng)[::step]
    est, detector = counting_models(detector_spec, detector=auto_scale or fuse)
    rows: list[dict[str, str | float | None]] = []
    errs: dict[str, list[float]] = {
        "fused": [],
        "density": [],
        "detection": [],
        "other": [],
        "uncalibrated": [],
    }
    gts: list[int] = []
    for item in track(items, description="counting", console=console):
        image = read_image(item.image)
        dm, dets, scale, df = density_for_image(
            image, est, detector, auto_scale=auto_scale, features=layer is not None
        )
        if cal is not None:
            raw = fuse_counts(dm, dets if fuse else None, regional=regional)
            errs["uncalibrated"].append((raw.fused if fuse else raw.density) - item.gt)
            if df is not None and layer is not None:  # the refitted output layer, same features
                dm = est.refit_map(df.features, layer, dm)
            dm = apply_calibration(dm, cal)
        counts = fuse_counts(dm, dets if fuse else None, regional=regional)
        other = fuse_counts(dm, dets if fuse else None, regional=not regional)
        pred = counts.fused if fuse else counts.density
        rows.append(
            {
                "image": item.image.name,
                "gt": item.gt,
                "pred": round(pred, 3),
                "density": round(counts.density, 3),
                "detection": counts.detection,
                "scale": round(scale, 3),
                "zone_rows": counts.zone_rows,
                "horizon_px": None if counts.horizon_px is None else round(counts.horizon_px, 1),
            }
        )
        errs["fused"].append(pred - item.gt)
        errs["other"].append((other.fused if fuse else other.density) - item.gt)
        errs["density"].append(counts.density - item.gt)
        errs["detection"].append(counts.detection - item.gt)
        gts.append(item.gt)
    res = _errors(errs["fused"], gts)
    console.print(
        f"{len(rows)} images: MAE {res['mae']:.2f}  RMSE {res['rmse']:.2f}  "
        f"mean relative error {100 * res['mean_rel']:.1f} %"
    )
    for name in ("density", "detection"):
        if detector is not None:
            e = _errors(errs[name], gts)
            console.print(f"  {name} alone: MAE {e['mae']:.2f}  RMSE {e['rmse']:.2f}")
    if cal is not None:
        e = _errors(errs["uncalibrated"], gts)
        console.print(f"  without the calibration: MAE {e['mae']:.2f}  RMSE {e['rmse']:.2f}")
    if as_json:
        out: dict[str, Any] = {**res, "n": len(rows), "detector": detector_spec, "items": rows}
        if cal is not None:
            out["calibration"] = str(calibration)
            out["uncalibrated"] = _errors(errs["uncalibrated"], gts)
        if detector is not None:
            out["density_only"] = _errors(errs["density"], gts)
            out["detection_only"] = _errors(errs["detection"], gts)
            out["regional" if not regional else "per_box_only"] = _errors(errs["other"], gts)
        print(json.dumps(out))
    else:
        print(
            f"MAE {res['mae']:.2f} RMSE {res['rmse']:.2f} "
            f"mean_rel {100 * res['mean_rel']:.1f}% n={len(rows)}"
        )
