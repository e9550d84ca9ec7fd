"""Blur (or pixelate, or mask) heads and faces in every image that leaves the process.

A head is hidden if any of these cues covers it (their masks are OR-ed):

* **Person boxes** (a detector's ``person`` rows): the top `head_fraction` of each box,
  narrowed to a head's width. Works when people are big enough to be detected.
* **Crowd density** (CSRNet): pixels whose density, spread to image resolution, exceeds
  `density_threshold` people per pixel and that lie near a density peak. The density blobs
  sit on heads and the threshold is low enough to cover small, occluded and merged heads
  that a detector misses in crowds.
  The outer two rings of cells are ignored: CSRNet puts spurious mass along image borders.
* **Motion** (optional, per camera): foreground blobs from a MOG2 background model; the top
  part of each blob is where a walking person's head is. Needs a sequence of frames (it is
  silent for the first `motion_warmup` frames) and adds recall for walkers the density
  under-counts.
* **Faces** (BlazeFace): face boxes, enlarged, for close-up views where a face is big.

The thresholds were tuned on Mall frames 1–800 (the dataset's training split) and are
reported on frames 801–2000 by ``crowdsight eval redaction``.

Example:
    >>> red = Redactor(mode="blur", faces=None, motion=False)
    >>> out, mask = red.redact(image_rgb, detections, density)       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from crowdsight.core.types import CLASS_NAME, DensityMap, Detections, ImageRGB
from crowdsight.privacy.faces import FaceDetector

RedactMode = Literal["blur", "pixelate", "mask"]
BoolMask = npt.NDArray[np.bool_]
#: Class names treated as people (detectors without class names are assumed people-only).
PERSON_CLASSES = frozenset({"person", "pedestrian", "people"})
#: Rings of density cells ignored at the image border (CSRNet's padding artefacts reach ~2).
BORDER_CELLS = 2


@dataclass(frozen=True)
class HeadBoxGeometry:
    """Where a head sits in a standing person's box, as fractions of the box height.

    Attributes:
        top: Start above the box top (boxes often clip the crown).
        bottom: End of the head region below the box top; 0.18–0.25 covers head and neck.
        width: Head-region width as a fraction of box height, capped at the box width.
    """

    top: float = 0.03
    bottom: float = 0.22
    width: float = 0.32


def head_boxes(
    detections: Detections, geometry: HeadBoxGeometry = HeadBoxGeometry()
) -> npt.NDArray[np.float32]:
    """Head regions (N×4 xyxy) of the person rows of ``detections``."""
    if len(detections) == 0:
        return np.zeros((0, 4), np.float32)
    xyxy = np.asarray(detections.xyxy, np.float32)
    names = detections.data.get(CLASS_NAME)
    if names is not None:
        keep = np.array([str(n).lower() in PERSON_CLASSES for n in names], bool)
        xyxy = xyxy[keep]
    h = xyxy[:, 3] - xyxy[:, 1]
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    hw = np.minimum(geometry.width * h, xyxy[:, 2] - xyxy[:, 0]) / 2
    return np.stack(
        [cx - hw, xyxy[:, 1] - geometry.top * h, cx + hw, xyxy[:, 1] + geometry.bottom * h], 1
    ).astype(np.float32)


def boxes_mask(boxes: npt.NDArray[np.float32], shape_hw: tuple[int, int]) -> BoolMask:
    """Union of boxes (clipped to the image) as an H×W bool mask."""
    h, w = shape_hw
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in np.round(boxes).astype(int):
        mask[max(y0, 0) : max(min(y1, h), 0), max(x0, 0) : max(min(x1, w), 0)] = True
    return mask


def density_mask(
    density: DensityMap,
    threshold: float,
    shape_hw: tuple[int, int],
    *,
    min_peak: float = 0.01,
    peak_radius_frac: float = 1 / 12,
) -> BoolMask:
    """Pixels near a density peak whose density (people per pixel) exceeds ``threshold``.

    CSRNet's map is a sum of blobs centred on heads plus a faint haze (shiny floors,
    foliage). A low per-pixel threshold follows blobs out to faint, partly hidden heads but
    also takes in haze; keeping only pixels within ``peak_radius_frac`` of the image height
    of a local maximum holding at least ``min_peak`` people per cell removes most haze
    (about a fifth less area on Mall's training frames at the same head recall).

    Args:
        density: CSRNet map; its outer `BORDER_CELLS` rings are ignored (border artefacts).
        threshold: People per pixel. An isolated head in CSRNet's map peaks around 1e-3 per
            pixel; 5e-5–1e-4 follows blobs out to faint, partly hidden heads. Lower covers
            more heads and more floor.
        shape_hw: Image (height, width) of the mask.
        min_peak: People per cell at a local maximum for it to count as a head blob.
        peak_radius_frac: Reach around each peak, as a fraction of the image height.
    """
    d = np.array(density.density, np.float32, copy=True)
    b = BORDER_CELLS
    if min(d.shape) > 2 * b + 2:
        d[:b, :] = 0.0
        d[-b:, :] = 0.0
        d[:, :b] = 0.0
        d[:, -b:] = 0.0
    sx, sy = density.scale_xy
    h, w = shape_hw
    up = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) / np.float32(sx * sy)
    peaks = np.argwhere((d == ndimage.maximum_filter(d, size=3)) & (d >= min_peak))
    near = np.zeros((h, w), np.uint8)
    radius = max(1, round(peak_radius_frac * h))
    for cy, cx in peaks:
        centre = (int((cx + 0.5) * sx), int((cy + 0.5) * sy))
        cv2.circle(near, centre, radius, 1, thickness=-1)
    return np.asarray((up > threshold) & (near > 0), bool)


class MotionHeads:
    """Head regions of moving blobs, from a per-camera MOG2 background model.

    Args:
        top_fraction: Share of each blob's height (from its top) treated as head.
        min_area_px: Blobs smaller than this are noise.
        pad_px: Margin around each head region.
        warmup: Frames before the background model is trusted (it reports everything as
            foreground at first).
    """

    def __init__(
        self,
        *,
        top_fraction: float = 0.3,
        min_area_px: int = 30,
        pad_px: int = 4,
        warmup: int = 10,
    ) -> None:
        self.top_fraction = top_fraction
        self.min_area_px = min_area_px
        self.pad_px = pad_px
        self.warmup = warmup
        self.reset()

    def reset(self) -> None:
        """Forget the background model (new camera or scene cut)."""
        self._bg = cv2.createBackgroundSubtractorMOG2(
            history=500, varThreshold=16, detectShadows=True
        )
        self._seen = 0

    def update(self, image: ImageRGB) -> BoolMask:
        """Feed one frame; the head mask of its moving blobs (empty during warm-up)."""
        fg = self._bg.apply(image)
        self._seen += 1
        h, w = image.shape[:2]
        out = np.zeros((h, w), bool)
        if self._seen <= self.warmup:
            return out
        blobs = (fg == 255).astype(np.uint8)  # 127 = shadow
        blobs = cv2.morphologyEx(blobs, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        blobs = cv2.dilate(blobs, np.ones((5, 5), np.uint8))
        _, _, stats, _ = cv2.connectedComponentsWithStats(blobs)
        p = self.pad_px
        for x, y, bw, bh, area in stats[1:]:
            if area < self.min_area_px:
                continue
            hh = max(int(bh * self.top_fraction), 6)
            out[max(y - p, 0) : y + hh + p, max(x - p, 0) : x + bw + p] = True
        return out


def apply_mode(image: ImageRGB, mask: BoolMask, mode: RedactMode, strength_px: int) -> ImageRGB:
    """Hide the masked pixels of an image.

    Args:
        mode: ``blur`` (Gaussian, sigma = strength), ``pixelate`` (blocks of strength px) or
            ``mask`` (flat grey).
        strength_px: Blur sigma or block size; it must exceed the finest detail that could
            identify someone at this resolution (eyes, ~1/10 of a head).
    """
    if not mask.any():
        return image.copy()
    h, w = image.shape[:2]
    if mode == "blur":
        hidden = cv2.GaussianBlur(image, (0, 0), sigmaX=float(strength_px))
    elif mode == "pixelate":
        small = cv2.resize(
            image,
            (max(1, w // strength_px), max(1, h // strength_px)),
            interpolation=cv2.INTER_AREA,
        )
        hidden = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    elif mode == "mask":
        hidden = np.full_like(image, 128)
    else:
        raise ValueError(f"unknown redaction mode {mode!r}")
    out = image.copy()
    out[mask] = hidden[mask]
    return out


class Redactor:
    """Hides heads and faces: on by default in every export, per camera state with reset().

    Args:
        mode: How masked pixels are hidden (``blur``, ``pixelate`` or ``mask``).
        faces: A face detector, ``None`` for none, or ``"auto"`` (BlazeFace full range if
            installed, else none).
        motion: Use moving-blob heads (needs consecutive frames of one camera).
        density_threshold: People per pixel above which density pixels are hidden.
        head_geometry: Head region of a person box.
        face_pad: Face boxes are grown by this fraction of their size on every side (hair,
            ears, a slightly off box).
        grow_px: Final dilation of the whole mask, so edges of heads are not left sharp.
        strength_px: Blur sigma / pixel block; None = 1/80 of the image height, at least 4.

    Example:
        >>> red = Redactor(faces=None, motion=False)
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> out, mask = red.redact(img, None, None)
        >>> bool(mask.any())
        False
    """

    def __init__(
        self,
        mode: RedactMode = "blur",
        *,
        faces: FaceDetector | Literal["auto"] | None = "auto",
        motion: bool = True,
        density_threshold: float = 5e-5,
        head_geometry: HeadBoxGeometry = HeadBoxGeometry(),
        face_pad: float = 0.25,
        grow_px: int = 2,
        strength_px: int | None = None,
    ) -> None:
        self.mode: RedactMode = mode
        self.faces = _auto_faces() if faces == "auto" else faces
        self.motion = MotionHeads() if motion else None
        self.density_threshold = density_threshold
        self.head_geometry = head_geometry
        self.face_pad = face_pad
        self.grow_px = grow_px
        self.strength_px = strength_px

    def reset(self) -> None:
        """Forget per-camera state (the motion background model)."""
        if self.motion is not None:
            self.motion.reset()

    def mask(
        self,
        image: ImageRGB,
        detections: Detections | None = None,
        density: DensityMap | None = None,
    ) -> BoolMask:
        """The H×W bool mask of pixels to hide (also updates the motion model)."""
        shape = (int(image.shape[0]), int(image.shape[1]))
        mask = np.zeros(shape, bool)
        if detections is not None and len(detections):
            mask |= boxes_mask(head_boxes(detections, self.head_geometry), shape)
        if density is not None:
            mask |= density_mask(density, self.density_threshold, shape)
        if self.motion is not None:
            mask |= self.motion.update(image)
        if self.faces is not None:
            fb = self.faces.detect(image).xyxy
            if len(fb):
                size = (fb[:, 2:] - fb[:, :2]) * self.face_pad
                grown = np.concatenate([fb[:, :2] - size, fb[:, 2:] + size], 1)
                mask |= boxes_mask(grown.astype(np.float32), shape)
        if self.grow_px > 0 and mask.any():
            k = 2 * self.grow_px + 1
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        return mask

    def redact(
        self,
        image_rgb: ImageRGB,
        detections: Detections | None = None,
        density: DensityMap | None = None,
    ) -> tuple[ImageRGB, BoolMask]:
        """The image with heads and faces hidden, and the mask that was hidden.

        Args:
            image_rgb: H×W×3 uint8 RGB frame (not modified).
            detections: Person boxes of this frame, if a detector ran.
            density: Latest density map of this camera, if any.

        Returns:
            (redacted copy of the image, H×W bool mask of hidden pixels).
        """
        mask = self.mask(image_rgb, detections, density)
        strength = self.strength_px or max(4, image_rgb.shape[0] // 80)
        return apply_mode(image_rgb, mask, self.mode, strength), mask


def _auto_faces() -> FaceDetector | None:
    """BlazeFace full range when installed, else None (boxes and density still apply)."""
    from crowdsight.core.errors import ModelError

    try:
        return FaceDetector("full")
    except ModelError:
        return None
