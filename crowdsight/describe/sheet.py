"""A picture of person crops with the descriptions crowdsight generates for them.

What an operator checks before trusting descriptions on a camera: each crop (head blurred, as in
everything crowdsight exports), the description text the live describer would store for it, and
an optional caption (e.g. the dataset's labels, in small print). `crowdsight eval attributes
--sheet FILE` draws one for evenly spaced scored crops.

Example:
    >>> sheet = DescriptionSheet()                                   # doctest: +SKIP
    >>> image = sheet.render([crop_rgb], captions=["truth: black top"])  # doctest: +SKIP
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv

from crowdsight.core.types import CLASS_NAME, Frame, ImageRGB
from crowdsight.describe.describer import TrackDescriber
from crowdsight.privacy.redaction import Redactor

#: Crop size on the sheet (w, h) and text column width, in pixels.
CROP_WH = (96, 192)
TEXT_W = 220
#: Grey border around a crop before it is described, so the person box sits inside a frame
#: the way a detector's box does (the head-blur geometry reaches slightly above the box).
PAD_PX = 20


def _box(w: int, h: int) -> sv.Detections:
    """One tracked person box covering a crop placed at (`PAD_PX`, `PAD_PX`)."""
    return sv.Detections(
        xyxy=np.array([[PAD_PX, PAD_PX, PAD_PX + w, PAD_PX + h]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.zeros(1, int),
        tracker_id=np.array([1]),
        data={CLASS_NAME: np.array(["person"])},
    )


class DescriptionSheet:
    """Describes single crops as one-frame tracks and draws them with their text.

    Args:
        describer: The describer to ask (default: the shipped learned heads).
        redactor: Head/face blur applied to every crop drawn (default: blur with person-box
            heads and BlazeFace when installed).
        cols: Tiles per row.
    """

    def __init__(
        self,
        describer: TrackDescriber | None = None,
        redactor: Redactor | None = None,
        cols: int = 4,
    ) -> None:
        self.describer = describer or TrackDescriber.learned()
        self.redactor = redactor or Redactor(mode="blur", motion=False)
        self.cols = cols

    def describe(self, crop: ImageRGB) -> tuple[str, ImageRGB]:
        """(description text, head-blurred crop) of one person crop."""
        h, w = crop.shape[:2]
        frame = np.full((h + 2 * PAD_PX, w + 2 * PAD_PX, 3), 90, np.uint8)
        frame[PAD_PX : PAD_PX + h, PAD_PX : PAD_PX + w] = crop
        dets = _box(w, h)
        self.describer.reset()
        self.describer.describe(Frame("sheet", 0, 0.0, frame), dets)
        text = self.describer.descriptions()[1].text
        blurred, _ = self.redactor.redact(frame, dets)
        return text, np.ascontiguousarray(blurred[PAD_PX : PAD_PX + h, PAD_PX : PAD_PX + w])

    def render(self, crops: Sequence[ImageRGB], captions: Sequence[str] = ()) -> ImageRGB:
        """The sheet (RGB): one tile per crop, `cols` per row, captions in small print."""
        if not crops:
            raise ValueError("a description sheet needs at least one crop")
        tiles = []
        tw, th = CROP_WH[0] + TEXT_W + 12, CROP_WH[1] + 48
        for i, crop in enumerate(crops):
            text, shown = self.describe(crop)
            tile = np.full((th, tw, 3), 255, np.uint8)
            tile[4 : 4 + CROP_WH[1], 4 : 4 + CROP_WH[0]] = cv2.resize(
                shown, CROP_WH, interpolation=cv2.INTER_NEAREST
            )
            y = 18
            for line in textwrap.wrap(text, 30):
                cv2.putText(
                    tile, line, (CROP_WH[0] + 10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1, cv2.LINE_AA,
                )  # fmt: skip
                y += 17
            caption = captions[i] if i < len(captions) else ""
            for j, line in enumerate(textwrap.wrap(caption, 58)[:2]):
                cv2.putText(
                    tile, line, (4, CROP_WH[1] + 20 + 15 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                    (110, 0, 0), 1, cv2.LINE_AA,
                )  # fmt: skip
            tiles.append(tile)
        while len(tiles) % self.cols:
            tiles.append(np.full_like(tiles[0], 255))
        step = self.cols
        rows = [np.concatenate(tiles[i : i + step], axis=1) for i in range(0, len(tiles), step)]
        return np.ascontiguousarray(np.concatenate(rows))
