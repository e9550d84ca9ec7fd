"""`crowdsight eval counting`: MAE / RMSE of crowd counts on labelled images."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

from crowdsight.cli import eval_app
from crowdsight.datasets.counting import CountingFormat, iter_items
from crowdsight.sources.files import read_image

console = Console(stderr=True)


@eval_app.command("counting")
def eval_counting(
    images: Annotated[Path, typer.Option(help="Folder of images (Mall: the frames folder).")],
    points: Annotated[
        Path, typer.Option(help="Folder of ground-truth .mat files (Mall: the mall_gt.mat file).")
    ],
    fmt: Annotated[CountingFormat, typer.Option("--format", help="Dataset layout.")],
    rng: Annotated[
        str | None,
        typer.Option(
            "--range", help="1-based inclusive item range, e.g. 801-2000 for Mall's test split."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Predict every image with the density model and print MAE and RMSE.

    Inference is plain full resolution, RGB, ImageNet normalisation, no resizing (CSRNet's
    protocol); very large images are tiled with overlap.
    """
    from crowdsight.perception.density import DensityEstimator

    items = iter_items(images, points, fmt, rng)
    est = DensityEstimator()
    rows: list[dict[str, str | float]] = []
    err: list[float] = []
    for item in track(items, description="counting", console=console):
        pred = est.estimate(read_image(item.image)).count
        rows.append({"image": item.image.name, "gt": item.gt, "pred": round(pred, 3)})
        err.append(pred - item.gt)
    mae = sum(abs(e) for e in err) / len(err)
    rmse = math.sqrt(sum(e * e for e in err) / len(err))
    console.print(f"{len(rows)} images: MAE {mae:.2f}  RMSE {rmse:.2f}")
    if as_json:
        print(
            json.dumps(
                {"mae": round(mae, 3), "rmse": round(rmse, 3), "n": len(rows), "items": rows}
            )
        )
    else:
        print(f"MAE {mae:.2f} RMSE {rmse:.2f} n={len(rows)}")
