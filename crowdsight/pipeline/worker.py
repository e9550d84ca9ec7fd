"""The camera worker: one process that reads one camera and runs its `CameraPipeline`.

The worker is deliberately small: it reads frames from a `LiveSource`, runs the pipeline and
*reports* — it never writes to the store. Reports travel to the runner over a one-way
`multiprocessing.Pipe` (see `LocalRunner` for why a pipe and not a shared queue), and the
runner commits them.

What the worker sends (`WorkerReport`):
- every frame that raised events, immediately: the `Event` objects as the analytics raised
  them, plus a redacted JPEG snapshot of that frame per event;
- metrics every ``metrics_every_s``; a small redacted, annotated JPEG every ``jpeg_every_s``,
  with a `LiveFrame` saying which frame it shows and the boxes drawn on it;
- progress (last frame index processed, fps, source status) at least every
  ``progress_every_s``, and at once when the source changes state.
Every report carries ``last_index``: all frames up to it have been fully reported, because a
single writer's pipe is FIFO. The runner turns that into its per-camera checkpoint.

Stable event ids. Analytics give events random ids; the runner's one open-event ledger per
camera (`crowdsight.core.events.OpenEvents`) replaces them by ids derived from where each event
was first raised (the report's ``last_index`` is the frame that raised its events), so a worker
that restarts and replays frames re-creates the very same ids.

Liveness: the worker stamps ``heartbeat`` (a shared double, `time.monotonic`, which is
system-wide on Linux) on every frame and while it waits for a stream to come back.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.config.scene import SceneConfig
from crowdsight.core.events import Event, LineCrossed, Overcrowding
from crowdsight.core.metrics import SceneMetrics
from crowdsight.core.types import CLASS_NAME, Detections, Frame, ImageRGB
from crowdsight.sources.stream import Backoff, LiveSource, SourceStatus, StopFlag

log = logging.getLogger(__name__)

ReportKind = Literal["progress", "status", "done", "error"]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to run one camera (picklable).

    Attributes:
        camera_id: Camera id (events and frames carry it).
        source: URL, webcam index, or path of a video file / frame folder.
        loop: Replay files and folders at their end.
        realtime: Pace files at their frame rate and stamp frames with the wall clock.
        drop_late: Skip frames the pipeline is too slow for (see `LiveSource`).
        settings: Pipeline stages and cadences.
        scene: Zones, lines and rules, validated where they entered (API, config file, DB
            row); None for counts and density only. Pickled as is to the worker (spawned
            process or Ray actor) and never validated again.
        pipeline_factory: ``"module:callable"`` building the pipeline from
            ``(camera_id, settings, scene)``; None builds the standard `CameraPipeline`.
        id_salt: Mixed into stable event ids by the runner's `OpenEvents` ledger: one salt per
            session, so ids repeat for replays within a session and never collide across
            sessions.
        start_index: Index of the first frame read (continues the numbering after a restart).
        skip_to: Replayable sources: first frame index to process (resume after the last
            committed frame); None processes everything.
        jpeg_every_s: Seconds between live JPEGs (0 disables them).
        descriptions_every_s: Seconds between track descriptions sent (0: none).
        folder_fps: Frame rate of a folder of frames.
        jpeg_max_width: Live JPEGs are scaled down to this width.
        snapshots: Attach a redacted JPEG of the frame to each new event.
        metrics_every_s: Seconds between metric samples sent for storage.
        progress_every_s: Longest gap between two reports (the runner's checkpoint cadence).
        backoff: Reconnect policy of the source.
        max_consecutive_errors: Pipeline errors in a row after which the worker gives up
            (and the runner restarts it); single bad frames are skipped.
        anomaly_dir: Folder of every camera's anomaly models (this camera's is
            ``anomaly_dir/camera_id``); None: learned models are kept in memory only.
    """

    camera_id: str
    source: str
    loop: bool = True
    realtime: bool = True
    drop_late: bool = True
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    scene: SceneConfig | None = None
    pipeline_factory: str | None = None
    id_salt: str = ""
    start_index: int = 0
    skip_to: int | None = None
    jpeg_every_s: float = 0.5
    descriptions_every_s: float = 2.0
    folder_fps: float = 25.0
    jpeg_max_width: int = 640
    snapshots: bool = True
    metrics_every_s: float = 1.0
    progress_every_s: float = 0.25
    backoff: Backoff = field(default_factory=Backoff)
    max_consecutive_errors: int = 50
    anomaly_dir: Path | None = None


