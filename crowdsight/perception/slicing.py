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
        slice_wh: Tile size in pixels. Smaller tiles find smaller people but cost more
            inferences (a 1920×1080 frame is 6 tiles of 640×540 with the default overlap).
        overlap_ratio: Overlap between neighbouring tiles as a fraction of the tile size; it
            should exceed the size of the people you want found whole in at least one tile.
        iou_threshold: IoU above which duplicates from neighbouring tiles are merged.
        full_frame: Also run once on the whole frame (catches people larger than a tile).
        min_frame_px: Frames with fewer pixels than this are not tiled at all.
    """

    slice_wh: tuple[int, int] = (640, 540)
    overlap_ratio: float = 0.25
    iou_threshold: float = 0.5
    full_frame: bool = True
    min_frame_px: int = 800 * 600


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
    sw, sh = min(settings.slice_wh[0], w), min(settings.slice_wh[1], h)
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
