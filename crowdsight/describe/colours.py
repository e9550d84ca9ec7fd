"""Clothing and vehicle colour names from pixels: 11 names, HSV rules, centre-weighted votes.

The 11 names are PETA's colour vocabulary (black, blue, brown, green, grey, orange, pink,
purple, red, white, yellow). Each pixel gets one name from simple HSV rules (dark → black;
unsaturated → white/grey by brightness; otherwise by hue, with dark oranges/reds → brown and
pale reds/purples → pink). A region's colour is the name with the largest weighted vote, where
weights favour the centre columns (backgrounds sit at the sides of a box) and a per-name
multiplier corrects each name's systematic over- or under-voting (e.g. shadows voting black).

The thresholds and multipliers in `DEFAULT_RULES` were calibrated on the PETA subsets MIT and
i-LID only (see `crowdsight.describe.peta.calibrate`); GRID and CAVIAR4REID are held out for
reporting.

Example:
    >>> import numpy as np
    >>> crop = np.zeros((100, 40, 3), np.uint8); crop[:] = (200, 20, 20)
    >>> region_colour(crop, TORSO).name
    'red'
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.core.types import FloatArray, ImageRGB

COLOUR_NAMES: tuple[str, ...] = (
    "black",
    "blue",
    "brown",
    "green",
    "grey",
    "orange",
    "pink",
    "purple",
    "red",
    "white",
    "yellow",
)
_IDX = {name: i for i, name in enumerate(COLOUR_NAMES)}
N_COLOURS = len(COLOUR_NAMES)


@dataclass(frozen=True)
class Region:
    """A band of a box, as fractions of its height, with centre-weighted columns.

    Attributes:
        y0 / y1: Top and bottom of the band (0 = box top, 1 = box bottom).
        sigma_x: Width of the Gaussian column weight as a fraction of the box width; smaller
            trusts only the centre (less background, fewer pixels).
    """

    y0: float
    y1: float
    sigma_x: float = 0.22


#: A region keeps its centre weights when a person mask holds less than this share of them
#: (the mask missed the person: a torso hidden by another person, a crop of a bag). Set a priori.
MIN_MASKED_WEIGHT = 0.1
#: Torso (upper-body clothing) and legs (lower-body clothing) of a standing person's box.
TORSO = Region(0.20, 0.50)
LEGS = Region(0.55, 0.90, sigma_x=0.18)
#: The body of a vehicle: skip the roof line and the road/wheels.
VEHICLE_BODY = Region(0.25, 0.75, sigma_x=0.3)


@dataclass(frozen=True)
class ColourRules:
    """Thresholds of the pixel naming rules (H in degrees, S and V in 0–1).

    Attributes:
        v_black: Pixels darker than this are black, whatever their hue.
        s_grey: Pixels less saturated than this are achromatic (white or grey).
        v_white: Achromatic pixels brighter than this are white, the rest grey.
        s_grey_dark: Saturation below which dim pixels (V < 0.5) are still achromatic; camera
            noise makes dark greys look more saturated than bright ones.
        hue_edges: Upper hue bounds of red, orange, yellow, green, blue, purple; hues above
            the last bound wrap back to red.
        v_brown: Orange/red/yellow pixels darker than this are brown.
        s_pink: Red/purple pixels less saturated than this (and bright) are pink.
        weights: Per-name multipliers of the votes, in `COLOUR_NAMES` order.
    """

    v_black: float = 0.28
    s_grey: float = 0.16
    v_white: float = 0.62
    s_grey_dark: float = 0.26
    hue_edges: tuple[float, ...] = (10.0, 40.0, 75.0, 165.0, 260.0, 330.0)
    v_brown: float = 0.55
    s_pink: float = 0.48
    # black, blue, brown, green, grey, orange, pink, purple, red, white, yellow
    weights: tuple[float, ...] = (1.28, 2.56, 1.0, 0.6, 0.6, 0.288, 0.75, 2.0, 4.096, 0.36, 1.0)

    def with_weight(self, name: str, value: float) -> ColourRules:
        """A copy with one name's vote multiplier changed."""
        w = list(self.weights)
        w[_IDX[name]] = value
        return replace(self, weights=tuple(w))


#: Calibrated on PETA MIT + i-LID (``crowdsight eval attributes --calibrate`` reproduces it,
#: starting from uniform multipliers and the textbook thresholds below in `UNCALIBRATED`).
DEFAULT_RULES = ColourRules()
UNCALIBRATED = ColourRules(
    v_black=0.22,
    s_grey=0.22,
    v_white=0.68,
    s_grey_dark=0.32,
    hue_edges=(10.0, 40.0, 75.0, 165.0, 260.0, 330.0),
    v_brown=0.55,
    s_pink=0.45,
    weights=(1.0,) * N_COLOURS,
)


@dataclass(frozen=True)
class ColourVote:
    """Result of voting over a region.

    Attributes:
        name: Winning colour name.
        share: Its share of the weighted votes (0–1): a confidence-like figure.
        votes: Weighted votes per name (`COLOUR_NAMES` order), summing to 1.
    """

    name: str
    share: float
    votes: FloatArray