@dataclass(frozen=True)
class LiveFrame:
    """Which source frame a live JPEG shows, and the boxes drawn on it (one frame, one truth).

    The JPEG, these boxes and the counts drawn in its header all come from one `FrameResult`,
    so a client can check the picture against its own analysis of the same frame (e.g.
    ``crowdsight analyze``) and show figures that agree with the picture.

    Attributes:
        frame_index: The source's frame index (files and folders: ``index % frames per pass``
            is the frame within the file).
        ts_s: The frame's timestamp.
        resolution_wh: Source frame size; ``xyxy`` is in these pixels (the JPEG may be
            scaled down).
        xyxy: Drawn boxes (tracked objects), one ``[x1, y1, x2, y2]`` per box.
        track_ids: Track id of each box.
        class_names: Class of each box.
        detected: Boxes the detector found on this frame (tracks not yet confirmed are
            found but not drawn).
    """

    frame_index: int
    ts_s: float
    resolution_wh: tuple[int, int]
    xyxy: tuple[tuple[float, float, float, float], ...] = ()
    track_ids: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    detected: int | None = None

    @property
    def tracked(self) -> int:
        """Boxes drawn (the picture's "tracked" count)."""
        return len(self.xyxy)

    @classmethod
    def of(cls, result: Any) -> LiveFrame:
        """The live frame record of a `FrameResult`."""
        frame, dets = result.frame, result.detections
        n = len(dets)
        names = dets.data.get(CLASS_NAME)
        ids = dets.tracker_id
        return cls(
            frame_index=int(frame.index),
            ts_s=float(frame.ts_s),
            resolution_wh=(int(frame.resolution_wh[0]), int(frame.resolution_wh[1])),
            xyxy=tuple(
                (float(a), float(b), float(c), float(d))
                for a, b, c, d in np.asarray(dets.xyxy, np.float64).reshape(n, 4)
            ),
            track_ids=tuple(int(i) for i in ids) if ids is not None else (-1,) * n,
            class_names=tuple(str(x) for x in names) if names is not None else ("person",) * n,
            detected=None if result.raw is None else len(result.raw),
        )


@dataclass
class WorkerReport:
    """One message from a worker to the runner.

    Attributes:
        camera_id: Which camera.
        kind: ``progress`` (regular), ``status`` (source state changed), ``done`` (the source
            finished or the worker was asked to stop), ``error`` (the worker is giving up).
        last_index: Every frame up to this index has been fully reported (None: none yet).
        ts_s: Timestamp of that frame.
        events: New or updated events of frame ``last_index``, as the analytics raised
            them (their ids are the analytics' own; the runner's `OpenEvents` makes them
            stable).
        snapshots: Redacted JPEG per event id (the analytics' ids, like ``events``).
        metrics: A metrics sample (at ``ts_s``) to store, or None.
        descriptions: Plain-words descriptions of current tracks (``track_id``, ``text``,
            ``fields``, ``ts_s``), for `Store.record_descriptions`.
        live_metrics: The latest metrics (for the status view), or None.
        jpeg: A redacted, annotated live JPEG, or None.
        live_frame: Which frame ``jpeg`` shows and the boxes drawn on it (with ``jpeg``).
        fps: Frames processed per second (smoothed).
        source: `SourceStatus.as_dict()` of the source.
        error: Why the worker gives up (``error`` reports).
        warnings: What the operator should fix while the camera keeps running (e.g. a scene
            drawn at another resolution, rescaled).
        pipeline_errors: Frames the pipeline failed on so far (skipped).
    """

    camera_id: str
    kind: ReportKind = "progress"
    last_index: int | None = None
    ts_s: float | None = None
    events: list[Event] = field(default_factory=list)
    snapshots: dict[str, bytes] = field(default_factory=dict)
    metrics: SceneMetrics | None = None
    descriptions: list[dict[str, Any]] = field(default_factory=list)
    live_metrics: SceneMetrics | None = None
    jpeg: bytes | None = None
    live_frame: LiveFrame | None = None
    fps: float = 0.0
    source: dict[str, Any] | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    pipeline_errors: int = 0


class PipelineLike(Protocol):
    """What the worker needs from a pipeline (`CameraPipeline` fits)."""

    def process(self, frame: Frame) -> Any: ...

    def reset(self) -> None: ...


