"""Live sources: network streams, webcams, and looping files, with reconnect and back-off.

A `LiveSource` turns any camera address into an endless iterator of `Frame`s that survives the
things live cameras do: the stream drops, the decoder meets garbage, the webcam is unplugged.

- ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://``, ``srt://``
  URLs are decoded by FFmpeg through PyAV (MJPEG-over-HTTP, HLS, RTSP/H.264 ...).
- A bare integer (``"0"``) is a webcam index, read with OpenCV.
- Anything else is a file or a frame folder, read by `crowdsight.sources.files.open_source`
  one pass at a time; ``loop=True`` plays it again and again like a camera.

When a connection ends or fails, the source waits with capped, jittered exponential back-off
(`Backoff`) and reconnects; frame indices keep increasing across reconnects so every frame a
camera ever produced has a distinct index. Packets that do not decode are skipped and counted
(``status.corrupt_frames``). Every change of state (connecting, connected, reconnecting,
failed, finished) is reported through the ``on_status`` callback, for the dashboard.

Example:
    >>> src = LiveSource("cam1", "rtsp://127.0.0.1:8554/cam", backoff=Backoff(max_s=10))
    >>> for frame in src:  # doctest: +SKIP
    ...     handle(frame)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from crowdsight.core.backoff import Backoff
from crowdsight.core.errors import InputError
from crowdsight.core.types import Frame, ImageRGB
from crowdsight.sources.files import FolderSource, ImageSource, VideoSource, check_fps, open_source
from crowdsight.sources.policy import redact_source

__all__ = ["Backoff", "LiveSource", "SourceState", "SourceStatus", "StopFlag", "is_replayable"]

log = logging.getLogger(__name__)

#: URL schemes decoded by FFmpeg (PyAV).
STREAM_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "tcp://",
    "srt://",
)


class StopFlag(Protocol):
    """A stop signal: `threading.Event` or `multiprocessing.Event`."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SourceState(StrEnum):
    """Where a live source stands (shown on the dashboard)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    FINISHED = "finished"


@dataclass
class SourceStatus:
    """Counters and state of one live source (JSON-ready through `as_dict`)."""

    state: SourceState = SourceState.CONNECTING
    frames: int = 0
    corrupt_frames: int = 0
    dropped_frames: int = 0
    reconnects: int = 0
    attempt: int = 0
    last_error: str | None = None
    since_ts_s: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (state as its string value)."""
        d = asdict(self)
        d["state"] = str(self.state)
        return d


def _rgb(image: Any) -> ImageRGB:
    """An RGB array from an array (as is) or a PyAV frame (converted here, in the consumer,
    so frames dropped by `LiveSource._latest_only` cost no conversion)."""
    if isinstance(image, np.ndarray):
        return image
    return np.asarray(image.to_ndarray(format="rgb24"), dtype=np.uint8)


class _SegmentEnd(Exception):
    """A connection (or one pass over a file) ended; ``error`` says whether abnormally."""

    def __init__(self, error: str | None) -> None:
        super().__init__(error or "end of stream")
        self.error = error


def is_stream_url(source: str) -> bool:
    """True for addresses FFmpeg reads over the network."""
    return source.lower().startswith(STREAM_SCHEMES)


def is_webcam(source: str | int) -> bool:
    """True for a webcam index (an int or a string of digits)."""
    return isinstance(source, int) or str(source).strip().isdigit()


def is_replayable(source: str | int) -> bool:
    """True when the same frames can be read again (files and frame folders)."""
    return not (is_webcam(source) or is_stream_url(str(source)))


