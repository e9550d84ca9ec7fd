"""MP4 writing through PyAV (H.264, yuv420p; odd sizes are padded to even)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from crowdsight.core.types import ImageRGB


class VideoWriter:
    """Write RGB frames to an H.264 MP4 at a fixed frame rate.

    Args:
        path: Output file (.mp4).
        fps: Frame rate of the output.
        crf: x264 quality (lower is better; 23 is x264's default, 28 keeps files small).
    """

    def __init__(self, path: Path, fps: float, crf: int = 26) -> None:
        self.path = path
        self.fps = Fraction(fps).limit_denominator(1000) if fps > 0 else Fraction(25)
        self.crf = crf
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._failed = False
        self.frames = 0

    def _open(self, w: int, h: int) -> None:
        self._container = av.open(str(self.path), mode="w")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = w + (w % 2), h + (h % 2)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._stream = stream

    def write(self, image: ImageRGB) -> None:
        """Append one RGB frame (all frames must share the first frame's size)."""
        h, w = image.shape[:2]
        if self._container is None:
            self._open(w, h)
        assert self._stream is not None and self._container is not None
        if (w % 2) or (h % 2):
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError:  # e.g. ENOSPC: the file cannot be finished properly any more
            self._failed = True
            raise
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file.

        After a failed write (a full disk) the encoder is not flushed: PyAV 18 crashes the
        process (SIGSEGV, measured) when a flush follows a failed mux. The file is closed as is.
        """
        if self._container is not None and self._stream is not None:
            container, self._container = self._container, None
            try:
                if not self._failed:
                    for packet in self._stream.encode():
                        container.mux(packet)
            finally:
                container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
