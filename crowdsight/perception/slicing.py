"""Sliced (tiled) inference for small objects in high-resolution frames.

A 300×300 detector sees a 1920×1080 frame shrunk 6×: a pedestrian 60 px tall becomes 10 px,
below what the network can find. Running the detector on overlapping tiles (and on the
whole frame, for people too big for one tile) and merging the results with NMS recovers
them at the cost of one inference per tile. Tiling is done by supervision's
`InferenceSlicer`; this module only chooses the tile grid and adds the full-frame pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import supervision as sv

from crowdsight.core.types import Detections, ImageRGB


@dataclass(frozen=True)
class SliceSettings:
    """How to tile a frame.

    Attributes:
        slice_wh: Tile size in pixels, or None to pick it from the frame: a third of the
            width and half the height for HD frames (640×540 tiles on 1920×1080), half of
            each for smaller ones (320×240 on 640×480). Smaller tiles find smaller people but
            cost more inferences.
        overlap_ratio: Overlap between neighbouring tiles as a fraction of the tile size; it
            should exceed the size of the people you want found whole in at least one tile.
        iou_threshold: IoU above which duplicates from neighbouring tiles are merged.
        full_frame: Also run once on the whole frame (catches people larger than a tile).
        min_frame_px: Frames with fewer pixels than this are not tiled at all.
    """

    slice_wh: tuple[int, int] | None = None
    overlap_ratio: float = 0.25
    iou_threshold: float = 0.5
    full_frame: bool = True
    min_frame_px: int = 0

    def tile_wh(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        """Tile size for a frame of ``frame_wh`` (never larger than the frame).

        Example:
            >>> SliceSettings().tile_wh((1920, 1080)), SliceSettings().tile_wh((640, 480))
            ((640, 540), (320, 240))
        """
        w, h = frame_wh
        if self.slice_wh is not None:
            return min(self.slice_wh[0], w), min(self.slice_wh[1], h)
        return (w // 3 if w >= 1280 else w // 2), h // 2


def sliced_detect(
    detect_image: Callable[[ImageRGB], Detections],
    image: ImageRGB,
    settings: SliceSettings,
) -> Detections:
    """Run ``detect_image`` on overlapping tiles (plus the full frame) and merge with NMS.

    Args:
        detect_image: Detector on one RGB image; returns boxes in that image's pixels.
        image: Full frame, H×W×3 RGB.
        settings: Tile grid and merge threshold.

    Returns:
        Detections in full-frame pixels, duplicates from overlapping tiles suppressed
        class-wise.

    Example:
        >>> empty = lambda img: Detections.empty()
        >>> len(sliced_detect(empty, np.zeros((1080, 1920, 3), np.uint8), SliceSettings()))
        0
    """
    h, w = image.shape[:2]
    if h * w < settings.min_frame_px:
        return detect_image(image)
    sw, sh = settings.tile_wh((w, h))
    overlap = (int(sw * settings.overlap_ratio), int(sh * settings.overlap_ratio))
    slicer = sv.InferenceSlicer(
        callback=lambda tile: detect_image(np.ascontiguousarray(tile)),
        slice_wh=(sw, sh),
        overlap_wh=overlap,
        overlap_filter=sv.OverlapFilter.NONE,
    )
    parts = [slicer(image)]
    if settings.full_frame:
        parts.append(detect_image(image))
    merged = Detections.merge([p for p in parts if len(p) > 0])
    if len(merged) == 0:
        return Detections.empty()
    return merged.with_nms(threshold=settings.iou_threshold, class_agnostic=False)
