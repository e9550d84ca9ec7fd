"""File-based frame sources: a single image, a folder of frames, or a video file.

Video is decoded with FFmpeg through PyAV. Each source yields `Frame`s (RGB) and knows its
frame rate, resolution and (when the container says) its length, so callers can show progress.
A decode error in the middle of a video raises `InputError` *after* the frames decoded so far
were yielded, so a caller can keep and write partial results before reporting the error.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import simplejpeg

from crowdsight.core.errors import ConfigError, InputError
from crowdsight.core.types import Frame, ImageRGB

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".avi",
        ".mov",
        ".mkv",
        ".webm",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".ts",
        ".flv",
        ".wmv",
        ".3gp",
        ".mjpeg",
        ".h264",
        ".h265",
    }
)


#: Largest image accepted, in pixels. A priori, from the largest camera frames in use: 8K UHD
#: is 7680x4320 = 33.2 MP; 50 MP leaves room for panoramas. Decoding holds 3 bytes per pixel
#: (150 MB at the limit); a 20000x20000 PNG would need 1.2 GB before any model ran.
MAX_INPUT_PIXELS = 50_000_000
#: Smallest image side accepted: below 32 px (the coarsest detector stride) nothing can be
#: found, and parts of the pipeline assume a frame larger than their kernels.
MIN_INPUT_SIDE = 32


def check_image_size(path: Path, data: npt.NDArray[np.uint8]) -> None:
    """Refuse empty, tiny and huge images from their header, before decoding any pixel.

    Raises:
        InputError: one line with the size found and the limit.
    """
    if data.size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    from PIL import Image, UnidentifiedImageError

    limit_mp = MAX_INPUT_PIXELS / 1e6
    too_large = f"{path}: image too large (the limit is {limit_mp:.0f} MP): downscale it first"
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:  # reads the header only
            w, h = im.size
    except Image.DecompressionBombError:
        raise InputError(too_large) from None
    except (UnidentifiedImageError, OSError, ValueError):
        return  # not something Pillow knows: OpenCV decides below
    if w * h > MAX_INPUT_PIXELS:
        raise InputError(too_large.replace("too large", f"too large ({w}x{h})"))
    if min(w, h) < MIN_INPUT_SIDE:
        raise InputError(
            f"{path}: image too small ({w}x{h}; each side must be {MIN_INPUT_SIDE} px or more)"
        )


def read_image(path: Path) -> ImageRGB:
    """Read an image file as RGB uint8 (grayscale and alpha are converted).

    Baseline and progressive JPEGs without EXIF are decoded straight to RGB by
    libjpeg-turbo through ``simplejpeg``: the same pixels as OpenCV (bit-exact on Mall and
    MOT17 frames), 1.3x faster at 640x480 (0.83 vs 1.07 ms) and 2.3x at 1920x1080 (4.8 vs
    10.9 ms) on this project's 2-vCPU VM (``python benchmarks/decode.py``). Everything
    else (PNG, WebP, JPEGs carrying an EXIF orientation, anything simplejpeg refuses) goes
    through OpenCV, which also rotates by EXIF orientation.

    Raises:
        InputError: the file is missing or not a decodable image.
    """
    data = np.fromfile(str(path), dtype=np.uint8) if path.exists() else None
    if data is None:
        raise InputError(f"{path}: no such file")
    check_image_size(path, data)
    rgb = decode_plain_jpeg(data)
    if rgb is not None:
        return rgb
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


_JPEG_SOI = b"\xff\xd8\xff"


def decode_plain_jpeg(data: npt.NDArray[np.uint8]) -> ImageRGB | None:
    """RGB pixels of a JPEG with no EXIF block, or None to let OpenCV decode it."""
    head = data[:65536].tobytes()
    if not head.startswith(_JPEG_SOI) or b"Exif\x00\x00" in head:
        return None
    try:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ValueError:  # corrupt or an unsupported variant (e.g. CMYK): OpenCV decides
        return None
    return np.ascontiguousarray(rgb)


@dataclass
class ImageSource:
    """One still image as a one-frame source."""

    path: Path
    camera_id: str = "image"
    kind: str = "image"
    fps: float = 1.0
    n_frames: int | None = 1

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(self.camera_id, 0, 0.0, read_image(self.path))

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class FolderSource:
    """A folder of frames, read in sorted file-name order at a nominal frame rate.

    Unreadable files are skipped (and counted in ``skipped``) rather than stopping the run.
    """

    path: Path
    camera_id: str = "frames"
    fps: float = 25.0
    kind: str = "folder"
    loop: bool = False
    files: list[Path] = field(default_factory=list)
    skipped: int = 0

    def __post_init__(self) -> None:
        self.files = sorted(
            p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
        )
        if not self.files:
            raise InputError(
                f"{self.path}: folder holds no image files ({', '.join(sorted(IMAGE_EXTS))})"
            )

    @property
    def n_frames(self) -> int | None:
        return None if self.loop else len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            for f in self.files:
                try:
                    img = read_image(f)
                except InputError as exc:
                    self.skipped += 1
                    log.warning("skipping frame: %s", exc)
                    continue
                yield Frame(self.camera_id, index, index / self.fps, img)
                index += 1
            if not self.loop:
                return

    def close(self) -> None:
        """Nothing to release."""


class VideoSource:
    """A video file decoded by FFmpeg (PyAV), optionally looped.

    Raises:
        InputError: on open when the file is missing or not a video; while iterating when the
            stream is corrupt or truncated (after yielding every frame that decoded).
    """

    kind = "video"

    def __init__(self, path: Path, camera_id: str = "video", *, loop: bool = False) -> None:
        self.path = path
        self.camera_id = camera_id
        self.loop = loop
        self.decode_errors = 0
        if not path.exists():
            raise InputError(f"{path}: no such file")
        import av  # here, not at module top: folders of frames and images never need FFmpeg

        try:
            self._container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{path}: not a readable video ({exc.__class__.__name__}: {exc})"
            ) from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{path}: contains no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        self.resolution_wh = (int(stream.codec_context.width), int(stream.codec_context.height))
        w, h = self.resolution_wh
        if w * h > MAX_INPUT_PIXELS or (w and h and min(w, h) < MIN_INPUT_SIDE):
            self._container.close()
            raise InputError(
                f"{path}: video frames of {w}x{h} are outside the accepted size "
                f"({MIN_INPUT_SIDE} px per side to {MAX_INPUT_PIXELS / 1e6:.0f} MP)"
            )
        declared = int(stream.frames or 0)
        if not declared and stream.duration and stream.time_base:
            declared = round(float(stream.duration * stream.time_base) * self.fps)
        if not declared and self._container.duration:  # container-level, in microseconds
            declared = round(self._container.duration / 1e6 * self.fps)
        self._declared = declared or None

    @property
    def n_frames(self) -> int | None:
        return None if self.loop else self._declared

    def _decode_once(self, start_index: int, start_ts: float) -> Iterator[Frame]:
        import av

        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        index = start_index
        try:
            for packet in self._container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    self.decode_errors += 1
                    continue
                for vf in frames:
                    ts = float(vf.time) if vf.time is not None else (index - start_index) / self.fps
                    rgb = np.asarray(vf.to_ndarray(format="rgb24"), dtype=np.uint8)
                    yield Frame(self.camera_id, index, start_ts + ts, rgb)
                    index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path}: video is corrupt after frame {index} ({exc})") from exc
        decoded = index - start_index
        if decoded == 0:
            raise InputError(f"{self.path}: no decodable video frames")
        if self._declared and decoded < 0.95 * self._declared - 2:
            raise InputError(
                f"{self.path}: video is truncated: decoded {decoded} of {self._declared} frames"
            )

    def __iter__(self) -> Iterator[Frame]:
        index, ts0 = 0, 0.0
        while True:
            last_ts = ts0
            for frame in self._decode_once(index, ts0):
                index = frame.index + 1
                last_ts = frame.ts_s
                yield frame
            if not self.loop:
                return
            ts0 = last_ts + 1.0 / self.fps
            self._container.seek(0)

    def close(self) -> None:
        """Release the demuxer."""
        self._container.close()


def check_fps(fps: float | None) -> None:
    """Refuse a frame rate that is not a positive, finite number (None: the default)."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"frame rate {fps} is not a positive number of frames per second")


