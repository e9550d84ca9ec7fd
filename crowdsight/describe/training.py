"""Training the attribute heads on labelled PETA crops, with identity-grouped cross-validation.

Every choice is made on the training crops only, by K-fold cross-validation where all crops of
one identity fall in the same fold (so a person is never both trained and scored on):

* the L2 strength ``C`` of each yes/no head: the value of `C_GRID` with the lowest out-of-fold
  log loss (a proper scoring rule, so the chosen head is also the best-calibrated one);
* the ``C`` of each colour head: the same rule on **leave-one-subset-out** predictions (see
  below; identity-grouped folds with fewer than `MIN_TEXT_SUBSETS` subsets). Colour errors
  are mostly domain shift: on the training crops, held-out-subset colour accuracy (upper
  0.59, lower 0.53) foresaw the GRID + CAVIAR4REID test score (0.58 / 0.59) where grouped
  folds said 0.69 / 0.65, and held-out-subset log loss prefers stronger regularisation
  (0.0003 over the grouped choice 0.001), which is what lets the gray-world colour
  statistics (`features.colour_features`) pay off on unseen cameras;
* each yes/no head's ``decision`` threshold: the out-of-fold threshold with the best mean of
  positive and negative recall (PETA's mA), its ``accuracy_decision`` threshold (best
  out-of-fold accuracy) and its ``text`` threshold (`heads.TEXT_PRECISION`);
* "carries a bag of any kind" (the noisy-OR of the carried-object heads,
  `heads.carrying_probability`, applied to their out-of-fold probabilities): its decision
  threshold by out-of-fold accuracy and its text threshold by out-of-fold precision;
* each colour head's ``text`` threshold on the top probability (`heads.TEXT_ACCURACY`).

**Text thresholds come from leave-one-subset-out predictions** (`_subset_folds`): what a
description *states* must hold on a camera the heads never saw, and each PETA subset is
another camera, place and annotation team. Identity-grouped folds mix every subset into
training, so a head can lean on a scene: the luggage head said "luggage" at out-of-fold
precision 0.70 — 394 of its 411 statements in i-LID, an airport — but at 0.05 on subsets held
out whole (and 0.20 on the GRID + CAVIAR4REID test crops, which is what prompted the check).
Held out by subset, the colours stated at the old thresholds were right 0.78 (upper) and 0.74
(lower) of the time, not 0.85. So the yes/no heads' ``C`` and decision thresholds stay
chosen by the grouped folds (the heads' own accuracy and mA), and the text thresholds are the
same rules (`precision_threshold`, `colour_text_threshold`) applied to leave-one-subset-out
predictions at the chosen ``C`` (for the colour heads, the very predictions that chose
``C``). With fewer than `MIN_TEXT_SUBSETS` subsets the grouped predictions are
used instead.

Colour heads are softmax over the 11 names, an item with several labelled colours counting once
per colour at weight 1/labels. One-vs-rest heads (argmax of P(colour ∈ labels), each colour's C
by out-of-fold log loss) were tried in the same CV (train on clean + degraded copies, score the
mean of held-out clean and degraded crops): upper 0.692 vs 0.691, lower 0.647 vs 0.648 — no
gain (criterion fixed beforehand: ≥ 0.005 on the mean of the two), so softmax stays.

The heads are fit on the first `N_COMPONENTS` principal components of the standardised
features (a fixed, unsupervised projection that makes every fit fast), then folded back into
linear weights on the standardised features, so using them needs no projection. The final heads
are refit on all training crops with the chosen ``C``. The figures
returned (out-of-fold accuracy, mA, expected calibration error) go into the manifest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import FloatArray
from crowdsight.describe import peta
from crowdsight.describe.colours import N_COLOURS
from crowdsight.describe.features import FEATURE_VERSION, n_colour_features
from crowdsight.describe.heads import (
    CARRIED,
    SHIPPED_BINARY,
    TEXT_ACCURACY,
    TEXT_PRECISION,
    AttributeHeads,
    carrying_probability,
    check_labels,
)

#: L2 strengths tried for every head (sklearn's ``C``: larger = weaker regularisation).
C_GRID: tuple[float, ...] = (0.0001, 0.0003, 0.001, 0.003, 0.01)
N_FOLDS = 5
#: Fewest training subsets for leave-one-subset-out text thresholds (below: grouped folds).
MIN_TEXT_SUBSETS = 3
#: Principal components the heads are fit on (unsupervised, from the training features);
#: folded back into plain linear weights on the standardised features when saved. Set a
#: priori to keep every fit at a second or two on a laptop CPU.
N_COMPONENTS = 256
Log = Callable[[str], None]


@dataclass
class TrainReport:
    """Cross-validated figures of a training run (all on the training crops)."""

    n_crops: int
    n_identities: int
    chosen_c: dict[str, float] = field(default_factory=dict)
    cv: dict[str, dict[str, float | None]] = field(default_factory=dict)


def balanced_accuracy(prob: FloatArray, truth: npt.NDArray[np.bool_], t: float) -> float:
    """PETA's mA of one attribute: mean of positive and negative recall at threshold ``t``."""
    pred = prob >= t
    pos = float(pred[truth].mean()) if truth.any() else float("nan")
    neg = float((~pred[~truth]).mean()) if (~truth).any() else float("nan")
    return float(np.nanmean([pos, neg]))