class LiveSource:
    """An endless, self-healing frame source for one camera.

    Args:
        camera_id: Name given to the frames.
        source: URL, webcam index, or path of a video file / frame folder.
        loop: Files and folders: play again from the start at the end (otherwise the source
            finishes). Streams and webcams always reconnect.
        realtime: Files and folders: pace frames at their frame rate, stamped with the wall
            clock, as a camera would deliver them. Off: as fast as they decode, stamped with
            video time (deterministic, for tests and batch work).
        backoff: Reconnect policy.
        start_index: Index of the first frame (a restarted worker continues its numbering).
        skip_to: Replayable sources: first frame index to deliver; earlier frames are skipped
            (a restarted worker resumes after its last committed frame). None: no skipping.
        stop: Set to end the iteration promptly, also in the middle of a back-off wait.
        on_status: Called with the status on every change of state.
        on_tick: Called while waiting (lets a worker keep its heartbeat going).
        drop_late: Keep up with the camera when processing is slower than it: streams and
            webcams are decoded in a reader thread that keeps only the newest frame, and
            real-time files skip frames that are already late. Off: every frame is
            processed, however late (exact replays, tests).
        fps: Frame rate assumed for a frame folder.
        open_timeout_s: Network: seconds to wait for a connection.
        read_timeout_s: Network: seconds without data before the connection counts as lost.
    """

    def __init__(
        self,
        camera_id: str,
        source: str | int,
        *,
        loop: bool = True,
        realtime: bool = True,
        backoff: Backoff | None = None,
        start_index: int = 0,
        skip_to: int | None = None,
        stop: StopFlag | None = None,
        on_status: Callable[[SourceStatus], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        drop_late: bool = True,
        fps: float = 25.0,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.camera_id = camera_id
        self.source = str(source)
        self.loop = loop
        self.realtime = realtime
        self.backoff = backoff or Backoff()
        self.start_index = start_index
        self.skip_to = skip_to
        self.stop: StopFlag = stop if stop is not None else threading.Event()
        self.on_status = on_status
        self.on_tick = on_tick
        self.drop_late = drop_late
        self.fps = fps
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._rng = random.Random()
        self.reset()

    def reset(self) -> None:
        """Forget counters and numbering (the next iteration starts at ``start_index``)."""
        self.status = SourceStatus()
        self._index = self.start_index
        self._video_ts0 = 0.0
        self._closers: list[Callable[[], None]] = []

    # ----------------------------------------------------------------- state reporting
    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        # Errors quote the URL (FFmpeg, sockets): its password must not reach status or logs.
        error = redact_source(error) if error is not None else None
        changed = state != self.status.state or error != self.status.last_error
        self.status.state = state
        if error is not None:
            self.status.last_error = error
        if changed:
            self.status.since_ts_s = time.time()
            if self.on_status is not None:
                self.on_status(self.status)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (ticking the heartbeat); False when asked to stop."""
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return True
            if self.on_tick is not None:
                self.on_tick()
            self.stop.wait(min(left, 0.25))
        return False

    # ----------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Frame]:
        failures = 0
        while not self.stop.is_set():
            self._set_state(SourceState.CONNECTING if failures == 0 else SourceState.RECONNECTING)
            produced = 0
            try:
                for image, ts_s in self._segment():
                    if produced == 0:
                        failures = 0
                        self.status.attempt = 0
                        self._set_state(SourceState.CONNECTED)
                    produced += 1
                    frame = self._frame(image, ts_s)
                    if frame is not None:
                        yield frame
                    if self.stop.is_set():
                        return
            except _SegmentEnd as end:
                if end.error is None and not is_replayable(self.source):
                    end = _SegmentEnd("stream ended")
                if end.error is None:  # a clean end of one pass over a file
                    if not self.loop:
                        self._set_state(SourceState.FINISHED)
                        return
                    continue
                error = end.error
            finally:
                self._close()
            failures += 1
            self.status.attempt = failures
            if produced:
                self.status.reconnects += 1
            if self.backoff.max_attempts is not None and failures > self.backoff.max_attempts:
                self._set_state(SourceState.FAILED, error)
                raise InputError(
                    redact_source(f"{self.source}: gave up after {failures - 1} retries ({error})")
                )
            failed = failures >= self.backoff.fail_after
            state = SourceState.FAILED if failures and failed else SourceState.RECONNECTING
            self._set_state(state, error)
            log.warning(
                "%s: %s; retrying (attempt %d)", self.camera_id, redact_source(error), failures
            )
            if not self._wait(self.backoff.delay_s(failures - 1, self._rng)):
                return

    def _frame(self, image: ImageRGB, ts_s: float) -> Frame | None:
        index = self._index
        self._index += 1
        self.status.frames += 1
        if self.skip_to is not None and index < self.skip_to:
            return None
        return Frame(self.camera_id, index, ts_s, image)

    def _segment(self) -> Iterator[tuple[ImageRGB, float]]:
        """One connection's (or one file pass's) images; always ends by raising _SegmentEnd."""
        if is_webcam(self.source) or is_stream_url(self.source):
            live = self._webcam() if is_webcam(self.source) else self._stream()
            frames = self._latest_only(live) if self.drop_late else live
            for image, ts_s in frames:
                yield _rgb(image), ts_s
        else:
            yield from self._file_pass()
        raise _SegmentEnd(None)

    def _latest_only(self, frames: Iterator[tuple[Any, float]]) -> Iterator[tuple[Any, float]]:
        """Read ``frames`` in a thread and hand over only the newest one (count the rest).

        A camera does not wait for us: without this, a pipeline slower than the camera
        falls further and further behind. The reader thread owns the connection (it closes
        it when it ends), so nothing is closed under a decoder that is still reading.
        """
        slot: deque[tuple[Any, float]] = deque(maxlen=1)
        cond = threading.Condition()
        ended: list[BaseException | None] = []
        quit_reading = threading.Event()

        def read() -> None:
            error: BaseException | None = None
            try:
                for item in frames:
                    with cond:
                        if slot:
                            self.status.dropped_frames += 1
                        slot.append(item)
                        cond.notify()
                    if quit_reading.is_set() or self.stop.is_set():
                        break
            except BaseException as exc:  # handed to the consumer, which re-raises it
                error = exc
            finally:
                close = getattr(frames, "close", None)
                if callable(close):
                    close()
                with cond:
                    ended.append(error)
                    cond.notify()

        threading.Thread(target=read, name=f"read-{self.camera_id}", daemon=True).start()
        try:
            while True:
                with cond:
                    while not slot and not ended:
                        cond.wait(0.25)
                        if self.on_tick is not None:
                            self.on_tick()
                    if not slot:
                        break
                    item = slot.popleft()
                yield item
        finally:
            quit_reading.set()
        if ended and ended[0] is not None:
            raise ended[0]

    def _close(self) -> None:
        for close in self._closers:
            try:
                close()
            except Exception:  # closing a dead connection may fail; nothing to do about it
                log.debug("error closing %s", self.source, exc_info=True)
        self._closers = []

    # ----------------------------------------------------------------- kinds of source
    def _stream(self) -> Iterator[tuple[Any, float]]:
        """Decoded frames (PyAV ``VideoFrame``) of one connection; ends with _SegmentEnd."""
        try:
            container = av.open(
                self.source,
                options={"rtsp_transport": "tcp"} if self.source.startswith("rtsp") else {},
                timeout=(self.open_timeout_s, self.read_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as exc:
            raise _SegmentEnd(f"cannot open stream ({exc.__class__.__name__}: {exc})") from exc
        try:
            if not container.streams.video:
                raise _SegmentEnd("stream has no video")
            stream = container.streams.video[0]
            try:
                for packet in container.demux(stream):
                    for vf in self._decode(packet):
                        yield vf, time.time()
            except (av.error.FFmpegError, OSError) as exc:
                raise _SegmentEnd(f"stream lost ({exc.__class__.__name__}: {exc})") from exc
            raise _SegmentEnd("stream ended")
        finally:
            container.close()

    def _decode(self, packet: Any) -> list[Any]:
        try:
            return list(packet.decode())
        except av.error.InvalidDataError:
            self.status.corrupt_frames += 1
            return []

    def _webcam(self) -> Iterator[tuple[Any, float]]:
        cap = cv2.VideoCapture(int(self.source))
        try:
            if not cap.isOpened():
                raise _SegmentEnd(f"cannot open webcam {self.source}")
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    raise _SegmentEnd("webcam stopped delivering frames")
                yield np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), time.time()
        finally:
            cap.release()

    def _file_pass(self) -> Iterator[tuple[ImageRGB, float]]:
        """One pass over a file or folder, paced and stamped according to ``realtime``."""
        try:
            src = open_source(Path(self.source), self.camera_id, fps=self.fps, loop=False)
        except InputError as exc:
            raise _SegmentEnd(str(exc)) from exc
        self._closers.append(src.close)
        fps = src.fps or self.fps
        skipped_before = getattr(src, "skipped", 0)
        wall0: float | None = None  # wall time of video time 0, anchored at the first frame
        last_rel = 0.0
        first_skip = self._pass_skip(src.n_frames)
        try:
            for i, frame in enumerate(iter(src)):
                last_rel = frame.ts_s
                if i < first_skip:
                    self._index += 1
                    continue
                if self.realtime:
                    if wall0 is None:  # anchor here, not at open: skipped frames cost no wait
                        wall0 = time.time() - frame.ts_s
                    due = wall0 + frame.ts_s - time.time()
                    if self.drop_late and due < -2.0 / fps:  # late: skip, as a camera would
                        self._index += 1
                        self.status.dropped_frames += 1
                        continue
                    if due > 0 and not self._wait(due):
                        return
                    yield frame.image, wall0 + frame.ts_s
                else:
                    yield frame.image, self._video_ts0 + frame.ts_s
        except InputError as exc:
            # files.VideoSource raises after yielding what decoded: a corrupt or truncated
            # file still plays (and loops); the loss is counted, not fatal.
            log.warning("%s: %s", self.camera_id, redact_source(str(exc)))
            self.status.last_error = redact_source(str(exc))
        finally:
            self.status.corrupt_frames += int(getattr(src, "decode_errors", 0))
            self.status.corrupt_frames += int(getattr(src, "skipped", 0)) - skipped_before
        self._video_ts0 += last_rel + 1.0 / fps

    def _pass_skip(self, pass_len: int | None) -> int:
        """Frames to skip at the start of this pass to resume at ``skip_to`` without decoding
        every earlier loop again (pass length known: folders, most videos)."""
        if self.skip_to is None or self._index >= self.skip_to:
            return 0
        behind = self.skip_to - self._index
        if pass_len and behind >= pass_len:
            # Whole passes are skipped arithmetically: numbering stays continuous.
            whole = behind // pass_len
            self._index += whole * pass_len
            self._video_ts0 += whole * pass_len / (self.fps or 25.0)
            behind -= whole * pass_len
        return behind

    def close(self) -> None:
        """Stop iterating and release the connection."""
        self.stop.set()
        self._close()


#: Reconnects an analysis tries after its stream drops before it ends with what it has.
ANALYZE_RETRIES = 3


class StreamInput:
    """A network stream analysed once (``crowdsight analyze rtsp://…``).

    A served camera reconnects for ever; an analysis gives up instead: `probe` (one try) says
    at once when the stream cannot be read, and a stream that drops during the analysis is
    reconnected `ANALYZE_RETRIES` times (back-off 1–5 s) before the analysis ends with the
    frames it has (`InputError`, partial results kept). Frames carry the wall clock; a
    pipeline slower than the camera analyses the newest frame and skips the rest, as `serve`
    does (``skipped`` counts them). Stop it with ``--max-frames`` or Ctrl-C.

    Args:
        source: The stream's URL (`is_stream_url`).
        camera_id: Name given to the frames.
        fps: Frame rate of the annotated video written from it.
        retries: Reconnects after a drop.
    """

    kind = "stream"
    n_frames: int | None = None

    def __init__(
        self,
        source: str,
        camera_id: str = "stream",
        *,
        fps: float = 25.0,
        retries: int = ANALYZE_RETRIES,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        check_fps(fps)
        self.source = source
        self.camera_id = camera_id
        self.fps = fps
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._live = self._open(Backoff(initial_s=1.0, max_s=5.0, max_attempts=retries))

    def _open(self, backoff: Backoff) -> LiveSource:
        return LiveSource(
            self.camera_id,
            self.source,
            backoff=backoff,
            drop_late=True,
            fps=self.fps,
            open_timeout_s=self._timeouts[0],
            read_timeout_s=self._timeouts[1],
        )

    @property
    def skipped(self) -> int:
        """Frames the camera sent that were not analysed (the pipeline was busy)."""
        return int(self._live.status.dropped_frames)

    def probe(self) -> None:
        """Read one frame (one try): raises `InputError` saying why the stream cannot be read."""
        live = self._open(Backoff(max_attempts=0))
        try:
            next(iter(live))
        except (InputError, StopIteration) as exc:
            why = live.status.last_error or str(exc) or "no frame"
            raise InputError(f"cannot read the stream {redact_source(self.source)}: {why}") from exc
        finally:
            live.close()

    def __iter__(self) -> Iterator[Frame]:
        return iter(self._live)

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._live.close()


def open_input(
    source: str | Path, camera_id: str | None = None, *, fps: float | None = None
) -> ImageSource | FolderSource | VideoSource | StreamInput:
    """A file, frame folder or image (`open_source`), or a network stream (`StreamInput`)."""
    text = str(source)
    if is_stream_url(text):
        return StreamInput(text, camera_id or "stream", fps=25.0 if fps is None else fps)
    return open_source(Path(source), camera_id, fps=fps)
