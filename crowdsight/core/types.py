"""The values that flow between stages: `Frame`, `Detections`, `DensityMap`.

`Detections` is supervision's struct-of-arrays (``xyxy`` N×4 float32, ``confidence`` N,
``class_id`` N, ``tracker_id`` N or None, and a ``data`` dict of per-row arrays). Using the
field's standard type lets supervision's annotators and Roboflow's trackers take our values
directly; every stage takes and returns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

Detections = sv.Detections

#: Key in ``Detections.data`` holding the class name of each row.
CLASS_NAME = "class_name"

FloatArray = npt.NDArray[np.float32]
ImageRGB = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame.

    Attributes:
        camera_id: Camera (or input) this frame came from.
        index: 0-based frame index in its source.
        ts_s: Timestamp in seconds from the start of the source (or wall clock for live).
        image: H×W×3 uint8 RGB image.
    """

    camera_id: str
    index: int
    ts_s: float
    image: ImageRGB

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"Frame.image must be H×W×3 uint8 RGB, got {img.shape} {img.dtype}")

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class DensityMap:
    """Per-cell people density; the map sums to the estimated count.

    Attributes:
        density: h×w float32 map (people per cell); ``density.sum()`` is the count.
        resolution_wh: (width, height) of the image the map describes.
        roi_mask: Optional h×w bool mask (already applied) of the region that was counted.
    """

    density: FloatArray
    resolution_wh: tuple[int, int]
    roi_mask: npt.NDArray[np.bool_] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.density.ndim != 2:
            raise ValueError(f"DensityMap.density must be 2-D, got shape {self.density.shape}")

    @property
    def count(self) -> float:
        """Estimated number of people (the sum of the map)."""
        return float(self.density.sum(dtype=np.float64))

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Image pixels per density cell along x and y."""
        h, w = self.density.shape
        return self.resolution_wh[0] / w, self.resolution_wh[1] / h

    def to_image_resolution(self) -> FloatArray:
        """The density spread evenly over each cell's pixels (the total count is preserved).

        Each cell's mass goes to exactly the pixels it covers, so counts inside a mask
        agree with the map wherever the mask follows cell borders.

        Example:
            >>> dm = DensityMap(np.ones((2, 2), np.float32), (16, 16))
            >>> round(float(dm.to_image_resolution().sum()), 3)
            4.0
        """
        w, h = self.resolution_wh
        up = cv2.resize(self.density, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        total = up.sum(dtype=np.float64)
        if total > 0:
            up *= np.float32(self.count / total)
        return up

    def count_in_mask(self, mask: npt.NDArray[np.bool_]) -> float:
        """People inside an image-resolution boolean mask (H×W)."""
        up = self.to_image_resolution()
        if mask.shape != up.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {up.shape}")
        return float(up[mask].sum(dtype=np.float64))
