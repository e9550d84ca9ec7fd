"""`crowdsight eval attributes`: clothing-colour accuracy on PETA crops, with a trivial baseline.

Only clothing-colour and carried-object labels are read (see `crowdsight.describe.peta`).
PETA crops are whole-person crops, so the crop is the person box.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError
from crowdsight.describe import peta
from crowdsight.describe.colours import COLOUR_NAMES, DEFAULT_RULES, LEGS, TORSO

console = Console(stderr=True)


def _subsets(text: str) -> tuple[str, ...]:
    if text == "all":
        return peta.SUBSETS
    if text == "held-out":
        return peta.HELD_OUT_SUBSETS
    if text == "calibration":
        return peta.CALIBRATION_SUBSETS
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in peta.SUBSETS]
    if unknown or not names:
        raise InputError(
            f"unknown PETA subset(s) {unknown}; use held-out, calibration, all or a comma "
            f"list of {', '.join(peta.SUBSETS)}"
        )
    return names


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def _carrying_baseline(items: list[peta.PetaItem]) -> dict[str, float]:
    """Most-frequent-answer accuracy of each carried-object yes/no attribute."""
    out = {}
    for name in peta.CARRIED_NAMES:
        share = float(np.mean([name in it.carrying for it in items]))
        out[name] = round(max(share, 1 - share), 4)
    return out


@eval_app.command("attributes")
def eval_attributes(
    peta_dir: Annotated[
        Path, typer.Option("--peta", help="PETA folder (<subset>/archive/Label.txt + crops).")
    ],
    subsets: Annotated[
        str,
        typer.Option(
            help="held-out (GRID, CAVIAR4REID; default), calibration (MIT, i-LID), all, or a "
            "comma list. The colour rules were calibrated on MIT and i-LID."
        ),
    ] = "held-out",
    calibrate: Annotated[
        bool,
        typer.Option(help="Re-run the calibration on MIT + i-LID first and score with it."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Upper/lower clothing-colour accuracy against PETA labels, and a most-frequent baseline.

    A prediction is right when it is one of the identity's labelled colours for that body
    part; crops without a colour label for a part are not scored for it. The baseline always
    answers the colour labelled most often in the scored set (so it even knows the answer
    distribution). Carried objects need a detector with bag classes; the bundled one is
    people-only, so ``carrying_accuracy`` is null and only its baseline is shown.
    """
    names = _subsets(subsets)
    rules = DEFAULT_RULES
    if calibrate:
        cal_items = peta.load_items(peta_dir, peta.CALIBRATION_SUBSETS)
        console.print(f"calibrating on {len(cal_items)} crops of {peta.CALIBRATION_SUBSETS}")
        rules, objective = peta.calibrate(cal_items)
        console.print(f"calibrated (objective {objective:.3f}): {rules}")
    items = peta.load_items(peta_dir, names)
    if not items:
        raise InputError(f"no labelled crops found in {peta_dir} for {names}")
    console.print(f"scoring {len(items)} crops from {', '.join(names)}")
    crops = [peta.read_crop(it.image) for it in items]
    result: dict[str, object] = {"subsets": list(names), "n": len(items)}
    per_attr: dict[str, dict[str, object]] = {}
    for key, region in (("upper", TORSO), ("lower", LEGS)):
        labels = [getattr(it, key) for it in items]
        truth = peta.truth_matrix(labels)
        pred = peta.RegionPixels.build(crops, region).predict(rules)
        base_name = peta.most_frequent(labels)
        base = np.full(len(items), COLOUR_NAMES.index(base_name), np.intp)
        per_colour = {
            c: _r(float(truth[np.arange(len(pred)), pred][truth[:, i]].mean()))
            for i, c in enumerate(COLOUR_NAMES)
            if truth[:, i].any()
        }
        per_attr[key] = {
            "accuracy": _r(peta.accuracy(pred, truth)),
            "mean_class_accuracy": _r(peta.mean_class_accuracy(pred, truth)),
            "n_labelled": int(truth.any(axis=1).sum()),
            "per_colour_accuracy": per_colour,
            "baseline_answer": base_name,
            "baseline_accuracy": _r(peta.accuracy(base, truth)),
            "baseline_mean_class_accuracy": _r(peta.mean_class_accuracy(base, truth)),
        }
        console.print(
            f"{key:5s} colour: accuracy {per_attr[key]['accuracy']}, mean per-colour "
            f"{per_attr[key]['mean_class_accuracy']} | baseline '{base_name}' "
            f"{per_attr[key]['baseline_accuracy']}"
        )
    up, low = per_attr["upper"], per_attr["lower"]
    result.update(
        {
            "upper_colour_accuracy": up["accuracy"],
            "lower_colour_accuracy": low["accuracy"],
            "mean_accuracy": _r((float(up["accuracy"]) + float(low["accuracy"])) / 2),  # type: ignore[arg-type]
            "carrying_accuracy": None,
            "carrying_note": "no carried-object source configured (people-only detector)",
            "baseline_upper_colour_accuracy": up["baseline_accuracy"],
            "baseline_lower_colour_accuracy": low["baseline_accuracy"],
            "baseline_mean_accuracy": _r(
                (float(up["baseline_accuracy"]) + float(low["baseline_accuracy"])) / 2  # type: ignore[arg-type]
            ),
            "baseline_carrying_accuracy": _carrying_baseline(items),
            "attributes": per_attr,
            "calibrated_here": calibrate,
        }
    )
    if as_json:
        print(json.dumps(result))
    else:
        print(
            f"upper {result['upper_colour_accuracy']} lower {result['lower_colour_accuracy']} "
            f"(baseline {result['baseline_upper_colour_accuracy']} / "
            f"{result['baseline_lower_colour_accuracy']}) n={len(items)}"
        )
