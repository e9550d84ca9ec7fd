"""`crowdsight train attributes`: fit the clothing/carried-object heads on PETA training crops.

Features (`crowdsight.describe.features`) are computed once per subset and cached; the heads
and hyperparameters are chosen by identity-grouped cross-validation on the training crops only
(`crowdsight.describe.training`). GRID and CAVIAR4REID are PETA's visible test set here and are
refused, so they can never influence a choice.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import platformdirs
import typer
from rich.console import Console

from crowdsight.cli.apps import train_app
from crowdsight.core.errors import InputError
from crowdsight.core.types import ImageRGB
from crowdsight.describe import peta
from crowdsight.describe.colours import COLOUR_NAMES
from crowdsight.describe.features import (
    CAST_CHANNEL_GAINS,
    CAST_EXPOSURE,
    DEGRADE_BLUR_SIGMA,
    DEGRADE_HEIGHT,
    DEGRADE_JPEG_QUALITY,
    FEATURE_VERSION,
    CropFeatures,
    cached_features,
    cast_crop,
    degrade_crop,
)
from crowdsight.describe.heads import HEADS_FILE

console = Console(stderr=True)

#: PETA's visible test subsets: never trained on.
TEST_SUBSETS = frozenset({"GRID", "CAVIAR4REID"})
DEFAULT_TRAIN = "VIPeR,PRID,3DPeS,SARC3D,MIT,i-LID"


def default_cache() -> Path:
    """Where features are cached between runs."""
    return Path(platformdirs.user_cache_dir("crowdsight")) / "features"


def find_subsets(roots: list[Path], names: list[str]) -> list[tuple[Path, str]]:
    """(root, subset) of every wanted subset, from the first root that has it.

    Raises:
        InputError: A subset is a test subset or is found in none of the roots.
    """
    out = []
    for name in names:
        if name in TEST_SUBSETS:
            raise InputError(f"{name} is PETA's held-out test set; train on other subsets")
        root = next((r for r in roots if (r / name / "archive" / "Label.txt").is_file()), None)
        if root is None:
            raise InputError(f"subset {name} not found in {', '.join(map(str, roots))}")
        out.append((root, name))
    return out


def _read_degraded(path: Path) -> ImageRGB:
    """A training crop as a CCTV-like copy (`features.degrade_crop`)."""
    return degrade_crop(peta.read_crop(path))


def _read_cast(path: Path) -> ImageRGB:
    """A training crop under a random camera colour cast (`features.cast_crop`).

    The cast is drawn from a generator seeded by the crop's subset folder and file name, so
    a retraining draws the same casts wherever the data sits.
    """
    seed = zlib.crc32(f"{path.parent.name}/{path.name}".encode())
    return cast_crop(peta.read_crop(path), np.random.default_rng(seed))


def training_copies(
    *, degraded: bool = False, cast: bool = False
) -> list[tuple[str, Callable[[Path], ImageRGB]]]:
    """(cache variant, reader) of each copy of a crop that training sees: the crop itself,
    then its degraded and colour-cast copies when asked for."""
    copies: list[tuple[str, Callable[[Path], ImageRGB]]] = [("", peta.read_crop)]
    if degraded:
        copies.append(("degraded", _read_degraded))
    if cast:
        # The ranges are part of the cache key: a cache of casts drawn from other ranges is
        # never reused.
        ranges = "-".join(f"{v:g}" for v in (*CAST_CHANNEL_GAINS, *CAST_EXPOSURE))
        copies.append((f"cast-{ranges}", _read_cast))
    return copies


def load_features(
    pairs: list[tuple[Path, str]],
    cache_dir: Path | None,
    threads: int | None,
    *,
    degraded: bool = False,
    cast: bool = False,
) -> tuple[list[peta.PetaItem], np.ndarray]:
    """Items and feature rows of several subsets (features cached per subset).

    With ``degraded`` / ``cast``, every crop also appears again as a degraded copy
    (`features.degrade_crop`) / a colour-cast copy (`features.cast_crop`), with the same
    labels and identity (so cross-validation keeps every copy of a person in one fold).
    """
    extractor: list[CropFeatures] = []

    def make() -> CropFeatures:
        if not extractor:
            from crowdsight.config.runtime import RuntimeConfig

            extractor.append(CropFeatures(threads=threads, runtime=RuntimeConfig.from_env()))
        return extractor[0]

    items: list[peta.PetaItem] = []
    feats = []
    for root, name in pairs:
        sub = peta.iter_subset(root, name)
        t0 = time.perf_counter()
        paths = [it.image for it in sub]
        for variant, read in training_copies(degraded=degraded, cast=cast):
            feats.append(cached_features(paths, read, make, cache_dir, variant=variant))
            items += sub
        console.print(f"{name}: {len(sub)} crops, features in {time.perf_counter() - t0:.1f} s")
    return items, np.concatenate(feats)


@train_app.command("attributes")
def train_attributes(
    peta_dirs: Annotated[
        list[Path],
        typer.Option(
            "--peta", help="PETA folder(s) (<subset>/archive/Label.txt + crops); repeatable."
        ),
    ],
    subsets: Annotated[
        str, typer.Option(help="Comma list of training subsets (looked up in the --peta folders).")
    ] = DEFAULT_TRAIN,
    out: Annotated[Path, typer.Option(help="Heads file to write (.npz).")] = HEADS_FILE,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Feature cache folder (default: user cache).")
    ] = None,
    no_cache: Annotated[bool, typer.Option(help="Recompute features.")] = False,
    threads: Annotated[int | None, typer.Option(min=1, help="ONNX Runtime threads.")] = None,
    degraded_copies: Annotated[
        bool,
        typer.Option(
            help="Also train on a degraded, CCTV-like copy of every crop (shrunk, blurred, "
            "JPEG-coded; see features.degrade_crop)."
        ),
    ] = False,
    cast_copies: Annotated[
        bool,
        typer.Option(
            help="Also train on a colour-cast copy of every crop (random white balance and "
            "exposure, then degraded; see features.cast_crop)."
        ),
    ] = False,
    c_grid: Annotated[
        str | None,
        typer.Option(help="Comma list of L2 strengths C tried per head (default: C_GRID)."),
    ] = None,
) -> None:
    """Train the upper/lower colour and yes/no clothing/carried-object heads, write a manifest.

    Writes ``OUT`` (weights, label names, normalisation, thresholds) and ``OUT`` with a
    ``.json`` suffix (data, split, command, date, cross-validated figures, timings).
    """
    t_start = time.perf_counter()
    names = [s.strip() for s in subsets.split(",") if s.strip()]
    pairs = find_subsets(peta_dirs, names)
    cache = None if no_cache else (cache_dir or default_cache())
    items, feats = load_features(pairs, cache, threads, degraded=degraded_copies, cast=cast_copies)
    t_feat = time.perf_counter() - t_start
    from crowdsight.describe.training import C_GRID, N_FOLDS, train_heads

    grid = tuple(float(c) for c in c_grid.split(",")) if c_grid else C_GRID
    heads, report = train_heads(items, feats, c_grid=grid, log=console.print)
    heads.save(out)
    t_total = time.perf_counter() - t_start
    manifest = {
        "what": "crowdsight clothing/carried-object attribute heads (logistic regression)",
        "feature_version": FEATURE_VERSION,
        "features": "CSRNet VGG-16 front end conv3_3+conv4_3 band-pooled over BlazePose's person "
        "mask (crop + mirror) + HSV/Lab histograms of the person's upper and lower body "
        "(mask-weighted, bands from the shoulder/hip/ankle rows)",
        "data": {name: str(root / name) for root, name in pairs},
        "data_licence": "PETA: research-only; no images are shipped, only these heads",
        "split": "trained on the listed subsets; GRID and CAVIAR4REID held out for testing; "
        f"hyperparameters and thresholds by {N_FOLDS}-fold cross-validation grouped by identity",
        "degraded_copies": {
            "height_px": DEGRADE_HEIGHT,
            "blur_sigma_px": DEGRADE_BLUR_SIGMA,
            "jpeg_quality": DEGRADE_JPEG_QUALITY,
        }
        if degraded_copies
        else None,
        "cast_copies": {
            "channel_gains": list(CAST_CHANNEL_GAINS),
            "exposure": list(CAST_EXPOSURE),
            "seed": "crc32 of <subset folder>/<file name>",
        }
        if cast_copies
        else None,
        "c_grid": list(grid),
        "n_crops": report.n_crops,
        "n_identities": report.n_identities,
        "labels": {"colours": list(COLOUR_NAMES), "binary": list(heads.binary_names)},
        "chosen_c": report.chosen_c,
        "cross_validation": report.cv,
        "command": "crowdsight " + shlex.join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "seconds": {"features": round(t_feat, 1), "total": round(t_total, 1)},
        "size_bytes": out.stat().st_size,
    }
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    console.print(
        f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) in {t_total:.0f} s; "
        f"CV mA {report.cv['summary']['binary_mA']}, upper "
        f"{report.cv['summary']['upper_colour_accuracy']}, lower "
        f"{report.cv['summary']['lower_colour_accuracy']}, carrying "
        f"{report.cv['summary']['carrying_any_accuracy']}"
    )
