"""Global camera-motion compensation (BoT-SORT's GMC, sparse optical flow variant).

A panning or shaking camera moves every box in the image at once; a motion model that
assumes a still camera then predicts each track where the person no longer is. GMC
estimates the frame-to-frame image motion as one 2-D similarity transform (rotation,
uniform scale, translation) from corners tracked by pyramidal Lucas-Kanade flow, with
RANSAC discarding corners on the people themselves, and moves every track with it before
association.

The settings are BoT-SORT's (``GMC(method="sparseOptFlow", downscale=2)``): frames are
halved, up to 1000 Shi-Tomasi corners (quality 0.01, minimum distance 1 px, block 3),
``cv2.estimateAffinePartial2D`` with RANSAC. Off by default in crowdsight: fixed cameras
(the usual case, and both evaluation sequences) gain nothing and pay about a few ms per
frame.

Example:
    >>> gmc = CameraMotion()
    >>> warp = gmc.estimate(frame.image)  # doctest: +SKIP
    >>> warp.shape  # doctest: +SKIP
    (2, 3)
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_DOWNSCALE = 2
_MIN_POINTS = 4  # fewer tracked corners than this: no estimate (identity)


def identity_warp() -> FloatArray:
    """The 2 x 3 affine transform that moves nothing."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class CameraMotion:
    """Frame-to-frame image motion of one camera, one `estimate` call per frame."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame; the next `estimate` returns the identity."""
        self._prev: npt.NDArray[np.uint8] | None = None
        self._prev_points: npt.NDArray[np.float32] | None = None

    def estimate(self, image: npt.NDArray[np.uint8]) -> FloatArray:
        """2 x 3 affine transform from the previous frame's pixels to this frame's.

        Args:
            image: H x W x 3 RGB frame (or H x W grey).

        Returns:
            The transform in full-resolution pixels; the identity for the first frame,
            after a change of resolution, or when too few corners could be followed.
        """
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape[:2]
        small = np.asarray(cv2.resize(grey, (w // _DOWNSCALE, h // _DOWNSCALE)), dtype=np.uint8)
        corners = cv2.goodFeaturesToTrack(
            small, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3
        )
        points = None if corners is None else np.asarray(corners, np.float32)
        prev, prev_points = self._prev, self._prev_points
        self._prev, self._prev_points = small, points
        warp = identity_warp()
        if prev is None or prev.shape != small.shape or prev_points is None:
            return warp
        if len(prev_points) < _MIN_POINTS:
            return warp
        moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, small, prev_points, prev_points.copy())
        ok = status.ravel() == 1
        if int(ok.sum()) < _MIN_POINTS:
            return warp
        found, _ = cv2.estimateAffinePartial2D(prev_points[ok], moved[ok], method=cv2.RANSAC)
        if found is None:
            return warp
        warp = np.asarray(found, np.float64)
        warp[:, 2] *= _DOWNSCALE  # translation back to full-resolution pixels
        return warp


def warp_boxes(xyxy: FloatArray, warp: FloatArray) -> FloatArray:
    """Boxes moved by a 2 x 3 transform (corners mapped; right for similarity transforms)."""
    lin, shift = warp[:, :2], warp[:, 2]
    top_left = xyxy[:, :2] @ lin.T + shift
    bottom_right = xyxy[:, 2:] @ lin.T + shift
    return np.concatenate([top_left, bottom_right], axis=1)


def warp_velocities(vel: FloatArray, warp: FloatArray) -> FloatArray:
    """Box-corner velocities turned and scaled by the transform's linear part."""
    lin = warp[:, :2]
    return np.concatenate([vel[:, :2] @ lin.T, vel[:, 2:] @ lin.T], axis=1)