def to_hsv(pixels_rgb: ImageRGB) -> FloatArray:
    """RGB uint8 (…×3) to float HSV with H in degrees (0–360) and S, V in 0–1."""
    flat = pixels_rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return np.asarray(cv2.cvtColor(flat, cv2.COLOR_RGB2HSV).reshape(-1, 3), np.float32)


def name_pixels(hsv: FloatArray, rules: ColourRules = DEFAULT_RULES) -> npt.NDArray[np.intp]:
    """Colour-name index (into `COLOUR_NAMES`) of each HSV pixel (N×3)."""
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    e_red, e_orange, e_yellow, e_green, e_blue, e_purple = rules.hue_edges
    hue_name = np.full(h.shape, _IDX["red"], np.intp)
    hue_name[(h >= e_red) & (h < e_orange)] = _IDX["orange"]
    hue_name[(h >= e_orange) & (h < e_yellow)] = _IDX["yellow"]
    hue_name[(h >= e_yellow) & (h < e_green)] = _IDX["green"]
    hue_name[(h >= e_green) & (h < e_blue)] = _IDX["blue"]
    hue_name[(h >= e_blue) & (h < e_purple)] = _IDX["purple"]
    warm = np.isin(hue_name, (_IDX["red"], _IDX["orange"], _IDX["yellow"]))
    hue_name[warm & (v < rules.v_brown)] = _IDX["brown"]
    pinkish = np.isin(hue_name, (_IDX["red"], _IDX["purple"])) & (s < rules.s_pink)
    hue_name[pinkish & (v >= rules.v_brown)] = _IDX["pink"]
    achromatic = (s < rules.s_grey) | ((v < 0.5) & (s < rules.s_grey_dark))
    out = np.where(achromatic, np.where(v >= rules.v_white, _IDX["white"], _IDX["grey"]), hue_name)
    return np.where(v < rules.v_black, _IDX["black"], out).astype(np.intp)


def region_pixels(
    crop: ImageRGB, region: Region, mask: FloatArray | None = None
) -> tuple[ImageRGB, FloatArray]:
    """Pixels of a region of a box crop and their centre weights.

    With a person ``mask`` (H×W, 0–1, aligned with the crop) each weight is multiplied by it,
    so the region counts the person rather than the background; when the mask holds under
    `MIN_MASKED_WEIGHT` of the region's weight (it missed the person) the centre weights stay.

    Returns:
        (N×3 uint8 RGB pixels, N float32 weights summing to 1); both empty when the band is
        less than one pixel tall.
    """
    h, w = crop.shape[:2]
    y0, y1 = round(region.y0 * h), max(round(region.y1 * h), round(region.y0 * h) + 1)
    band = crop[y0 : min(y1, h)]
    if band.size == 0 or w == 0:
        return np.zeros((0, 3), np.uint8), np.zeros(0, np.float32)
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    col_w = np.exp(-0.5 * (xs / region.sigma_x) ** 2).astype(np.float32)
    weights = np.broadcast_to(col_w, band.shape[:2]).reshape(-1)
    weights = (weights / weights.sum()).astype(np.float32)
    if mask is not None:
        masked = weights * mask[y0 : min(y1, h)].reshape(-1)
        total = float(masked.sum())
        if total > 0 and total >= MIN_MASKED_WEIGHT * float(weights.sum()):
            weights = (masked / total).astype(np.float32)
    return band.reshape(-1, 3), weights


def vote(hsv: FloatArray, weights: FloatArray, rules: ColourRules = DEFAULT_RULES) -> FloatArray:
    """Weighted, multiplier-corrected votes per colour name (sums to 1; zeros if no pixels)."""
    counts = np.bincount(name_pixels(hsv, rules), weights=weights, minlength=N_COLOURS)
    votes: FloatArray = counts.astype(np.float32) * np.asarray(rules.weights, np.float32)
    total = float(votes.sum())
    return (votes / total).astype(np.float32) if total > 0 else votes


def pixel_votes(
    pixels: ImageRGB, weights: FloatArray, rules: ColourRules = DEFAULT_RULES
) -> FloatArray:
    """Normalised colour votes of N×3 RGB pixels with their weights (all zeros when empty)."""
    if len(weights) == 0:
        return np.zeros(N_COLOURS, np.float32)
    return vote(to_hsv(pixels), weights, rules)


def region_votes(crop: ImageRGB, region: Region, rules: ColourRules = DEFAULT_RULES) -> FloatArray:
    """Normalised colour votes of one region of a box crop (all zeros when empty)."""
    return pixel_votes(*region_pixels(crop, region), rules)


def winner(votes: FloatArray) -> ColourVote | None:
    """The winning name of a vote vector, or None when there were no votes."""
    total = float(votes.sum())
    if total <= 0:
        return None
    norm = (votes / total).astype(np.float32)
    i = int(np.argmax(norm))
    return ColourVote(COLOUR_NAMES[i], float(norm[i]), norm)


def region_colour(crop: ImageRGB, region: Region, rules: ColourRules = DEFAULT_RULES) -> ColourVote:
    """Dominant colour name of a region of a box crop.

    Raises:
        ValueError: The region holds no pixels (crop too small).
    """
    result = winner(region_votes(crop, region, rules))
    if result is None:
        raise ValueError(f"region {region} of a {crop.shape[:2]} crop has no pixels")
    return result
