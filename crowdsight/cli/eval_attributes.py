"""`crowdsight eval attributes`: clothing and carried-object attributes on PETA crops.

Scores the learned heads (or the older colour rules) with the most-frequent-answer baseline
beside every figure. Only clothing and carried-object labels are read
(see `crowdsight.describe.peta`).
PETA crops are whole-person crops, so the crop is the person box.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.progress import track

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError
from crowdsight.describe import peta
from crowdsight.describe.colours import COLOUR_NAMES, DEFAULT_RULES, LEGS, TORSO
from crowdsight.describe.features import CropFeatures, cached_features
from crowdsight.describe.heads import CARRIED, HEADS_FILE, AttributeHeads, AttributeScores

console = Console(stderr=True)


def _subsets(text: str, root: Path) -> tuple[str, ...]:
    """Subset folder names to score: ``held-out``, ``calibration``, ``all`` or a comma list.

    ``held-out`` (the default) is GRID + CAVIAR4REID where the folder has them, otherwise every
    subset folder in it (so any folder of the same layout can be scored as it is).
    """
    present = peta.subsets_in(root)
    if text == "all":
        names = present
    elif text == "held-out":
        held = tuple(s for s in peta.HELD_OUT_SUBSETS if s in present)
        names = held or present
    elif text == "calibration":
        names = peta.CALIBRATION_SUBSETS
    else:
        names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in present]
    if unknown or not names:
        raise InputError(
            f"PETA subset(s) {unknown or names} not found in {root}; use held-out, calibration, "
            f"all or a comma list of {', '.join(present) or '(no <subset>/archive/Label.txt)'}"
        )
    return names


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def _colour_report(
    key: str, pred: npt.NDArray[np.intp], labels: list[frozenset[str]]
) -> dict[str, object]:
    """Accuracy (prediction is one of the labelled colours) and the most-frequent baseline."""
    truth = peta.truth_matrix(labels)
    base_name = peta.most_frequent(labels)
    base = np.full(len(pred), COLOUR_NAMES.index(base_name), np.intp)
    per_colour = {
        c: _r(float(truth[np.arange(len(pred)), pred][truth[:, i]].mean()))
        for i, c in enumerate(COLOUR_NAMES)
        if truth[:, i].any()
    }
    out: dict[str, object] = {
        "accuracy": _r(peta.accuracy(pred, truth)),
        "mean_class_accuracy": _r(peta.mean_class_accuracy(pred, truth)),
        "n_labelled": int(truth.any(axis=1).sum()),
        "per_colour_accuracy": per_colour,
        "baseline_answer": base_name,
        "baseline_accuracy": _r(peta.accuracy(base, truth)),
        "baseline_mean_class_accuracy": _r(peta.mean_class_accuracy(base, truth)),
    }
    console.print(
        f"{key:5s} colour: accuracy {out['accuracy']}, mean per-colour "
        f"{out['mean_class_accuracy']} | baseline '{base_name}' {out['baseline_accuracy']}"
    )
    return out


def _binary_report(
    pred: npt.NDArray[np.bool_],
    truth: npt.NDArray[np.bool_],
    pred_acc: npt.NDArray[np.bool_] | None = None,
) -> tuple[dict[str, object], tuple[float, float, float]]:
    """Report of one yes/no attribute, and its (mA, accuracy, baseline accuracy).

    mA is PETA's: the mean of positive and negative recall of ``pred``. Accuracy is that of
    ``pred_acc`` (the answers at the threshold chosen for accuracy; default ``pred``). The
    baseline always gives the scored set's most frequent answer, so its mA is 0.5.
    """
    pred_acc = pred if pred_acc is None else pred_acc
    share = float(truth.mean())
    recalls = [float((pred == truth)[m].mean()) for m in (truth, ~truth) if m.any()]
    ma, acc = float(np.mean(recalls)), float((pred_acc == truth).mean())
    base = max(share, 1 - share)
    report: dict[str, object] = {
        "accuracy": _r(acc),
        "mA": _r(ma),
        "positives": int(truth.sum()),
        "baseline_answer": share >= 0.5,
        "baseline_accuracy": _r(base),
        "baseline_mA": 0.5,
    }
    return report, (ma, acc, base)


def _stated_report(
    stated: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]
) -> dict[str, object]:
    """How right a description's "carrying a …" is: precision and recall of what it states.

    ``stated`` is where the description text says it (probability at or above the heads'
    text threshold), so precision answers "when crowdsight says it, how often is it true?".
    Accuracy counts "not stated" as "no"; the baseline never states it (always "no") or
    always does, whichever is more often right on the scored set.
    """
    n_stated = int(stated.sum())
    share = float(truth.mean())
    return {
        "precision": _r(float(truth[stated].mean())) if n_stated else None,
        "recall": _r(float(stated[truth].mean())) if truth.any() else None,
        "n_stated": n_stated,
        "positives": int(truth.sum()),
        "accuracy": _r(float((stated == truth).mean())),
        "baseline": _r(max(share, 1 - share)),
    }


def _carrying_stated(
    scores: AttributeScores, heads: AttributeHeads, items: list[peta.PetaItem]
) -> dict[str, dict[str, object]]:
    """`_stated_report` per bag kind, and ``any_bag`` for "carrying a bag" of any wording.

    A kind is stated where its probability reaches its text threshold (as in
    `TrackDescriber`); ``any_bag`` is stated where some kind is, or where the noisy-OR
    "carrying a bag" reaches its own text threshold.
    """
    out: dict[str, dict[str, object]] = {}
    kinds = np.zeros(len(items), bool)
    for j, name in enumerate(scores.binary_names):
        if name not in CARRIED:
            continue
        stated = scores.binary[:, j] >= heads.text[j]
        kinds |= stated
        out[name] = _stated_report(stated, np.array([name in it.attributes for it in items]))
    any_truth = np.array([bool(it.attributes & set(CARRIED)) for it in items])
    out["any_bag"] = _stated_report(kinds | (scores.carrying() >= heads.carrying_text), any_truth)
    for name, rep in out.items():
        console.print(f"stated {name:14s} {rep}")
    return out


def _colour_stated(
    scores: AttributeScores, heads: AttributeHeads, items: list[peta.PetaItem]
) -> dict[str, dict[str, object]]:
    """Per body part: how often the description states a colour, and how often it is right.

    A colour is stated where the top probability reaches the part's text threshold (as in
    `TrackDescriber`); crops without a colour label for the part are not scored.
    """
    out: dict[str, dict[str, object]] = {}
    for k, part in enumerate(("upper", "lower")):
        probs = scores.upper if part == "upper" else scores.lower
        truth = peta.truth_matrix([getattr(it, part) for it in items])
        lab = truth.any(axis=1)
        stated = lab & (probs.max(axis=1) >= heads.colour_text[k])
        hit = truth[np.arange(len(probs)), probs.argmax(axis=1)]
        out[part] = {
            "share_stated": _r(float(stated.sum() / max(int(lab.sum()), 1))),
            "accuracy_stated": _r(float(hit[stated].mean())) if stated.any() else None,
            "n_stated": int(stated.sum()),
        }
        console.print(f"stated {part} colour {out[part]}")
    return out


@eval_app.command("attributes")
def eval_attributes(
    peta_dir: Annotated[
        Path, typer.Option("--peta", help="PETA folder (<subset>/archive/Label.txt + crops).")
    ],
    subsets: Annotated[
        str,
        typer.Option(
            help="held-out (GRID + CAVIAR4REID if present, else every subset folder in --peta; "
            "default), all, calibration (MIT, i-LID), or a comma list of subset folder names."
        ),
    ] = "held-out",
    method: Annotated[
        str, typer.Option(help="heads (learned, default) or rules (the hand-tuned colour rules).")
    ] = "heads",
    heads_file: Annotated[
        Path | None, typer.Option("--heads", help="Attribute heads .npz (default: shipped).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Feature cache folder (default: none).")
    ] = None,
    carrying_detector: Annotated[
        str | None,
        typer.Option(
            "--carrying-detector",
            help="Also score carried bags found by this detector in each crop (e.g. nanodet): "
            "what the live describer says when a bag box is attached to a person.",
        ),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option(
            help="Also draw a PNG of evenly spaced scored crops (heads blurred) with the "
            "description each gets and its labels in small print.",
        ),
    ] = None,
    sheet_n: Annotated[int, typer.Option(min=1, help="Crops on the --sheet picture.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Clothing colour, yes/no clothing and carried-object attributes against PETA labels.

    Colours: a prediction is right when it is one of the identity's labelled colours for that
    body part; crops without a colour label for a part are not scored for it. Yes/no attributes
    (sleeves, legwear, hat, bags; learned heads only): accuracy and PETA's mA (mean of positive
    and negative recall) at the threshold chosen on training data. Every figure sits next to
    the most-frequent-answer baseline of the scored set itself (whose mA is 0.5).
    Yes/no accuracy is scored at the threshold chosen for accuracy, mA at the one chosen for mA
    (both on training data). ``carrying_accuracy`` is the mean accuracy of the four
    carried-object attributes (backpack, messenger bag, plastic bag, luggage), as before;
    ``carrying_any_accuracy`` is the accuracy of "carries a bag of any kind" (the noisy-OR of
    the bag heads at its accuracy threshold). ``carrying_stated`` says, per bag kind and for
    any bag, how often the *description text* is right: precision, recall, how many crops it
    states it for, and accuracy next to the most-frequent baseline.
    """
    if method not in ("heads", "rules"):
        raise InputError(f"--method must be heads or rules, not {method!r}")
    if sheet is not None and (sheet.suffix.lower() != ".png" or sheet_n < 1):
        raise InputError(
            f"--sheet must name a .png file and --sheet-n be ≥ 1 (got {sheet}, {sheet_n})"
        )
    names = _subsets(subsets, peta_dir)
    items = peta.load_items(peta_dir, names)
    if not items:
        raise InputError(f"no labelled crops found in {peta_dir} for {names}")
    console.print(f"scoring {len(items)} crops from {', '.join(names)} with {method}")
    result: dict[str, object] = {"subsets": list(names), "n": len(items), "method": method}
    per_attr: dict[str, dict[str, object]] = {}
    t0 = time.perf_counter()
    if method == "rules":
        crops = [peta.read_crop(it.image) for it in items]
        preds = {
            key: peta.RegionPixels.build(crops, region).predict(DEFAULT_RULES)
            for key, region in (("upper", TORSO), ("lower", LEGS))
        }
        scores = None
    else:
        heads = AttributeHeads.load(heads_file or HEADS_FILE)
        feats = np.concatenate(
            [
                cached_features(
                    [it.image for it in items if it.subset == name],
                    peta.read_crop,
                    CropFeatures,
                    cache_dir,
                )
                for name in names
            ]
        )
        scores = heads.predict(feats)
        preds = {
            "upper": np.asarray(scores.upper.argmax(axis=1), np.intp),
            "lower": np.asarray(scores.lower.argmax(axis=1), np.intp),
        }
    seconds = time.perf_counter() - t0
    for key in ("upper", "lower"):
        per_attr[key] = _colour_report(key, preds[key], [getattr(it, key) for it in items])
    mas: list[float] = []
    acc_any = base_any = float("nan")
    acc: dict[str, float] = {}
    base: dict[str, float] = {}
    if scores is not None:
        for j, name in enumerate(scores.binary_names):
            truth = np.array([name in it.attributes for it in items])
            pred = scores.binary[:, j] >= heads.decision[j]
            pred_acc = scores.binary[:, j] >= heads.accuracy_decision[j]
            per_attr[name], (ma, acc[name], base[name]) = _binary_report(pred, truth, pred_acc)
            mas.append(ma)
            console.print(f"{name:14s} {per_attr[name]}")
        any_truth = np.array([bool(it.attributes & set(CARRIED)) for it in items])
        p_any = scores.carrying()
        per_attr["carrying"], (_, acc_any, base_any) = _binary_report(
            p_any >= heads.carrying_decision, any_truth
        )
        console.print(f"{'carrying':14s} {per_attr['carrying']}")
        result["carrying_stated"] = _carrying_stated(scores, heads, items)
        result["colour_stated"] = _colour_stated(scores, heads, items)
    carried = [n for n in peta.CARRIED_BINARY if n in acc]
    up, low = per_attr["upper"], per_attr["lower"]
    result.update(
        {
            "upper_colour_accuracy": up["accuracy"],
            "lower_colour_accuracy": low["accuracy"],
            "mean_accuracy": _r((float(up["accuracy"]) + float(low["accuracy"])) / 2),  # type: ignore[arg-type]
            "binary_mA": _r(float(np.mean(mas))) if mas else None,
            "carrying_any_accuracy": _r(acc_any) if scores is not None else None,
            "carrying_accuracy": _r(float(np.mean([acc[n] for n in carried]))) if carried else None,
            "baseline_upper_colour_accuracy": up["baseline_accuracy"],
            "baseline_lower_colour_accuracy": low["baseline_accuracy"],
            "baseline_mean_accuracy": _r(
                (float(up["baseline_accuracy"]) + float(low["baseline_accuracy"])) / 2  # type: ignore[arg-type]
            ),
            "baseline_binary_mA": 0.5 if mas else None,
            "baseline_carrying_any_accuracy": _r(base_any) if scores is not None else None,
            "baseline_carrying_accuracy": _r(float(np.mean([base[n] for n in carried])))
            if carried
            else None,
            "attributes": per_attr,
            "scoring_seconds": round(seconds, 1),
            "ms_per_crop": round(1000 * seconds / len(items), 2),
        }
    )
    if carrying_detector is not None:
        result["detector_carrying"] = _detector_carrying(items, carrying_detector)
    if sheet is not None:
        heads_used = heads if method == "heads" else None
        result["sheet"] = str(_draw_sheet(items, sheet, sheet_n, heads_used))
    if as_json:
        print(json.dumps(result))
    else:
        print(
            f"upper {result['upper_colour_accuracy']} lower {result['lower_colour_accuracy']} "
            f"(baseline {result['baseline_upper_colour_accuracy']} / "
            f"{result['baseline_lower_colour_accuracy']}) mA {result['binary_mA']} n={len(items)}"
        )