def best_threshold(prob: FloatArray, truth: npt.NDArray[np.bool_]) -> float:
    """The threshold (among the out-of-fold probabilities' percentiles) with the best mA."""
    cands = np.unique(np.quantile(prob, np.linspace(0.01, 0.99, 99)))
    scores = [balanced_accuracy(prob, truth, float(t)) for t in cands]
    return float(cands[int(np.argmax(scores))])


def accuracy_threshold(prob: FloatArray, truth: npt.NDArray[np.bool_]) -> float:
    """The threshold (among the probabilities' percentiles and 0.5) with the best accuracy."""
    cands = np.unique(np.concatenate([np.quantile(prob, np.linspace(0.01, 0.99, 99)), [0.5]]))
    scores = [float(((prob >= t) == truth).mean()) for t in cands]
    return float(cands[int(np.argmax(scores))])


def precision_threshold(prob: FloatArray, truth: npt.NDArray[np.bool_], floor: float) -> float:
    """Lowest threshold ≥ ``floor`` where saying "yes" is right ≥ `TEXT_PRECISION` (else 1)."""
    for t in np.unique(np.concatenate([[floor], prob[prob > floor]])):
        said = prob >= t
        if said.sum() >= 5 and float(truth[said].mean()) >= TEXT_PRECISION:
            return float(t)
    return 1.0


def colour_text_threshold(prob: FloatArray, truth: npt.NDArray[np.bool_]) -> float:
    """Lowest top-probability where stated colours are right ≥ `TEXT_ACCURACY` (else 1)."""
    top = prob.max(axis=1)
    hit = truth[np.arange(len(prob)), prob.argmax(axis=1)]
    for t in np.unique(np.quantile(top, np.linspace(0.0, 0.95, 96))):
        said = top >= t
        if float(hit[said].mean()) >= TEXT_ACCURACY:
            return float(t)
    return 1.0


def expected_calibration_error(conf: FloatArray, correct: npt.NDArray[np.bool_]) -> float:
    """Mean |confidence − accuracy| over 10 equal-width confidence bins, weighted by size."""
    bins = np.minimum((conf * 10).astype(int), 9)
    err = 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            err += float(m.mean()) * abs(float(conf[m].mean()) - float(correct[m].mean()))
    return err


def _folds(groups: Sequence[str]) -> list[npt.NDArray[np.intp]]:
    """Fold index arrays with every group (identity) in exactly one fold."""
    from sklearn.model_selection import GroupKFold

    gkf = GroupKFold(n_splits=N_FOLDS)
    dummy = np.zeros(len(groups))
    return [np.asarray(test, np.intp) for _, test in gkf.split(dummy, groups=list(groups))]


def _subset_folds(subsets: Sequence[str]) -> list[npt.NDArray[np.intp]] | None:
    """One fold per subset (leave-one-subset-out), or None with too few subsets."""
    names = sorted(set(subsets))
    if len(names) < MIN_TEXT_SUBSETS:
        return None
    arr = np.asarray(subsets)
    return [np.flatnonzero(arr == n).astype(np.intp) for n in names]


def _oof_binary(
    x: FloatArray, y: npt.NDArray[np.bool_], folds: list[npt.NDArray[np.intp]], c: float
) -> FloatArray:
    """Out-of-fold yes-probabilities of one yes/no head at a fixed ``C``.

    A fold whose training part holds one answer only (a label only one subset uses) gets
    that part's base rate.
    """
    oof = np.zeros(len(x), np.float32)
    all_idx = np.arange(len(x))
    for test in folds:
        train = np.setdiff1d(all_idx, test)
        if len(np.unique(y[train])) < 2:
            oof[test] = float(y[train].mean())
            continue
        clf = _fit(x[train], y[train].astype(np.intp), None, c)
        oof[test] = clf.predict_proba(x[test])[:, 1]
    return oof


