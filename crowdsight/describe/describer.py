"""Plain-language, non-biometric descriptions of tracked people and vehicles.

What is described: clothing colours (upper and lower body), carried objects (only when the
detector has bag/umbrella classes), vehicle type (from the detector's class name) and colour.
What is never described, computed or stored: anything about the person themselves (gender,
age, ethnicity, build, face, hair, skin). There is deliberately no field for it.

Each frame adds votes per track; a description is the vote winner over the track's life, so
one bad frame (occlusion, a shadow) does not flip it.

With learned heads (`TrackDescriber.learned`, what the pipeline uses) each person crop gets
calibrated probabilities for its upper/lower clothing colour, sleeve length, legwear type, hat
and carried bags (`crowdsight.describe.heads`). A track's probabilities are the average over
its frames weighted by detection confidence and crop quality (`crop_quality`), and the text
only states what is above each attribute's threshold chosen on training data, with its
confidence: "person: black top (0.91), short sleeves (0.80), blue legwear (0.77), jeans (0.85)".

Example:
    >>> d = TrackDescriber()
    >>> d.describe(frame, tracked_detections)              # doctest: +SKIP
    >>> d.descriptions()[7].text                            # doctest: +SKIP
    'person: black top, grey trousers, carrying a backpack'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from crowdsight.core.errors import CrowdsightError
from crowdsight.core.types import CLASS_NAME, Detections, FloatArray, Frame, ImageRGB
from crowdsight.describe.colours import (
    COLOUR_NAMES,
    DEFAULT_RULES,
    LEGS,
    N_COLOURS,
    TORSO,
    VEHICLE_BODY,
    ColourRules,
    region_votes,
    winner,
)
from crowdsight.describe.heads import AttributeHeads, carrying_probability

if TYPE_CHECKING:
    from crowdsight.config.runtime import RuntimeConfig

log = logging.getLogger(__name__)

Kind = Literal["person", "vehicle"]
PERSON_CLASSES = frozenset({"person", "pedestrian", "people"})
#: Detector class names → vehicle type words.
VEHICLE_TYPES: dict[str, str] = {
    "car": "car",
    "bus": "bus",
    "truck": "truck",
    "van": "van",
    "motorcycle": "motorcycle",
    "motorbike": "motorcycle",
    "bicycle": "bicycle",
    "bike": "bicycle",
}
#: Learned yes/no attributes → description words.
ATTRIBUTE_WORDS: dict[str, str] = {
    "short_sleeves": "short sleeves",
    "trousers": "trousers",
    "jeans": "jeans",
    "shorts": "shorts",
    "skirt": "skirt",
    "hat": "hat",
    "backpack": "carrying a backpack",
    "messenger_bag": "carrying a shoulder bag",
    "plastic_bag": "carrying a plastic bag",
    "luggage": "carrying luggage",
}
#: Crops at least this tall (px) count fully in a track's vote; shorter ones count
#: proportionally less (PETA training crops are mostly 128–160 px tall).
FULL_QUALITY_PX = 128
#: Detector class names of objects people carry → description words.
CARRIED_CLASSES: dict[str, str] = {
    "backpack": "backpack",
    "handbag": "handbag",
    "suitcase": "suitcase",
    "umbrella": "umbrella",
}


@dataclass(frozen=True)
class Description:
    """What a track looks like, in words and fields. No personal traits, by design.

    Attributes:
        track_id: Tracker id (anonymous, per camera).
        kind: ``person`` or ``vehicle``.
        text: Plain sentence, e.g. "person: black top, grey trousers, carrying a backpack".
        upper_colour / lower_colour: Clothing colour names (people; None if not seen).
        carrying: Carried-object names; None when the detector cannot see carried objects.
        vehicle_type / vehicle_colour: For vehicles.
        frames: Frames that voted.
        confidences: Learned heads only: the track's calibrated probability of every
            attribute (``upper:black``, ``lower:blue``, ``jeans``, ``backpack`` …), stated or not.
        stated: Learned heads only: the attributes the text states (above their threshold).
    """

    track_id: int
    kind: Kind
    text: str
    upper_colour: str | None = None
    lower_colour: str | None = None
    carrying: tuple[str, ...] | None = None
    vehicle_type: str | None = None
    vehicle_colour: str | None = None
    frames: int = 0
    confidences: dict[str, float] = field(default_factory=dict)
    stated: tuple[str, ...] = ()

    @property
    def fields(self) -> dict[str, Any]:
        """Plain structured fields for storage and search (no personal traits, by design)."""
        out: dict[str, Any] = {"kind": self.kind, "frames": self.frames}
        for key in ("upper_colour", "lower_colour", "vehicle_type", "vehicle_colour"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.carrying is not None:
            out["carrying"] = list(self.carrying)
        if self.confidences:
            out["confidences"] = dict(self.confidences)
            out["stated"] = list(self.stated)
        return out


def crop_quality(height_px: float, confidence: float, clipped: bool) -> float:
    """Weight of one crop in its track's vote: detection confidence × size × not clipped.

    Size counts linearly up to `FULL_QUALITY_PX`; a box cut by the image border (part of the
    person unseen) counts half. Set a priori, not tuned on any test data.
    """
    size = min(1.0, max(height_px, 0.0) / FULL_QUALITY_PX)
    return float(max(confidence, 0.0) * size * (0.5 if clipped else 1.0))


@dataclass
class _TrackVotes:
    """Per-track accumulated votes."""

    kind: Kind
    vehicle_type: str | None = None
    upper: FloatArray = field(default_factory=lambda: np.zeros(N_COLOURS, np.float32))
    lower: FloatArray = field(default_factory=lambda: np.zeros(N_COLOURS, np.float32))
    body: FloatArray = field(default_factory=lambda: np.zeros(N_COLOURS, np.float32))
    carried: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    #: Learned heads: quality-weighted sums of probabilities, and the total weight.
    p_upper: FloatArray = field(default_factory=lambda: np.zeros(N_COLOURS, np.float32))
    p_lower: FloatArray = field(default_factory=lambda: np.zeros(N_COLOURS, np.float32))
    p_binary: FloatArray | None = None
    weight: float = 0.0
    last_centre: npt.NDArray[np.float32] | None = None


def _crop(image: ImageRGB, xyxy: npt.NDArray[np.float32]) -> ImageRGB:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = np.round(xyxy).astype(int)
    return image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]


def _centre(box: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray((box[:2] + box[2:]) / 2, np.float32)


def _overlap_of_first(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Share of box ``a`` covered by box ``b``."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    area = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    return float(max(iw, 0) * max(ih, 0) / area)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class TrackDescriber:
    """Accumulates per-track colour and carried-object votes and writes descriptions.

    Args:
        rules: Pixel colour rules (calibrated defaults).
        carried_source: Whether the detector reports carried-object classes. None = decide
            from the class names seen (a people-only detector never shows them, so carrying
            stays "not available" rather than a false "carrying nothing").
        min_box_px: Boxes shorter than this are too small for colours and are skipped.
        carry_overlap: Share of a bag's box that must lie inside a person's box to be
            associated with them in a frame.
        carry_min_share: Share of a person's frames a bag must be associated in to be
            reported; together with the motion check, this keeps bags standing on the floor
            next to a passer-by from being attributed to them.
        motion_tolerance: Largest difference (as a fraction of the person's box height)
            between person and bag displacements for them to count as moving together.
        heads: Learned attribute heads; None describes colours with the pixel ``rules``.
        features: Feature extractor for the heads (default: `CropFeatures` when ``heads``).
        runtime: Model backend of the default `CropFeatures` (None: ONNX Runtime defaults).
    """

    def __init__(
        self,
        rules: ColourRules = DEFAULT_RULES,
        *,
        carried_source: bool | None = None,
        min_box_px: int = 24,
        carry_overlap: float = 0.3,
        carry_min_share: float = 0.3,
        motion_tolerance: float = 0.25,
        heads: AttributeHeads | None = None,
        features: Any = None,
        runtime: RuntimeConfig | None = None,
    ) -> None:
        self.rules = rules
        self.heads = heads
        if heads is not None and features is None:
            from crowdsight.describe.features import CropFeatures

            features = CropFeatures(threads=1, runtime=runtime)
        self.features = features
        self.carried_source = carried_source
        self.min_box_px = min_box_px
        self.carry_overlap = carry_overlap
        self.carry_min_share = carry_min_share
        self.motion_tolerance = motion_tolerance
        self.reset()

    @classmethod
    def learned(cls, **kwargs: Any) -> TrackDescriber:
        """A describer with the shipped learned heads, or the colour rules if they cannot load.

        The fallback (missing CSRNet or BlazePose model, or heads file) is logged once, not
        raised, so a camera without the models still gets colour descriptions.
        """
        try:
            return cls(heads=AttributeHeads.load(), **kwargs)
        except CrowdsightError as exc:
            log.warning("learned attribute heads unavailable (%s); using colour rules", exc)
            return cls(**kwargs)

    def reset(self) -> None:
        """Forget every track's votes."""
        self._tracks: dict[int, _TrackVotes] = {}
        self._bag_centres: dict[int, npt.NDArray[np.float32]] = {}
        self._saw_carried_class = False

    def describe(self, frame: Frame, detections: Detections) -> None:
        """Add one frame's votes for every tracked person and vehicle in ``detections``.

        Rows without a tracker id are ignored (descriptions are per track).
        """
        if detections.tracker_id is None or len(detections) == 0:
            return
        names = [
            str(n).lower() for n in detections.data.get(CLASS_NAME, ["person"] * len(detections))
        ]
        xyxy = np.asarray(detections.xyxy, np.float32)
        tids = [int(t) for t in detections.tracker_id]
        bags = [i for i, n in enumerate(names) if n in CARRIED_CLASSES]
        if bags:
            self._saw_carried_class = True
        conf = (
            np.ones(len(detections), np.float32)
            if detections.confidence is None
            else np.asarray(detections.confidence, np.float32)
        )
        if self.heads is not None:
            people = [i for i, n in enumerate(names) if n in PERSON_CLASSES]
            self._score_people(frame.image, xyxy, conf, tids, people)
        for i, (name, tid) in enumerate(zip(names, tids, strict=True)):
            if name in PERSON_CLASSES and self.heads is None:
                self._vote_person(frame.image, xyxy[i], tid)
            elif name in VEHICLE_TYPES:
                self._vote_vehicle(frame.image, xyxy[i], tid, VEHICLE_TYPES[name])
        self._associate_bags(xyxy, names, tids, bags)

    def _vote_person(self, image: ImageRGB, box: npt.NDArray[np.float32], tid: int) -> None:
        tv = self._tracks.setdefault(tid, _TrackVotes("person"))
        crop = _crop(image, box)
        if crop.shape[0] < self.min_box_px or crop.shape[1] < 4:
            return
        tv.upper += region_votes(crop, TORSO, self.rules)
        tv.lower += region_votes(crop, LEGS, self.rules)
        tv.frames += 1

    def _score_people(
        self,
        image: ImageRGB,
        xyxy: npt.NDArray[np.float32],
        conf: FloatArray,
        tids: list[int],
        people: list[int],
    ) -> None:
        """Add every large-enough person crop's head probabilities to its track (one batch)."""
        assert self.heads is not None
        h, w = image.shape[:2]
        keep, crops = [], []
        for i in people:
            crop = _crop(image, xyxy[i])
            self._tracks.setdefault(tids[i], _TrackVotes("person"))
            if crop.shape[0] >= self.min_box_px and crop.shape[1] >= 4:
                keep.append(i)
                crops.append(crop)
        if not crops:
            return
        scores = self.heads.predict(self.features.extract(crops))
        for row, i in enumerate(keep):
            x0, y0, x1, y1 = (float(v) for v in xyxy[i])
            clipped = x0 <= 1 or y0 <= 1 or x1 >= w - 1 or y1 >= h - 1
            q = crop_quality(y1 - y0, float(conf[i]), clipped)
            tv = self._tracks[tids[i]]
            tv.p_upper += q * scores.upper[row]
            tv.p_lower += q * scores.lower[row]
            tv.p_binary = q * scores.binary[row] + (0 if tv.p_binary is None else tv.p_binary)
            tv.weight += q
            tv.frames += 1

    def _vote_vehicle(
        self, image: ImageRGB, box: npt.NDArray[np.float32], tid: int, vtype: str
    ) -> None:
        tv = self._tracks.setdefault(tid, _TrackVotes("vehicle", vehicle_type=vtype))
        crop = _crop(image, box)
        if crop.shape[0] < self.min_box_px // 2 or crop.shape[1] < 4:
            return
        tv.body += region_votes(crop, VEHICLE_BODY, self.rules)
        tv.frames += 1

    def _associate_bags(
        self,
        xyxy: npt.NDArray[np.float32],
        names: list[str],
        tids: list[int],
        bags: list[int],
    ) -> None:
        """Vote bag → person by box overlap, confirmed by moving together since last frame."""
        people = [i for i, n in enumerate(names) if n in PERSON_CLASSES]
        for b in bags:
            best, best_ov = -1, self.carry_overlap
            for p in people:
                ov = _overlap_of_first(xyxy[b], xyxy[p])
                if ov >= best_ov:
                    best, best_ov = p, ov
            centre = _centre(xyxy[b])
            prev_bag = self._bag_centres.get(tids[b])
            self._bag_centres[tids[b]] = centre
            if best < 0:
                continue
            tv = self._tracks[tids[best]]
            p_centre = _centre(xyxy[best])
            if prev_bag is not None and tv.last_centre is not None:
                diff = np.linalg.norm((centre - prev_bag) - (p_centre - tv.last_centre))
                if diff > self.motion_tolerance * float(xyxy[best, 3] - xyxy[best, 1]):
                    continue
            word = CARRIED_CLASSES[names[b]]
            tv.carried[word] = tv.carried.get(word, 0) + 1
        for p in people:
            self._tracks[tids[p]].last_centre = _centre(xyxy[p])

    def _carrying_known(self) -> bool:
        if self.carried_source is not None:
            return self.carried_source
        return self._saw_carried_class

    def descriptions(self) -> dict[int, Description]:
        """The current description of every track that has voted at least once."""
        out: dict[int, Description] = {}
        for tid, tv in self._tracks.items():
            if tv.frames == 0:
                continue
            if tv.kind == "vehicle":
                out[tid] = self._vehicle(tid, tv)
            elif self.heads is not None:
                out[tid] = self._person_learned(tid, tv)
            else:
                out[tid] = self._person(tid, tv)
        return out

    def _person_learned(self, tid: int, tv: _TrackVotes) -> Description:
        """Description from the track's weighted-mean probabilities and the heads' thresholds."""
        assert self.heads is not None
        wt = max(tv.weight, 1e-9)
        p_up, p_low = tv.p_upper / wt, tv.p_lower / wt
        p_bin = (tv.p_binary if tv.p_binary is not None else np.zeros(0)) / wt
        names = self.heads.binary_names
        conf = {f"upper:{c}": round(float(p), 3) for c, p in zip(COLOUR_NAMES, p_up, strict=True)}
        conf |= {f"lower:{c}": round(float(p), 3) for c, p in zip(COLOUR_NAMES, p_low, strict=True)}
        conf |= {n: round(float(p), 3) for n, p in zip(names, p_bin, strict=True)}
        said = {n for j, n in enumerate(names) if p_bin.size and p_bin[j] >= self.heads.text[j]}
        parts: list[str] = []
        stated: list[str] = []
        up = low = None
        if tv.weight > 0 and p_up.max() >= self.heads.colour_text[0]:
            up = COLOUR_NAMES[int(p_up.argmax())]
            parts.append(f"{up} top ({p_up.max():.2f})")
            stated.append(f"upper:{up}")
        for name in names:
            if name in said and name == "short_sleeves":
                parts.append(f"{ATTRIBUTE_WORDS[name]} ({conf[name]:.2f})")
                stated.append(name)
        if tv.weight > 0 and p_low.max() >= self.heads.colour_text[1]:
            low = COLOUR_NAMES[int(p_low.argmax())]
            parts.append(f"{low} legwear ({p_low.max():.2f})")
            stated.append(f"lower:{low}")
        for name in names:
            if name in said and name != "short_sleeves":
                parts.append(f"{ATTRIBUTE_WORDS.get(name, name)} ({conf[name]:.2f})")
                stated.append(name)
        carried = ("backpack", "messenger_bag", "plastic_bag", "luggage")
        if p_bin.size:
            p_any = float(carrying_probability(np.asarray(p_bin, np.float32), names))
            conf["carrying"] = round(p_any, 3)
            if not said & set(carried) and p_any >= self.heads.carrying_text:
                parts.append(f"carrying a bag ({p_any:.2f})")  # kind unsure, a bag likely
                stated.append("carrying")
        text = "person: " + (", ".join(parts) if parts else "no confident description")
        return Description(
            track_id=tid,
            kind="person",
            text=text,
            upper_colour=up,
            lower_colour=low,
            carrying=tuple(n for n in carried if n in said),
            frames=tv.frames,
            confidences=conf,
            stated=tuple(stated),
        )

    def _person(self, tid: int, tv: _TrackVotes) -> Description:
        up, low = winner(tv.upper), winner(tv.lower)
        carrying: tuple[str, ...] | None = None
        if self._carrying_known():
            carrying = tuple(
                sorted(w for w, n in tv.carried.items() if n >= self.carry_min_share * tv.frames)
            )
        parts = []
        if up is not None:
            parts.append(f"{up.name} top")
        if low is not None:
            parts.append(f"{low.name} trousers")
        if carrying:
            parts.append("carrying " + " and ".join(f"{_article(w)} {w}" for w in carrying))
        text = "person: " + (", ".join(parts) if parts else "no description")
        return Description(
            track_id=tid,
            kind="person",
            text=text,
            upper_colour=up.name if up else None,
            lower_colour=low.name if low else None,
            carrying=carrying,
            frames=tv.frames,
        )

    @staticmethod
    def _vehicle(tid: int, tv: _TrackVotes) -> Description:
        col = winner(tv.body)
        vtype = tv.vehicle_type or "vehicle"
        text = f"vehicle: {col.name} {vtype}" if col else f"vehicle: {vtype}"
        return Description(
            track_id=tid,
            kind="vehicle",
            text=text,
            vehicle_type=vtype,
            vehicle_colour=col.name if col else None,
            frames=tv.frames,
        )