def _draw_sheet(
    items: list[peta.PetaItem], path: Path, n: int, heads: AttributeHeads | None
) -> Path:
    """`DescriptionSheet` of ``n`` crops evenly spaced over ``items`` (labels as captions)."""
    from crowdsight.describe.describer import TrackDescriber
    from crowdsight.describe.sheet import DescriptionSheet

    picks = [items[i] for i in np.linspace(0, len(items) - 1, min(n, len(items))).astype(int)]
    board = DescriptionSheet(TrackDescriber(heads=heads))  # no heads: the colour rules
    captions = [
        f"{it.subset}: {'/'.join(sorted(it.upper)) or '?'} top, "
        f"{'/'.join(sorted(it.lower)) or '?'} legwear, "
        f"{', '.join(sorted(it.carrying)) or 'no bag'} (labels)"
        for it in picks
    ]
    image = board.render([peta.read_crop(it.image) for it in picks], captions)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise InputError(f"could not write {path}")
    console.print(f"description sheet: {path} ({len(picks)} crops)")
    return path


def _detector_carrying(items: list[peta.PetaItem], spec: str) -> dict[str, object]:
    """Per bag kind: does the detector find that kind of bag in the person's crop?

    The crop is the person box, so any bag box the detector finds in it is attached to the
    person (in the live describer a bag must overlap the person box and move with it). The
    detector runs as in the pipeline (its own score threshold) on the whole crop, which its
    letterbox upscales to its input size; nothing here is fitted to PETA.
    """
    from crowdsight.config.pipeline import PipelineSettings
    from crowdsight.config.runtime import RuntimeConfig
    from crowdsight.core.types import CLASS_NAME, Frame
    from crowdsight.pipeline.camera import build_pipeline_detector

    detector = build_pipeline_detector(
        PipelineSettings(detector=spec, slicing="off", runtime=RuntimeConfig.from_env())
    )
    found: list[set[str]] = []
    for it in track(items, description=f"bags by {spec}", console=console):
        bgr = cv2.imread(str(it.image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read image {it.image}")
        rgb = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8)
        dets = detector.detect(Frame("peta", 0, 0.0, rgb))
        names = dets.data.get(CLASS_NAME, [])
        found.append({str(n) for n in names} & set(peta.CARRIED_NAMES))
    out: dict[str, object] = {"detector": spec}
    accs, bases = [], []
    for kind in peta.CARRIED_NAMES:
        truth = np.array([kind in it.carrying for it in items])
        if not truth.any():
            continue
        pred = np.array([kind in f for f in found])
        out[kind], (_, acc, base) = _binary_report(pred, truth)
        accs.append(acc)
        bases.append(base)
        console.print(f"{kind:14s} by {spec}: {out[kind]}")
    any_truth = np.array([bool(it.attributes & set(CARRIED)) for it in items])
    any_pred = np.array([bool(f - {"umbrella"}) for f in found])
    out["carrying"], (_, acc_any, base_any) = _binary_report(any_pred, any_truth)
    out["carrying_any_accuracy"] = _r(acc_any)
    out["baseline_carrying_any_accuracy"] = _r(base_any)
    out["carrying_accuracy"] = _r(float(np.mean(accs))) if accs else None
    out["baseline_carrying_accuracy"] = _r(float(np.mean(bases))) if bases else None
    return out
