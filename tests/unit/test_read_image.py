"""read_image: the libjpeg-turbo fast path must give OpenCV's pixels and its errors."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from crowdsight.core.errors import InputError
from crowdsight.sources.files import read_image


def _opencv_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _scene(h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 0)
    img[: h // 2, : w // 4] = (200, 30, 30)  # a red block, top left, to see orientation
    return img


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_pixels_match_opencv(tmp_path: Path, progressive: bool) -> None:
    path = tmp_path / "f.jpg"
    rgb = _scene()
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), flags)
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape == (96, 128, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, _opencv_rgb(path))
    assert got[10, 5, 0] > 150 > got[10, 5, 2]  # RGB order, not BGR


def test_grayscale_jpeg_becomes_three_channels(tmp_path: Path) -> None:
    path = tmp_path / "g.jpg"
    assert cv2.imwrite(str(path), _scene()[:, :, 1])
    got = read_image(path)
    assert got.shape == (96, 128, 3)
    np.testing.assert_array_equal(got, _opencv_rgb(path))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    buf = io.BytesIO()
    Image.fromarray(_scene()).save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    path.write_bytes(buf.getvalue())
    got = read_image(path)
    assert got.shape == (128, 96, 3)  # displayed upright, as OpenCV shows it
    np.testing.assert_array_equal(got, _opencv_rgb(path))


def test_png_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    rgb = _scene()
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_image(path), rgb)


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_jpeg_is_a_clear_error(tmp_path: Path, keep: float) -> None:
    whole = tmp_path / "f.jpg"
    assert cv2.imwrite(str(whole), _scene(480, 640))
    cut = tmp_path / "cut.jpg"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="not a readable image"):
        read_image(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.jpg")