# --------------------------------------------------------------------------- pipelines
def build_pipeline(spec: WorkerSpec) -> PipelineLike:
    """The camera's pipeline: ``spec.pipeline_factory`` or the standard `CameraPipeline`."""
    if spec.pipeline_factory:
        module, _, name = spec.pipeline_factory.partition(":")
        factory: Callable[..., PipelineLike] = getattr(importlib.import_module(module), name)
        return factory(spec.camera_id, spec.settings, spec.scene)
    from crowdsight.pipeline.camera import CameraPipeline

    models = spec.anomaly_dir / spec.camera_id if spec.anomaly_dir is not None else None
    return CameraPipeline(spec.camera_id, spec.settings, spec.scene, anomaly_dir=models)


class TickPipeline:
    """A model-free pipeline whose events follow a fixed rule of the frame index.

    For tests, benchmarks and smoke runs of the service without models: every ``every``-th
    frame raises a `LineCrossed`, and an `Overcrowding` opens every ``open_every`` frames and
    closes ``open_for`` frames later. The events a source produces are thus known in advance,
    which is what lets a test prove that no event was lost or duplicated across a crash.
    """

    def __init__(
        self, camera_id: str, every: int = 5, open_every: int = 40, open_for: int = 15
    ) -> None:
        self.camera_id = camera_id
        self.every = every
        self.open_every = open_every
        self.open_for = open_for
        self.reset()

    def reset(self) -> None:
        """Forget the open event."""
        self._open: Overcrowding | None = None

    def process(self, frame: Frame) -> Any:
        """Events of this frame's index; metrics from the frame's mean brightness."""
        from crowdsight.pipeline.camera import FrameResult

        events: list[Event] = []
        i, ts = frame.index, frame.ts_s
        if i % self.every == 0:
            events.append(
                LineCrossed(camera_id=self.camera_id, start_ts_s=ts, end_ts_s=ts, frame_index=i)
            )
        if self._open is not None and i - (self._open.frame_index or 0) >= self.open_for:
            events.append(self._open.closed(ts))
            self._open = None
        if i % self.open_every == 0 and self._open is None:
            self._open = Overcrowding(camera_id=self.camera_id, start_ts_s=ts, frame_index=i)
            events.append(self._open)
        metrics = SceneMetrics(
            counts={"brightness": float(frame.image.mean()), "count_tracked": 0.0}
        )
        return FrameResult(frame, Detections.empty(), None, False, events, metrics)


def tick_pipeline(
    camera_id: str, settings: PipelineSettings, scene: SceneConfig | None
) -> TickPipeline:
    """`WorkerSpec.pipeline_factory` target: ``"crowdsight.pipeline.worker:tick_pipeline"``."""
    return TickPipeline(camera_id)


def description_items(descriptions: dict[int, Any], ts_s: float) -> list[dict[str, Any]]:
    """`CameraPipeline.descriptions()` as store items (text plus structured fields).

    A description may be a plain string, a mapping, or an object with ``text`` and
    ``fields`` attributes; entries without text are left out.
    """
    items = []
    for track_id, d in descriptions.items():
        text: Any
        fields: Any
        if isinstance(d, str):
            text, fields = d, {}
        elif isinstance(d, dict):
            text, fields = d.get("text"), d.get("fields") or {}
        else:
            text, fields = getattr(d, "text", None), getattr(d, "fields", None) or {}
        if text:
            items.append(
                {"track_id": int(track_id), "text": str(text), "fields": dict(fields), "ts_s": ts_s}
            )
    return items


