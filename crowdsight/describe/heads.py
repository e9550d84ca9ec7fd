"""Learned clothing and carried-object attribute heads, and their calibrated confidences.

The heads are linear (logistic-regression) classifiers on `crowdsight.describe.features`:

* two softmax heads over PETA's 11 colour names, for upper-body and lower-body clothing;
* one logistic head per yes/no attribute of `SHIPPED_BINARY` (sleeve length, legwear type,
  headwear, carried bags).

Each yes/no head has two thresholds chosen by cross-validation on the *training* crops (grouped
by identity): ``decision`` maximises the mean of positive and negative recall (PETA's mA) and is
what the evaluation's mA scores; ``accuracy_decision`` maximises plain accuracy (what a yes/no
accuracy figure scores); ``text`` is the lowest threshold at or above it whose
cross-validated precision reaches `TEXT_PRECISION`, and is what a description may say. Colour
heads have a ``text`` threshold on the top probability in the same way (`TEXT_ACCURACY`).

"Carries a bag of any kind" is not a head of its own: its probability is the noisy-OR
``1 − Π(1 − p)`` of the carried-object heads (`CARRIED`; `AttributeScores.carrying`), with a
``carrying_decision`` threshold chosen by cross-validated accuracy and a ``carrying_text``
threshold by cross-validated precision, like every other yes/no answer.

Never-list: `FORBIDDEN_LABEL_WORDS` lists words (gender, age, hair, face, …) that no shipped
label may contain; loading heads that do is refused.

Example:
    >>> heads = AttributeHeads.load()                         # doctest: +SKIP
    >>> scores = heads.predict(CropFeatures().extract(crops))  # doctest: +SKIP
    >>> scores.upper[0].argmax(), scores.binary[0]             # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdsight.core.errors import InputError
from crowdsight.core.types import FloatArray
from crowdsight.describe.colours import COLOUR_NAMES

#: The committed heads and their manifest (data, split, command, date, figures).
HEADS_FILE = Path(__file__).resolve().parent.parent / "assets" / "attribute_heads.npz"
MANIFEST_FILE = HEADS_FILE.with_name("attribute_heads.json")
#: The yes/no attributes crowdsight ships (a subset of `peta.BINARY_NAMES` is allowed).
SHIPPED_BINARY: tuple[str, ...] = (
    "short_sleeves",
    "trousers",
    "jeans",
    "shorts",
    "skirt",
    "hat",
    "backpack",
    "messenger_bag",
    "plastic_bag",
    "luggage",
)
#: The carried-object heads among `SHIPPED_BINARY` ("carries a bag" combines them).
CARRIED: tuple[str, ...] = ("backpack", "messenger_bag", "plastic_bag", "luggage")
#: Words no shipped label may contain (the never-list: nothing about the person themselves).
FORBIDDEN_LABEL_WORDS: tuple[str, ...] = (
    "gender",
    "male",
    "female",
    "personal",
    "age",
    "less",
    "larger",
    "hair",
    "bald",
    "face",
    "skin",
    "body",
    "ethnic",
    "race",
    "footwear",
    "sunglasses",
)
#: A colour is written in a description only where cross-validated accuracy of colours stated
#: at that confidence or above is at least this (set a priori, not tuned).
TEXT_ACCURACY = 0.85
#: A yes/no attribute is written only where cross-validated precision is at least this.
TEXT_PRECISION = 0.7


def check_labels(names: tuple[str, ...]) -> None:
    """Refuse label names that touch the never-list.

    Raises:
        InputError: A name contains a forbidden word.
    """
    for name in names:
        words = re.split(r"[^a-z]+", name.lower())
        bad = [w for w in FORBIDDEN_LABEL_WORDS if w in words or name.lower().startswith(w)]
        if bad:
            raise InputError(f"attribute {name!r} is on the never-list ({bad[0]}); not shipped")


@dataclass(frozen=True)
class AttributeScores:
    """Per-crop calibrated probabilities (struct of arrays; rows are crops).

    Attributes:
        upper / lower: N×11 colour-name probabilities (rows sum to 1), columns `COLOUR_NAMES`.
        binary: N×K yes-probabilities, columns ``binary_names``.
        binary_names: Names of the yes/no attributes.
    """

    upper: FloatArray
    lower: FloatArray
    binary: FloatArray
    binary_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.upper.shape[0])

    def carrying(self) -> FloatArray:
        """N probabilities of carrying a bag of any kind: noisy-OR of the `CARRIED` heads.

        All zeros when the heads have none of them.
        """
        return carrying_probability(self.binary, self.binary_names)


def carrying_probability(binary: FloatArray, names: tuple[str, ...]) -> FloatArray:
    """``1 − Π(1 − p)`` over the `CARRIED` columns of an N×K (or K) yes-probability array.

    Chosen over a head of its own trained on "any bag" because its cross-validated log loss on
    the training crops was lower (0.572 vs 0.574; accuracy 0.701 vs 0.694).
    """
    cols = [j for j, n in enumerate(names) if n in CARRIED]
    p = np.asarray(binary, np.float32)[..., cols]
    return np.asarray(1.0 - np.prod(1.0 - p, axis=-1), np.float32)


def _softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), np.float32)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))), np.float32)


@dataclass(frozen=True)
class AttributeHeads:
    """Trained heads: feature normalisation, weights and thresholds.

    Attributes:
        feature_version: `features.FEATURE_VERSION` the heads were trained on.
        mean / scale: Feature standardisation (D each).
        upper_w / lower_w: 11×D colour weights; ``upper_b`` / ``lower_b``: 11 biases.
        binary_names: Yes/no attribute names (K).
        binary_w: K×D weights; ``binary_b``: K biases.
        decision: K thresholds maximising cross-validated mA (used for scoring mA).
        accuracy_decision: K thresholds maximising cross-validated accuracy (used for
            scoring accuracy).
        text: K thresholds for writing an attribute in a description (≥ ``decision``; 1.0
            means never written).
        colour_text: Top-probability thresholds for writing the (upper, lower) colour.
        carrying_decision: Threshold on `AttributeScores.carrying` maximising
            cross-validated accuracy ("carries a bag" yes/no).
        carrying_text: Threshold on it for writing "carrying a bag" (cross-validated
            precision ≥ `TEXT_PRECISION`; 1.0: never written).
    """

    feature_version: str
    mean: FloatArray
    scale: FloatArray
    upper_w: FloatArray
    upper_b: FloatArray
    lower_w: FloatArray
    lower_b: FloatArray
    binary_names: tuple[str, ...]
    binary_w: FloatArray
    binary_b: FloatArray
    decision: FloatArray
    text: FloatArray
    colour_text: FloatArray
    accuracy_decision: FloatArray
    carrying_decision: float
    carrying_text: float

    def predict(self, features: FloatArray) -> AttributeScores:
        """Calibrated probabilities for each row of ``features``."""
        if features.shape[1] != self.mean.shape[0]:
            raise InputError(
                f"features have {features.shape[1]} columns, heads expect {self.mean.shape[0]}"
                f" ({self.feature_version}); retrain with `crowdsight train attributes`"
            )
        x = np.asarray((features - self.mean) / self.scale, np.float32)
        return AttributeScores(
            upper=_softmax(x @ self.upper_w.T + self.upper_b),
            lower=_softmax(x @ self.lower_w.T + self.lower_b),
            binary=_sigmoid(x @ self.binary_w.T + self.binary_b),
            binary_names=self.binary_names,
        )

    def save(self, path: Path) -> None:
        """Write the heads as a compressed ``.npz`` (float16 weights, float32 the rest)."""
        arrays: dict[str, Any] = {
            "feature_version": np.array(self.feature_version),
            "colour_names": np.array(COLOUR_NAMES),
            "binary_names": np.array(self.binary_names),
        }
        for key in ("upper_w", "lower_w", "binary_w"):
            arrays[key] = np.asarray(getattr(self, key), np.float16)
        for key in (
            "mean",
            "scale",
            "upper_b",
            "lower_b",
            "binary_b",
            "decision",
            "text",
            "colour_text",
            "accuracy_decision",
        ):
            arrays[key] = np.asarray(getattr(self, key), np.float32)
        arrays["carrying"] = np.asarray([self.carrying_decision, self.carrying_text], np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path = HEADS_FILE) -> AttributeHeads:
        """Read heads written by `save`.

        Raises:
            InputError: Missing or malformed file, or a label on the never-list.
        """
        if not path.is_file():
            raise InputError(f"attribute heads {path} not found; run `crowdsight train attributes`")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read attribute heads {path}: {exc}") from exc
        if tuple(str(c) for c in data["colour_names"]) != COLOUR_NAMES:
            raise InputError(f"{path}: colour names differ from crowdsight's; retrain the heads")
        names = tuple(str(n) for n in data["binary_names"])
        check_labels(names)
        missing = {"accuracy_decision", "carrying"} - set(data)
        if missing:
            raise InputError(
                f"{path} predates the carrying/accuracy thresholds ({', '.join(sorted(missing))}"
                " missing); retrain with `crowdsight train attributes`"
            )

        def f32(key: str) -> FloatArray:
            return np.asarray(data[key], np.float32)

        return cls(
            feature_version=str(data["feature_version"]),
            mean=f32("mean"),
            scale=f32("scale"),
            upper_w=f32("upper_w"),
            upper_b=f32("upper_b"),
            lower_w=f32("lower_w"),
            lower_b=f32("lower_b"),
            binary_names=names,
            binary_w=f32("binary_w"),
            binary_b=f32("binary_b"),
            decision=f32("decision"),
            text=f32("text"),
            colour_text=f32("colour_text"),
            accuracy_decision=f32("accuracy_decision"),
            carrying_decision=float(data["carrying"][0]),
            carrying_text=float(data["carrying"][1]),
        )


def read_manifest(path: Path = MANIFEST_FILE) -> dict[str, Any]:
    """The heads' manifest (empty when absent)."""
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data