def open_source(
    path: Path, camera_id: str | None = None, *, fps: float | None = None, loop: bool = False
) -> ImageSource | FolderSource | VideoSource:
    """Open an image, a folder of frames or a video file.

    Args:
        path: The input.
        camera_id: Name given to the frames (default: the file or folder name).
        fps: Frame rate assumed for a folder of frames (videos carry their own).
        loop: Restart from the beginning at the end (folders and videos).

    Raises:
        InputError: missing path, empty folder, or neither an image nor a video.
        ConfigError: ``fps`` is not a positive number (0 used to mean 25 without a word; a
            negative rate ran time backwards, so speeds and dwell times came out negative).
    """
    check_fps(fps)
    path = Path(path)
    cam = camera_id or path.stem or "input"
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return FolderSource(path, cam, fps=25.0 if fps is None else fps, loop=loop)
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTS:
        read_image(path)  # fail early on a broken image
        return ImageSource(path, cam)
    if suffix in VIDEO_EXTS or suffix == "":
        return VideoSource(path, cam, loop=loop)
    # Unknown extension: let FFmpeg decide, with a clear message if it cannot.
    try:
        return VideoSource(path, cam, loop=loop)
    except InputError as exc:
        raise InputError(
            f"{path}: neither an image ({', '.join(sorted(IMAGE_EXTS))}) nor a readable video"
        ) from exc
