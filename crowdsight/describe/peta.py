"""PETA subsets for training and scoring clothing and carried-object attributes, nothing else.

Only clothing and carried-object labels are read: upper-body colour, lower-body colour,
carried objects, and the shipped yes/no attributes of `BINARY_LABELS` (sleeve length,
legwear type, headwear, bags).
Every other token of a ``Label.txt`` row is skipped as it is read: the reader keeps a token
only if it is in `ALLOWED_LABELS`, an explicit whitelist, so labels about the person
themselves (the dataset also has some) never reach memory. Image file names are used only
for their identity prefix (the text before the first ``_``).

Layout: ``<root>/<subset>/archive/Label.txt`` (``<ID> <attr> <attr> …``) beside the images
``<ID>_*.jpg|jpeg|png|bmp``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.core.errors import InputError
from crowdsight.core.types import FloatArray, ImageRGB
from crowdsight.describe.colours import (
    COLOUR_NAMES,
    LEGS,
    N_COLOURS,
    TORSO,
    UNCALIBRATED,
    ColourRules,
    Region,
    name_pixels,
    region_pixels,
    to_hsv,
)

SUBSETS: tuple[str, ...] = ("i-LID", "MIT", "CAVIAR4REID", "GRID")
#: Subsets the colour rules were calibrated on, and the held-out ones reported by default.
CALIBRATION_SUBSETS: tuple[str, ...] = ("MIT", "i-LID")
HELD_OUT_SUBSETS: tuple[str, ...] = ("GRID", "CAVIAR4REID")

_CAP = {c: c.capitalize() for c in COLOUR_NAMES}
#: PETA carried-object labels → crowdsight's carried-object names (COCO-style classes).
CARRY_LABELS: dict[str, str] = {
    "carryingBackpack": "backpack",
    "carryingMessengerBag": "handbag",
    "carryingPlasticBags": "handbag",
    "carryingLuggageCase": "suitcase",
    "carryingSuitcase": "suitcase",
    "carryingUmbrella": "umbrella",
}
CARRIED_NAMES: tuple[str, ...] = ("backpack", "handbag", "suitcase", "umbrella")

#: The learned yes/no attributes → the PETA tokens that mean "yes" (absent means "no", as in
#: PETA's own evaluation). Clothing and carried objects only: never hair, body, face, age or
#: gender, which PETA also labels.
BINARY_LABELS: dict[str, tuple[str, ...]] = {
    "short_sleeves": ("upperBodyShortSleeve", "upperBodyNoSleeve"),
    "trousers": ("lowerBodyTrousers",),
    "jeans": ("lowerBodyJeans",),
    "shorts": ("lowerBodyShorts", "lowerBodyHotPants"),
    "skirt": ("lowerBodyShortSkirt", "lowerBodyLongSkirt"),
    "hat": ("accessoryHat",),
    "backpack": ("carryingBackpack",),
    "messenger_bag": ("carryingMessengerBag",),
    "plastic_bag": ("carryingPlasticBags",),
    "luggage": ("carryingLuggageCase", "carryingSuitcase"),
}
BINARY_NAMES: tuple[str, ...] = tuple(BINARY_LABELS)
#: The carried-object attributes among `BINARY_NAMES` (``carrying_accuracy`` averages them).
CARRIED_BINARY: tuple[str, ...] = ("backpack", "messenger_bag", "plastic_bag", "luggage")
_TOKEN_TO_BINARY = {tok: name for name, toks in BINARY_LABELS.items() for tok in toks}

#: The only Label.txt tokens the reader keeps.
ALLOWED_LABELS: frozenset[str] = frozenset(
    [f"upperBody{_CAP[c]}" for c in COLOUR_NAMES]
    + [f"lowerBody{_CAP[c]}" for c in COLOUR_NAMES]
    + list(CARRY_LABELS)
    + ["carryingNothing", "carryingOther", "carryingFolder"]
    + list(_TOKEN_TO_BINARY)
)

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp"}
#: Crops are resized to this (w, h) before voting so every dataset weighs alike.
CROP_WH = (64, 128)


@dataclass(frozen=True)
class PetaItem:
    """One labelled crop (labels are per identity, shared by all of its images).

    Attributes:
        subset: Sub-dataset name.
        identity: Identity prefix of the file name.
        image: Image path.
        upper / lower: Colour names labelled for that body part (several are allowed; a
            prediction counts as right if it is any of them; empty when unlabelled).
        carrying: crowdsight carried-object names labelled for the identity.
        attributes: Names of `BINARY_NAMES` labelled "yes" for the identity.
    """

    subset: str
    identity: str
    image: Path
    upper: frozenset[str]
    lower: frozenset[str]
    carrying: frozenset[str] = field(default_factory=frozenset)
    attributes: frozenset[str] = field(default_factory=frozenset)


Labels = tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]


def _row_labels(tokens: Iterable[str]) -> Labels:
    """(upper colours, lower colours, carried names, binary attributes) of one row."""
    upper, lower, carry, binary = set(), set(), set(), set()
    for tok in tokens:
        if tok not in ALLOWED_LABELS:
            continue  # not a clothing or carrying label: skipped, never kept
        if tok in _TOKEN_TO_BINARY:
            binary.add(_TOKEN_TO_BINARY[tok])
        if tok in CARRY_LABELS:
            carry.add(CARRY_LABELS[tok])
        elif tok in _TOKEN_TO_BINARY:
            continue
        elif tok.startswith("upperBody"):
            upper.add(tok[len("upperBody") :].lower())
        elif tok.startswith("lowerBody"):
            lower.add(tok[len("lowerBody") :].lower())
    return frozenset(upper), frozenset(lower), frozenset(carry), frozenset(binary)


def read_labels(label_file: Path) -> dict[str, Labels]:
    """Whitelisted labels of a ``Label.txt`` by identity: (upper, lower, carrying, binary)."""
    out: dict[str, Labels] = {}
    for line in label_file.read_text(errors="replace").splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = _row_labels(parts[1:])
    return out


def iter_subset(root: Path, subset: str) -> list[PetaItem]:
    """Items of one subset, sorted by file name.

    Raises:
        InputError: The subset folder or its Label.txt is missing.
    """
    folder = root / subset / "archive"
    label_file = folder / "Label.txt"
    if not label_file.exists():
        raise InputError(f"{label_file} not found; --peta must point at the PETA folder")
    labels = read_labels(label_file)
    items = []
    for img in sorted(folder.iterdir()):
        if img.suffix.lower() not in _IMAGE_EXT:
            continue
        ident = img.name.split("_", 1)[0]
        if ident not in labels:
            continue
        upper, lower, carry, binary = labels[ident]
        items.append(PetaItem(subset, ident, img, upper, lower, carry, binary))
    return items


def load_items(root: Path, subsets: Sequence[str]) -> list[PetaItem]:
    """Items of several subsets (in the given order)."""
    if not root.is_dir():
        raise InputError(f"PETA folder {root} not found")
    return [it for s in subsets for it in iter_subset(root, s)]


def read_crop(path: Path) -> ImageRGB:
    """A crop as RGB, resized to `CROP_WH`."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot read image {path}")
    bgr = cv2.resize(bgr, CROP_WH, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


@dataclass
class RegionPixels:
    """HSV pixels of one region for many crops, concatenated for vectorised scoring."""

    hsv: FloatArray
    weights: FloatArray
    owner: npt.NDArray[np.intp]
    n_items: int

    @classmethod
    def build(cls, crops: Sequence[ImageRGB], region: Region) -> RegionPixels:
        """Gather the region's pixels of every crop."""
        hsv, wts, own = [], [], []
        for i, crop in enumerate(crops):
            px, w = region_pixels(crop, region)
            hsv.append(to_hsv(px))
            wts.append(w)
            own.append(np.full(len(w), i, np.intp))
        return cls(np.concatenate(hsv), np.concatenate(wts), np.concatenate(own), len(crops))

    def predict(self, rules: ColourRules) -> npt.NDArray[np.intp]:
        """Winning colour index per crop under ``rules``."""
        names = name_pixels(self.hsv, rules)
        votes = np.bincount(
            self.owner * N_COLOURS + names,
            weights=self.weights,
            minlength=self.n_items * N_COLOURS,
        ).reshape(self.n_items, N_COLOURS)
        votes *= np.asarray(rules.weights)
        return np.asarray(np.argmax(votes, axis=1), np.intp)


def truth_matrix(labels: Sequence[frozenset[str]]) -> npt.NDArray[np.bool_]:
    """items × 11 bool: which colour names are right for each item."""
    m = np.zeros((len(labels), N_COLOURS), bool)
    for i, lab in enumerate(labels):
        for name in lab:
            m[i, COLOUR_NAMES.index(name)] = True
    return m


def accuracy(pred: npt.NDArray[np.intp], truth: npt.NDArray[np.bool_]) -> float:
    """Share of labelled items whose prediction is one of their labels."""
    labelled = truth.any(axis=1)
    if not labelled.any():
        return float("nan")
    return float(truth[np.arange(len(pred)), pred][labelled].mean())


def mean_class_accuracy(pred: npt.NDArray[np.intp], truth: npt.NDArray[np.bool_]) -> float:
    """Mean over colour names (with ≥ 5 items) of the accuracy on items labelled that name."""
    hits = truth[np.arange(len(pred)), pred]
    accs = [float(hits[truth[:, c]].mean()) for c in range(N_COLOURS) if truth[:, c].sum() >= 5]
    return float(np.mean(accs)) if accs else float("nan")


def most_frequent(labels: Sequence[frozenset[str]]) -> str:
    """The colour labelled most often (the trivial baseline's constant answer)."""
    counts = Counter(itertools.chain.from_iterable(labels))
    return counts.most_common(1)[0][0]


def _objective(
    parts: Sequence[tuple[RegionPixels, npt.NDArray[np.bool_]]], r: ColourRules
) -> float:
    """Calibration target: mean of accuracy and mean per-colour accuracy over regions."""
    scores = []
    for px, truth in parts:
        pred = px.predict(r)
        scores += [accuracy(pred, truth), mean_class_accuracy(pred, truth)]
    return float(np.nanmean(scores))


def _with_scalar(rules: ColourRules, name: str, value: float) -> ColourRules:
    """A copy of ``rules`` with one scalar threshold changed."""
    fields = asdict(rules)
    fields[name] = value
    return ColourRules(**fields)


def calibrate(
    items: Sequence[PetaItem], rules: ColourRules = UNCALIBRATED, rounds: int = 3
) -> tuple[ColourRules, float]:
    """Coordinate search of the rule thresholds and per-name multipliers on labelled crops.

    Each round tries a few values of every threshold and multiplier in turn and keeps the
    best (objective: mean of plain and per-colour accuracy over torso and legs). Hue edges are
    not searched: they stay at textbook colour-name boundaries, so a clean orange is called
    orange even where the calibration set has almost no orange. Only use the
    calibration subsets here, so held-out figures stay honest.

    Returns:
        (calibrated rules, objective on ``items``).
    """
    crops = [read_crop(it.image) for it in items]
    parts = [
        (RegionPixels.build(crops, TORSO), truth_matrix([it.upper for it in items])),
        (RegionPixels.build(crops, LEGS), truth_matrix([it.lower for it in items])),
    ]
    best = _objective(parts, rules)
    scalars = ("v_black", "s_grey", "v_white", "s_grey_dark", "v_brown", "s_pink")
    for _ in range(rounds):
        for name in scalars:
            cur = float(getattr(rules, name))
            for cand in (cur - 0.06, cur - 0.03, cur + 0.03, cur + 0.06):
                trial = _with_scalar(rules, name, float(np.clip(cand, 0.02, 0.98)))
                score = _objective(parts, trial)
                if score > best:
                    best, rules = score, trial
        for colour in COLOUR_NAMES:
            cur = rules.weights[COLOUR_NAMES.index(colour)]
            for factor in (0.6, 0.8, 1.25, 1.6):
                trial = rules.with_weight(colour, round(cur * factor, 3))
                score = _objective(parts, trial)
                if score > best:
                    best, rules = score, trial
    return rules, best


def subsets_in(root: Path) -> tuple[str, ...]:
    """Folders under ``root`` laid out as PETA subsets (``<name>/archive/Label.txt``)."""
    if not root.is_dir():
        raise InputError(f"PETA folder {root} not found")
    return tuple(sorted(p.name for p in root.iterdir() if (p / "archive" / "Label.txt").is_file()))