# --------------------------------------------------------------------------- images
def encode_jpeg(image_rgb: ImageRGB, max_width: int, quality: int = 75) -> bytes:
    """JPEG bytes of an RGB image, scaled down to ``max_width`` when wider."""
    h, w = image_rgb.shape[:2]
    if w > max_width:
        size = (max_width, round(h * max_width / w))
        image_rgb = np.asarray(cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(np.asarray(buf).tobytes())


class RedactedImages:
    """Annotated, redacted JPEGs of results; fails closed.

    If redaction is unavailable or fails, no image is produced at all (and that is logged
    once): an unredacted image never leaves the worker.
    """

    def __init__(self, max_width: int) -> None:
        self.max_width = max_width
        self._annotator: Any = None
        self._broken = False

    def jpeg(self, result: Any) -> bytes | None:
        """The redacted annotated JPEG of ``result``, or None when redaction is unavailable."""
        if self._broken:
            return None
        try:
            if self._annotator is None:
                from crowdsight.pipeline.annotate import Annotator

                self._annotator = Annotator()
            return encode_jpeg(self._annotator.annotate(result, redact=True), self.max_width)
        except Exception:
            log.exception("live images disabled: redaction or annotation failed")
            self._broken = True
            return None


# --------------------------------------------------------------------------- the worker
class CameraWorker:
    """The loop of one worker process (also usable in-process, e.g. under Ray).

    Args:
        spec: What to run.
        send: Delivers a report to the runner (a pipe's ``send``).
        stop: Set by the runner to stop the worker.
        beat: Called to stamp the heartbeat.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        send: Callable[[WorkerReport], None],
        stop: StopFlag,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.spec = spec
        self.send = send
        self.stop = stop
        self.beat = beat
        self.images = RedactedImages(spec.jpeg_max_width)
        self.reset()

    def reset(self) -> None:
        """Forget counters and timers."""
        self._last_index: int | None = None
        self._last_ts: float | None = None
        self._source_status: dict[str, Any] | None = None
        self._next_progress = self._next_metrics = self._next_jpeg = self._next_desc = 0.0
        self._pipeline: PipelineLike | None = None
        self._fps = 0.0
        self._t_last_frame: float | None = None
        self._fps_frames = 0
        self._errors = self._errors_in_row = 0
        self._live_metrics: SceneMetrics | None = None

    def _on_source_status(self, status: SourceStatus) -> None:
        self._source_status = status.as_dict()
        self.beat()
        self.report("status")

    def report(self, kind: ReportKind, **fields: Any) -> None:
        """Send a report of ``kind`` with the current progress and the given fields."""
        self.send(
            WorkerReport(
                camera_id=self.spec.camera_id,
                kind=kind,
                last_index=self._last_index,
                ts_s=self._last_ts,
                fps=self._fps,
                source=self._source_status,
                pipeline_errors=self._errors,
                live_metrics=self._live_metrics,
                warnings=self._warnings(),
                **fields,
            )
        )
        self._next_progress = time.monotonic() + self.spec.progress_every_s

    def _warnings(self) -> list[str]:
        """The pipeline's standing warnings (the scene's size against the frames', rules
        that cannot judge this camera)."""
        analytics = getattr(self._pipeline, "analytics", None)
        warning = getattr(analytics, "scale_warning", None)
        return ([warning] if warning else []) + list(getattr(analytics, "rule_warnings", []))

    def run(self) -> None:
        """Read, process and report until the source ends or ``stop`` is set."""
        spec = self.spec
        pipeline = self._pipeline = build_pipeline(spec)
        source = LiveSource(
            spec.camera_id,
            spec.source,
            loop=spec.loop,
            realtime=spec.realtime,
            drop_late=spec.drop_late,
            backoff=spec.backoff,
            start_index=spec.start_index,
            skip_to=spec.skip_to,
            stop=self.stop,
            on_status=self._on_source_status,
            on_tick=self.beat,
            fps=spec.folder_fps,
        )
        try:
            for frame in source:
                self.beat()
                self._step(pipeline, frame)
                if self.stop.is_set():
                    break
        finally:
            source.close()
        self._source_status = source.status.as_dict()
        self.report("done")

    def _step(self, pipeline: PipelineLike, frame: Frame) -> None:
        try:
            result = pipeline.process(frame)
        except Exception as exc:
            self._errors += 1
            self._errors_in_row += 1
            log.warning("%s: frame %d skipped: %s", frame.camera_id, frame.index, exc)
            if self._errors_in_row >= self.spec.max_consecutive_errors:
                raise
            result = None
        else:
            self._errors_in_row = 0
        self._tick_fps()
        self._last_index, self._last_ts = frame.index, frame.ts_s
        if result is not None:
            self._emit(result, frame)
        elif time.monotonic() >= self._next_progress:
            self.report("progress")

    def _tick_fps(self) -> None:
        """Frames per second over windows of about one second (robust to bursts)."""
        now = time.monotonic()
        if self._t_last_frame is None:
            self._t_last_frame, self._fps_frames = now, 0
            return
        self._fps_frames += 1
        elapsed = now - self._t_last_frame
        if elapsed >= 1.0:
            self._fps = self._fps_frames / elapsed
            self._t_last_frame, self._fps_frames = now, 0

    def _boxes_fresh(self, result: Any) -> bool:
        """Whether ``result``'s boxes were found on its own frame (one frame, one truth).

        With ``detect_every`` > 1 the frames between detector runs carry the previous
        frame's tracked boxes; drawn on the new picture they sit beside the people who have
        moved on. The live JPEG is therefore taken only from frames the detector ran on (or
        any frame when there is no detector).
        """
        return getattr(self._pipeline, "detector", None) is None or result.raw is not None

    def _emit(self, result: Any, frame: Frame) -> None:
        spec, now = self.spec, time.monotonic()
        self._live_metrics = result.metrics
        events: list[Event] = list(result.events)
        fields: dict[str, Any] = {}
        if events:
            fields["events"] = events
            if spec.snapshots:
                new = [ev.event_id for ev in events if ev.is_open or ev.end_ts_s == ev.start_ts_s]
                image = self.images.jpeg(result) if new else None
                if image is not None:
                    fields["snapshots"] = dict.fromkeys(new, image)
        if spec.metrics_every_s >= 0 and now >= self._next_metrics and result.metrics:
            fields["metrics"] = result.metrics
            self._next_metrics = now + spec.metrics_every_s
        describe = getattr(self._pipeline, "descriptions", None)
        if spec.descriptions_every_s > 0 and now >= self._next_desc and callable(describe):
            self._next_desc = now + spec.descriptions_every_s
            items = description_items(describe(), frame.ts_s)
            if items:
                fields["descriptions"] = items
        if spec.jpeg_every_s > 0 and now >= self._next_jpeg and self._boxes_fresh(result):
            self._next_jpeg = now + spec.jpeg_every_s
            image = self.images.jpeg(result)
            if image is not None:
                fields["jpeg"], fields["live_frame"] = image, LiveFrame.of(result)
        if fields or now >= self._next_progress:
            self.report("progress", **fields)


class SignalStop:
    """The worker's stop flag: the runner's shared flag, or a SIGTERM seen by this process.

    A signal handler must never take a lock: ``multiprocessing.Event.set`` takes the
    event's condition lock, which the interrupted main thread may be holding inside
    ``Event.wait`` (a worker backing off from an offline camera waits in it most of the
    time), so setting it from the handler deadlocks the worker and then the runner that
    sets the same event. The handler only flips `requested` (a plain attribute); readers
    see it at their next `is_set` or bounded `wait`.

    Example:
        >>> import threading
        >>> flag = SignalStop(threading.Event())
        >>> flag.on_signal(15, None); flag.is_set()
        True
    """

    def __init__(self, shared: StopFlag, poll_s: float = 0.25) -> None:
        self.shared = shared
        self.poll_s = poll_s
        self.requested = False

    def on_signal(self, _signum: int, _frame: object) -> None:
        """Signal handler: set the local flag only (no locks, no I/O)."""
        self.requested = True

    def is_set(self) -> bool:
        """True once asked to stop by the runner or by a signal."""
        return self.requested or self.shared.is_set()

    def set(self) -> None:
        """Ask this process to stop (local flag only)."""
        self.requested = True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for either flag, in slices of ``poll_s`` so a signal is seen promptly."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.requested:
            left = self.poll_s
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
            if left <= 0:
                return self.is_set()
            if self.shared.wait(left):
                return True
        return True


class _Heartbeat:
    def __init__(self, value: Synchronized[float]) -> None:
        self.value = value

    def __call__(self) -> None:
        self.value.value = time.monotonic()


def run_worker(
    spec: WorkerSpec, conn: Connection, stop: StopFlag, heartbeat: Synchronized[float]
) -> None:
    """Entry point of a worker process (``multiprocessing`` spawn target).

    Ctrl-C reaches every process of the terminal's group; workers ignore SIGINT and let the
    runner stop them in order. SIGTERM (e.g. ``timeout`` or systemd signalling the whole
    group) asks for a clean stop through `SignalStop`, whose handler takes no lock.
    """
    flag = SignalStop(stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, flag.on_signal)
    logging.basicConfig(level=logging.WARNING, format=f"[{spec.camera_id}] %(message)s")
    beat = _Heartbeat(heartbeat)
    beat()
    worker = CameraWorker(spec, conn.send, flag, beat)
    try:
        worker.run()
    except BrokenPipeError:
        return  # the runner is gone; nobody to report to
    except Exception as exc:
        log.exception("worker failed")
        with contextlib.suppress(OSError):
            worker.report("error", error=f"{exc.__class__.__name__}: {exc}")
        raise SystemExit(1) from exc
    finally:
        conn.close()