def _oof_colour(
    x: FloatArray, truth: npt.NDArray[np.bool_], folds: list[npt.NDArray[np.intp]], c: float
) -> FloatArray:
    """Out-of-fold colour probabilities (N×11) at a fixed ``C`` (one colour seen: certain)."""
    oof = np.zeros((len(x), N_COLOURS), np.float32)
    all_idx = np.arange(len(x))
    for test in folds:
        train = np.setdiff1d(all_idx, test)
        it, cl, w = _colour_rows(truth[train])
        if len(np.unique(cl)) < 2:
            oof[np.ix_(test, np.unique(cl))] = 1.0
            continue
        oof[test] = _colour_probs(_fit(x[train][it], cl, w, c), x[test])
    return oof


def _colour_rows(
    truth: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """(item index, class, weight) rows: one per labelled colour, weight 1/labels of the item."""
    items, classes = np.nonzero(truth)
    weight = 1.0 / truth.sum(axis=1)[items]
    return items.astype(np.intp), classes.astype(np.intp), weight.astype(np.float32)


def _fit(x: FloatArray, y: npt.NDArray[np.intp], w: FloatArray | None, c: float) -> Any:
    """One L-BFGS logistic regression. BLAS is held to one thread: these problems are small,
    and multi-threaded BLAS on a busy CPU was measured 10× slower (0.04 s vs 0.5 s a fit)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    clf = LogisticRegression(C=c, max_iter=500, tol=1e-3)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # ConvergenceWarning at tol
        clf.fit(x, y, sample_weight=w)
    return clf


def _colour_probs(clf: Any, x: FloatArray) -> FloatArray:
    """11-column probabilities (classes absent from training get 0)."""
    out = np.zeros((len(x), N_COLOURS), np.float32)
    out[:, np.asarray(clf.classes_, np.intp)] = clf.predict_proba(x)
    return out


def _full_coef(clf: Any, d: int) -> tuple[FloatArray, FloatArray]:
    """11×D weights and 11 biases of a softmax head (absent classes: −inf-like bias)."""
    w = np.zeros((N_COLOURS, d), np.float32)
    b = np.full(N_COLOURS, -30.0, np.float32)
    cls = np.asarray(clf.classes_, np.intp)
    if len(cls) == 2:  # sklearn keeps one row (class 1 vs class 0): softmax of (0, z)
        w[cls[0]], b[cls[0]] = 0.0, 0.0
        w[cls[1]], b[cls[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        w[cls] = clf.coef_
        b[cls] = clf.intercept_
    return w, b


def _cv_colour(
    x: FloatArray,
    truth: npt.NDArray[np.bool_],
    folds: list[npt.NDArray[np.intp]],
    log: Log,
    c_grid: Sequence[float] = C_GRID,
) -> tuple[float, FloatArray]:
    """(chosen C, out-of-fold probabilities at that C) of one colour head."""
    labelled = np.nonzero(truth.any(axis=1))[0]
    best: tuple[float, float, FloatArray] | None = None
    for c in c_grid:
        oof = _oof_colour(x, truth, folds, c)
        p_true = (oof[labelled] * truth[labelled]).sum(axis=1)
        loss = float(-np.mean(np.log(np.clip(p_true, 1e-6, 1))))
        log(f"  C={c:g}: log loss {loss:.4f}")
        if best is None or loss < best[0]:
            best = (loss, c, oof)
    assert best is not None
    return best[1], best[2]


def _cv_binary(
    x: FloatArray,
    y: npt.NDArray[np.bool_],
    folds: list[npt.NDArray[np.intp]],
    log: Log,
    c_grid: Sequence[float] = C_GRID,
) -> tuple[float, FloatArray]:
    """(chosen C, out-of-fold yes-probabilities at that C) of one yes/no head."""
    best: tuple[float, float, FloatArray] | None = None
    for c in c_grid:
        oof = _oof_binary(x, y, folds, c)
        p = np.clip(np.where(y, oof, 1 - oof), 1e-6, 1)
        loss = float(-np.mean(np.log(p)))
        log(f"  C={c:g}: log loss {loss:.4f}")
        if best is None or loss < best[0]:
            best = (loss, c, oof)
    assert best is not None
    return best[1], best[2]


def _projection(xs: FloatArray, n_deep: int) -> FloatArray:
    """k×D projection: top principal components of the deep columns, colour columns as is.

    The colour histograms are few next to the CNN columns, so a PCA of everything would
    keep mostly CNN variance and drop the colour evidence; they pass through untouched.
    """
    from sklearn.utils.extmath import randomized_svd

    deep = xs[:, :n_deep]
    k = min(N_COMPONENTS, *deep.shape)
    _, _, vt = randomized_svd(deep, k, n_iter=3, random_state=0)
    n_colour = xs.shape[1] - n_deep
    proj = np.zeros((k + n_colour, xs.shape[1]), np.float32)
    proj[:k, :n_deep] = vt
    proj[k:, n_deep:] = np.eye(n_colour, dtype=np.float32)
    return proj


def train_heads(
    items: Sequence[peta.PetaItem],
    features: FloatArray,
    *,
    n_deep: int | None = None,
    binary_names: tuple[str, ...] = SHIPPED_BINARY,
    c_grid: Sequence[float] = C_GRID,
    log: Log = lambda _: None,
) -> tuple[AttributeHeads, TrainReport]:
    """Cross-validate, choose, and fit every head on ``features`` of labelled ``items``.

    Args:
        items: Training crops (their labels).
        features: One `CropFeatures.extract` row per item.
        n_deep: How many leading columns are CNN features (the rest are colour statistics;
            default: all but `features.n_colour_features`).
        binary_names: Yes/no attributes to train (must pass the never-list check).
        c_grid: L2 strengths tried for every head.
        log: Progress callback.
    """
    if n_deep is None:
        n_deep = features.shape[1] - n_colour_features()
    check_labels(binary_names)
    groups = [f"{it.subset}/{it.identity}" for it in items]
    report = TrainReport(n_crops=len(items), n_identities=len(set(groups)))
    mean = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), 1e-3)
    xs = ((features - mean) / scale).astype(np.float32)
    proj = _projection(xs, n_deep)
    log(f"projected {xs.shape[1]} features on {proj.shape[0]} columns")
    x = xs @ proj.T
    d = x.shape[1]
    folds = _folds(groups)
    text_folds = _subset_folds([it.subset for it in items])
    log(
        "text thresholds: "
        + ("leave-one-subset-out" if text_folds else "identity-grouped folds (few subsets)")
    )
    colour: dict[str, tuple[FloatArray, FloatArray, float]] = {}
    for part in ("upper", "lower"):
        truth = peta.truth_matrix([getattr(it, part) for it in items])
        log(f"{part} colour head ({int(truth.any(axis=1).sum())} labelled crops)")
        # C by held-out-subset log loss (domain shift); grouped folds only with few subsets.
        c, held = _cv_colour(x, truth, text_folds or folds, log, c_grid)
        oof = held if text_folds is None else _oof_colour(x, truth, folds, c)
        lab = truth.any(axis=1)
        pred = oof.argmax(axis=1).astype(np.intp)
        hit = truth[np.arange(len(pred)), pred]
        it, cl, w = _colour_rows(truth)
        cw, cb = _full_coef(_fit(x[it], cl, w, c), d)
        text_t = colour_text_threshold(held[lab], truth[lab])
        colour[part] = (cw, cb, text_t)
        held_hit = truth[np.arange(len(held)), held.argmax(axis=1)]
        stated = lab & (held.max(axis=1) >= text_t)
        report.chosen_c[f"{part}_colour"] = c
        report.cv[f"{part}_colour"] = {
            "accuracy": round(peta.accuracy(pred, truth), 4),
            "mean_class_accuracy": round(peta.mean_class_accuracy(pred, truth), 4),
            "ece": round(expected_calibration_error(oof[lab].max(axis=1), hit[lab]), 4),
            "text_threshold": round(text_t, 4),
            "share_stated": round(float(stated.sum() / max(int(lab.sum()), 1)), 4),
            "held_out_subset_accuracy": round(float(held_hit[lab].mean()), 4),
            "held_out_subset_stated_accuracy": round(float(held_hit[stated].mean()), 4)
            if stated.any()
            else None,
        }
        log(f"  → C={c:g} {report.cv[f'{part}_colour']}")
    bw, bb, dec, txt, acc_dec, oofs, helds = [], [], [], [], [], [], []
    for name in binary_names:
        y = np.array([name in it.attributes for it in items])
        log(f"{name} head ({int(y.sum())} positive of {len(y)})")
        c, oof = _cv_binary(x, y, folds, log, c_grid)
        t = best_threshold(oof, y)
        ta = accuracy_threshold(oof, y)
        held = oof if text_folds is None else _oof_binary(x, y, text_folds, c)
        tt = precision_threshold(held, y, t)
        oofs.append(oof)
        helds.append(held)
        clf = _fit(x, y.astype(np.intp), None, c)
        bw.append(np.asarray(clf.coef_[0], np.float32))
        bb.append(float(clf.intercept_[0]))
        dec.append(t)
        acc_dec.append(ta)
        txt.append(tt)
        pred = oof >= t
        report.chosen_c[name] = c
        report.cv[name] = {
            "mA": round(balanced_accuracy(oof, y, t), 4),
            "accuracy": round(float(((oof >= ta) == y).mean()), 4),
            "positive_share": round(float(y.mean()), 4),
            "ece": round(
                expected_calibration_error(np.where(oof >= 0.5, oof, 1 - oof), (oof >= 0.5) == y), 4
            ),
            "decision_threshold": round(t, 4),
            "accuracy_threshold": round(ta, 4),
            "accuracy_at_mA_threshold": round(float((pred == y).mean()), 4),
            "text_threshold": round(tt, 4),
            "held_out_subset_stated_precision": _precision(held >= tt, y),
        }
        log(f"  → C={c:g} {report.cv[name]}")
    carry_t, carry_text = _cv_carrying(
        items, np.stack(oofs, axis=1), np.stack(helds, axis=1), binary_names, report, log
    )
    heads = AttributeHeads(
        feature_version=FEATURE_VERSION,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        upper_w=colour["upper"][0] @ proj,
        upper_b=colour["upper"][1],
        lower_w=colour["lower"][0] @ proj,
        lower_b=colour["lower"][1],
        binary_names=binary_names,
        binary_w=np.stack(bw) @ proj,
        binary_b=np.asarray(bb, np.float32),
        decision=np.asarray(dec, np.float32),
        text=np.asarray(txt, np.float32),
        colour_text=np.asarray([colour["upper"][2], colour["lower"][2]], np.float32),
        accuracy_decision=np.asarray(acc_dec, np.float32),
        carrying_decision=carry_t,
        carrying_text=carry_text,
    )
    mas = [float(report.cv[n]["mA"] or 0.0) for n in binary_names]
    report.cv["summary"] = {
        "binary_mA": round(float(np.mean(mas)), 4),
        "upper_colour_accuracy": report.cv["upper_colour"]["accuracy"],
        "lower_colour_accuracy": report.cv["lower_colour"]["accuracy"],
        "carrying_any_accuracy": report.cv.get("carrying", {}).get("accuracy", float("nan")),
    }
    return heads, report


def _precision(said: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> float | None:
    """Share of "yes" statements that are right (None when nothing is stated)."""
    return round(float(truth[said].mean()), 4) if said.any() else None


def _cv_carrying(
    items: Sequence[peta.PetaItem],
    oof: FloatArray,
    held: FloatArray,
    names: tuple[str, ...],
    report: TrainReport,
    log: Log,
) -> tuple[float, float]:
    """(decision, text) thresholds of "carries a bag", from the bag heads' out-of-fold output.

    The truth is "any `heads.CARRIED` label"; the decision threshold maximises out-of-fold
    accuracy (the figure `crowdsight eval attributes` reports as ``carrying_any_accuracy``);
    the text threshold is set on ``held`` (the leave-one-subset-out probabilities).
    """
    if not any(n in CARRIED for n in names):
        return 1.0, 1.0
    y = np.array([any(n in it.attributes for n in CARRIED) for it in items])
    p = carrying_probability(oof, names)
    t = accuracy_threshold(p, y)
    p_held = carrying_probability(held, names)
    tt = precision_threshold(p_held, y, t)
    loss = float(-np.mean(np.log(np.clip(np.where(y, p, 1 - p), 1e-6, 1))))
    report.cv["carrying"] = {
        "accuracy": round(float(((p >= t) == y).mean()), 4),
        "baseline_accuracy": round(float(max(y.mean(), 1 - y.mean())), 4),
        "log_loss": round(loss, 4),
        "mA": round(balanced_accuracy(p, y, t), 4),
        "positive_share": round(float(y.mean()), 4),
        "decision_threshold": round(t, 4),
        "text_threshold": round(tt, 4),
        "held_out_subset_stated_precision": _precision(p_held >= tt, y),
    }
    log(f"carrying (noisy-OR of the bag heads): {report.cv['carrying']}")
    return t, tt
