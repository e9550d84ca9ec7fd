"""`crowdsight calibrate counting`: fit a camera's count calibration on its labelled frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

from crowdsight.cli.apps import calibrate_app
from crowdsight.config.pipeline import DEFAULT_DETECTOR
from crowdsight.datasets.counting import CountingFormat, iter_items
from crowdsight.sources.files import read_image

console = Console(stderr=True)
#: Memory for every frame's density features (kept for the held-out scoring of the
#: output-layer refit): 400 Mall frames take 240 MB.
MAX_FEATURE_BYTES = 2 * 2**30


@calibrate_app.command("counting")
def calibrate_counting(
    frames: Annotated[
        Path,
        typer.Option(
            help="Folder of the camera's labelled frames (Mall: the frames folder; MOT: a "
            "sequence folder with img1/)."
        ),
    ],
    fmt: Annotated[CountingFormat, typer.Option("--format", help="Dataset layout.")],
    out: Annotated[Path, typer.Option(help="Calibration JSON to write.")],
    points: Annotated[
        Path | None,
        typer.Option(help="Head points: the .mat file(s) or gt.txt, as `eval counting` reads."),
    ] = None,
    rng: Annotated[
        str | None,
        typer.Option("--range", help="1-based inclusive frame range, e.g. 1-800 (Mall's train)."),
    ] = None,
    step: Annotated[int, typer.Option("--step", min=1, help="Use every k-th frame.")] = 1,
    auto_scale: Annotated[
        bool,
        typer.Option(
            "--auto-scale/--no-auto-scale",
            help="Density input scale from the detected people, as `eval counting` and the "
            "live pipeline use it (keep it as the camera will run).",
        ),
    ] = True,
    detector_spec: Annotated[
        str, typer.Option("--detector", help="Person detector for --auto-scale.")
    ] = DEFAULT_DETECTOR,
) -> None:
    """Fit the correction of the density count that holds best on one camera.

    Every frame's density map (and the network's features under it) is computed as the live
    pipeline computes it. Candidates: a smooth gain over image rows (fitted to whole-frame or
    per-band head counts, 1–8 bands) and a refit of the density model's output layer to the
    labelled heads; which one, and its settings, are chosen by cross-validation over blocks
    of consecutive frames, then fitted on all frames; no correction is kept unless a fit
    beats it there. Use the file with `eval counting --calibration` or a camera scene's
    ``counting.calibration``.
    """
    from crowdsight.cli.eval_counting import counting_models, density_for_image
    from crowdsight.core.errors import InputError
    from crowdsight.perception.count_calibration import (
        CalibrationSample,
        calibrate,
        save_calibration,
    )
    from crowdsight.perception.density import output_layer_of

    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    items = iter_items(frames, points, fmt, rng)[::step]
    if len(items) < 2:
        raise InputError(f"{frames}: count calibration needs at least 2 labelled frames")
    est, detector = counting_models(detector_spec, detector=auto_scale)
    samples: list[CalibrationSample] = []
    sizes: set[tuple[int, int]] = set()
    for item in track(items, description="density maps", console=console):
        image = read_image(item.image)
        _, _, _, df = density_for_image(image, est, detector, auto_scale=auto_scale, features=True)
        assert df is not None
        need = df.features.nbytes * len(items)
        if not samples and need > MAX_FEATURE_BYTES:  # one camera: every frame the same size
            larger = step * -(-need // MAX_FEATURE_BYTES)
            raise InputError(
                f"{frames}: {len(items)} frames of {df.features.nbytes / 2**20:.1f} MB of "
                f"density features each need {need / 2**30:.1f} GB; use a larger --step "
                f"(--step {larger} fits; a few hundred frames are plenty)"
            )
        sizes.add(df.map.resolution_wh)
        samples.append(CalibrationSample.from_features(df, item.points))
    if len(sizes) > 1:
        raise InputError(f"{frames}: frames of several sizes {sorted(sizes)}; one camera only")
    cal = calibrate(
        samples,
        sizes.pop(),
        data=f"{frames} ({fmt.value}, points {points})",
        frames=f"range {rng or 'all'}, every {step}",
        base_layer=output_layer_of(est.model_file),
        floor=est.floor,
    )
    save_calibration(cal, out)
    kind = (
        f"output layer refitted (targets σ {cal.output_layer.sigma_cells:g} cells)"
        if cal.output_layer
        else f"{len(cal.gains)} band gain(s) {cal.gains}"
    )
    console.print(
        f"{cal.n_frames} frames: {cal.target}: {kind} (ridge {cal.ridge_frames:g} frames); "
        f"cross-validated MAE {cal.cv_mae_uncalibrated:.2f} uncalibrated → "
        f"{cal.cv_mae_calibrated:.2f}"
    )
    print(out)
