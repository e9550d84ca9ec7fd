"""One camera's pipeline: density on a cadence, detect → track → analytics → describe.

A `CameraPipeline` is a plain object with per-camera state (tracker ids, baselines, votes);
`process(frame)` returns a `FrameResult` and never draws, stores or publishes — those are the
annotator's, the runner's and the sinks' jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.config.scene import SceneConfig
from crowdsight.core.errors import ConfigError
from crowdsight.core.events import Event
from crowdsight.core.metrics import SceneMetrics
from crowdsight.core.threads import single_threaded_blas
from crowdsight.core.types import CLASS_NAME, DensityMap, Detections, Frame
from crowdsight.perception.base import Detector
from crowdsight.perception.density_async import AsyncDensity
from crowdsight.perception.density_scale import DensityScale, ScaleStatus
from crowdsight.perception.fusion import FusedCount, fuse, person_boxes
from crowdsight.perception.perspective import GroundPlaneEstimate

if TYPE_CHECKING:
    from crowdsight.perception.count_calibration import CountCalibration

#: Frames with at least this many pixels are sliced when ``slicing`` is "auto" (1 MP): the
#: SSD's 300×300 input shrinks a 1080p frame 6×; tiles cost ~10× its time.
AUTO_SLICE_PX = 1_000_000
#: The same for NanoDet (416×416 input): VGA and larger frames are sliced. Chosen on Mall
#: training frames 1–800 (640×480): sliced NanoDet covers 0.750 of the heads against 0.603
#: whole-frame (`eval detection --range 1-800`); tiles cost ~5× one pass on a CPU.
NANODET_AUTO_SLICE_PX = 300_000


def auto_slice_px(detector: str) -> int:
    """Smallest frame (pixels) that ``slicing: auto`` tiles for this detector spec."""
    return NANODET_AUTO_SLICE_PX if "nanodet" in detector.lower() else AUTO_SLICE_PX


def build_pipeline_detector(settings: PipelineSettings) -> Detector:
    """The detector a camera pipeline with these settings runs (model, threshold, slicing).

    Evaluations build their detector here too, so they score what the product runs.
    """
    from crowdsight.perception.detector import build_detector

    return build_detector(settings.detector.spec, **detector_kwargs(settings))


def detector_kwargs(settings: PipelineSettings) -> dict[str, Any]:
    """Constructor arguments of the pipeline's detector: threads, runtime, threshold, slicing."""
    s = settings
    kwargs: dict[str, Any] = {"threads": s.detector_threads, "runtime": s.runtime}
    if s.confidence is not None:
        kwargs["conf_threshold"] = s.confidence
    if s.slicing != "off":
        from crowdsight.perception.slicing import SliceSettings

        kwargs["slicing"] = SliceSettings(
            min_frame_px=auto_slice_px(s.detector.spec) if s.slicing == "auto" else 0
        )
    if s.detector.classes is not None:
        kwargs["class_names_file"] = s.detector.classes
    return kwargs


#: A frame handed to `CameraPipeline.run` and its detection in flight (None: not due).
_Pending = tuple[Frame, Future[Detections] | None]


class TrackerLike(Protocol):
    def update(
        self, detections: Detections, ts_s: float, image: Any | None = None
    ) -> Detections: ...

    def reset(self) -> None: ...


class DensityLike(Protocol):
    def estimate(self, image: Any, roi_mask: Any = None) -> DensityMap: ...


@dataclass
class FrameResult:
    """Everything the pipeline learned from one frame."""

    frame: Frame
    detections: Detections
    density: DensityMap | None
    density_fresh: bool
    events: list[Event] = field(default_factory=list)
    metrics: SceneMetrics = field(default_factory=SceneMetrics)
    raw: Detections | None = None
    """The detector's own output on this frame (None when detection did not run on it).

    Includes people the tracker has not confirmed yet; redaction hides their heads too."""
    fused: DensityMap | None = None
    """The map the fused count sums to (`crowdsight.perception.fusion.fused_density`): what
    the heatmap shows and zones count. ``density`` stays the model's own map (redaction's
    head cue)."""

    def redaction_boxes(self) -> Detections:
        """Every box whose head must be hidden: tracked boxes and this frame's raw ones."""
        if self.raw is None or not len(self.raw):
            return self.detections
        if not len(self.detections):
            return self.raw
        xyxy = np.concatenate([self.detections.xyxy, self.raw.xyxy]).astype(np.float32)
        names = [
            *self.detections.data.get(CLASS_NAME, ["person"] * len(self.detections)),
            *self.raw.data.get(CLASS_NAME, ["person"] * len(self.raw)),
        ]
        return Detections(
            xyxy=xyxy, class_id=np.zeros(len(xyxy), int), data={CLASS_NAME: np.array(names)}
        )


def _empty() -> Detections:
    return Detections.empty()


class CameraPipeline:
    """Runs the stages for one camera and keeps that camera's state.

    Args:
        camera_id: Name of the camera (used in events).
        settings: Which stages run and how often.
        scene: Zones, lines, calibration and rules (None: counts and density only).
        density_estimator, detector, tracker, analytics, describer: Injected stages; when
            omitted they are built from ``settings`` (models must be installed).
        frame_rate: Nominal frame rate (the tracker's lost-track buffer is in seconds).
        anomaly_dir: This camera's anomaly model folder (``crowdsight serve`` gives one per
            camera): a model learned there scores every frame, and learning requests of the
            API reach the camera through it. None: only the scene's calibration window (if
            any) learns a model, kept in memory.
    """

    def __init__(
        self,
        camera_id: str,
        settings: PipelineSettings | None = None,
        scene: SceneConfig | None = None,
        *,
        density_estimator: DensityLike | None = None,
        detector: Detector | None = None,
        tracker: TrackerLike | None = None,
        analytics: Any = None,
        describer: Any = None,
        frame_rate: float = 25.0,
        anomaly_dir: Path | None = None,
    ) -> None:
        single_threaded_blas()  # numpy (imported above) has loaded OpenBLAS by now
        self.camera_id = camera_id
        self.settings = settings or PipelineSettings()
        self.scene = scene
        s = self.settings
        #: This camera's count calibration (row gains on every density map, or a refitted
        #: output layer of the density model), if its scene names one; read here, at the
        #: edge, so a bad file stops the camera at start.
        self.count_calibration: CountCalibration | None = None
        path = scene.counting.calibration if scene is not None else None
        if path is not None:
            from crowdsight.perception.count_calibration import load_calibration

            self.count_calibration = load_calibration(path)
        self.density_estimator = density_estimator
        if self.density_estimator is None and s.density:
            from crowdsight.perception.density import DensityEstimator

            self.density_estimator = DensityEstimator(threads=s.density_threads, runtime=s.runtime)
        layer = self.count_calibration.output_layer if self.count_calibration else None
        if layer is not None and self.density_estimator is not None:
            if not hasattr(self.density_estimator, "use_output_layer"):
                raise ConfigError(
                    f"{path}: the calibration refits the density model's output layer, which "
                    "this camera's density estimator cannot use"
                )
            self.density_estimator.use_output_layer(layer.layer())
        self._async_density: AsyncDensity | None = None
        if self.density_estimator is not None and s.density_async:
            self._async_density = AsyncDensity(self.density_estimator)
        self.detector = detector
        if self.detector is None and s.detect:
            self.detector = build_pipeline_detector(s)
        self.tracker = tracker
        if self.tracker is None and s.detect:
            from crowdsight.tracking import make_tracker

            self.tracker = make_tracker(
                frame_rate=frame_rate,
                score_thresholds=getattr(self.detector, "track_thresholds", None),
            )
        self.analytics = analytics
        if self.analytics is None and scene is not None:
            from crowdsight.analytics import SceneAnalytics

            self.analytics = SceneAnalytics(scene, camera_id)
        from crowdsight.analytics.anomaly import build_anomaly
        from crowdsight.config.scene import AnomalyRule

        rule = scene.rules.anomaly if scene is not None else AnomalyRule()
        #: The anomaly stage (object model and/or cell model; None when neither runs).
        self.anomaly = build_anomaly(rule, anomaly_dir)
        self.describer = describer
        if self.describer is None and s.detect and s.describe:
            from crowdsight.describe import TrackDescriber

            self.describer = TrackDescriber.learned(runtime=s.runtime)
        self.reset()

    def reset(self) -> None:
        """Forget all per-camera state (as if the camera had just started)."""
        self._last_density: DensityMap | None = None
        self._last_fused: tuple[FusedCount, DensityMap] | None = None
        self._last_density_ts: float | None = None
        self._last_density_index: int | None = None
        self._last_describe_ts: float | None = None
        self._last_tracked: Detections = _empty()
        fixed = self.settings.density_scale
        self._scale = DensityScale(None if fixed == "auto" else fixed)
        self._scale_resolution: tuple[int, int] | None = None
        # The floor the camera's person boxes stand on: where heads can be (see fusion).
        self._floor = GroundPlaneEstimate()
        if getattr(self, "_async_density", None) is not None:
            assert self._async_density is not None
            self._async_density.reset()
        for stage in (self.tracker, self.analytics, self.describer, getattr(self, "anomaly", None)):
            if stage is not None and hasattr(stage, "reset"):
                stage.reset()

    def wait_for_density(self, timeout_s: float = 60.0) -> None:
        """Wait until a background density estimate in flight has finished (no-op otherwise)."""
        if self._async_density is not None:
            self._async_density.wait(timeout_s)

    def _density_due(self, frame: Frame) -> bool:
        if self.density_estimator is None:
            return False
        s = self.settings
        if self._last_density_ts is None or self._last_density_index is None:
            return True
        if s.density_every_n is not None:
            return frame.index - self._last_density_index >= s.density_every_n
        every = s.density_every_s or 0.0
        # Small epsilon: timestamps of frame-rate sources are not exact multiples.
        return frame.ts_s - self._last_density_ts >= every - 1e-6

    def _roi_mask(self, frame: Frame) -> Any:
        roi = getattr(self.analytics, "roi_mask", None)
        return roi(frame.resolution_wh) if callable(roi) else None

    @property
    def density_scale(self) -> ScaleStatus:
        """The density input scale in use and where it came from (for status displays)."""
        return self._scale.status

    def _calibrate_scale(self, frame: Frame) -> None:
        """Seed the scale from the scene's ground-plane calibration, once per resolution."""
        if self._scale_resolution == frame.resolution_wh:
            return
        self._scale_resolution = frame.resolution_wh
        self._floor.reset()
        scene = self.scene
        calibration = scene.calibration if scene is not None else None
        if scene is None or calibration is None or self._scale.fixed is not None:
            return
        from crowdsight.analytics.zones import scaled_homography
        from crowdsight.core.geometry import scale_polygon
        from crowdsight.perception.density_scale import heights_from_calibration

        hom = scaled_homography(scene, frame.resolution_wh)
        if hom is None:
            return
        src = scene.resolution_wh or frame.resolution_wh
        feet = scale_polygon(calibration.image_px, src, frame.resolution_wh)
        heights = heights_from_calibration(hom.matrix, feet)
        self._scale.set_calibration(heights)

    def _update_density(self, frame: Frame) -> bool:
        """Run (or start) density when due; True when a new map is available now."""
        due = self._density_due(frame)
        self._calibrate_scale(frame)
        scale = self._scale.scale
        if self._async_density is not None:
            roi = self._roi_mask(frame)
            if due and self._async_density.submit(frame.image, roi, scale):
                self._last_density_ts, self._last_density_index = frame.ts_s, frame.index
            latest, new = self._async_density.poll()
            if new and latest is not None:
                self._last_density = self._calibrated(latest)
            return new
        if not due:
            return False
        assert self.density_estimator is not None
        from crowdsight.perception.density import estimate_at_scale

        self._last_density = self._calibrated(
            estimate_at_scale(self.density_estimator, frame.image, scale, self._roi_mask(frame))
        )
        self._last_density_ts, self._last_density_index = frame.ts_s, frame.index
        return True

    def _calibrated(self, dm: DensityMap) -> DensityMap:
        """The map with the camera's count calibration applied (unchanged without one)."""
        if self.count_calibration is None:
            return dm
        from crowdsight.perception.count_calibration import apply_calibration

        return apply_calibration(dm, self.count_calibration)

    def _detect_due(self, frame: Frame) -> bool:
        return frame.index % self.settings.detect_every == 0

    def process(self, frame: Frame) -> FrameResult:
        """Run every stage that is due on this frame."""
        raw = None
        if self.detector is not None and self._detect_due(frame):
            raw = self.detector.detect(frame)
        return self._process(frame, raw)

    def run(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """Process a stream of frames, detecting on the next frame while this one is tracked.

        Same results, in the same order, as calling `process` on each frame. When
        `detects_ahead` (setting ``detect_ahead``; by default only with GPU inference),
        the detector runs in one helper thread a frame ahead, so tracking, descriptions
        and analytics (Python, one core) overlap with inference (which releases the GIL)
        instead of adding to it. An error raised by the detector surfaces at the frame it
        happened on, after every earlier frame's result. Each result then waits for the
        next frame to arrive, so a live camera should call `process` per frame instead.
        """
        if self.detector is None or not self.detects_ahead:
            for frame in frames:
                yield self.process(frame)
            return
        detector, source = self.detector, iter(frames)

        def finish(pending: _Pending) -> FrameResult:
            frame, ahead = pending
            return self._process(frame, None if ahead is None else ahead.result())

        with ThreadPoolExecutor(1, thread_name_prefix=f"detect-{self.camera_id}") as pool:
            pending: _Pending | None = None
            while True:
                try:
                    frame = next(source)
                except StopIteration:
                    break
                except BaseException:
                    # The source failed (a corrupt video): the frame before still counts.
                    if pending is not None:
                        yield finish(pending)
                    raise
                ahead = pool.submit(detector.detect, frame) if self._detect_due(frame) else None
                if pending is not None:
                    yield finish(pending)
                pending = (frame, ahead)
            if pending is not None:
                yield finish(pending)

    @property
    def detects_ahead(self) -> bool:
        """Whether `run` detects on the next frame while this one is tracked."""
        mode = self.settings.detect_ahead
        if mode != "auto":
            return mode == "on"
        from crowdsight.models.runtime import uses_accelerator

        return uses_accelerator(self.settings.runtime)

    def _process(self, frame: Frame, raw: Detections | None) -> FrameResult:
        """Every stage but detection; ``raw`` is this frame's detections (None: not due)."""
        fresh = self._update_density(frame)

        detections = self._last_tracked
        if raw is not None and fresh and self.settings.density_people:
            from crowdsight.perception.density_people import with_missed_people

            raw = with_missed_people(self._last_density, raw)
        if raw is not None:
            boxes = person_boxes(raw)
            self._scale.observe(boxes[:, 3] - boxes[:, 1], frame.ts_s)
            self._floor.observe(boxes, frame.ts_s)
            # The frame lets the tracker compare clothing colours (kept per live track only).
            detections = (
                self.tracker.update(raw, frame.ts_s, image=frame.image) if self.tracker else raw
            )
            self._last_tracked = detections

        if self.describer is not None and raw is not None and len(detections):
            last = self._last_describe_ts
            every = self.settings.describe_every_s
            if last is None or frame.ts_s < last or frame.ts_s - last >= every - 1e-6:
                self.describer.describe(frame, detections)
                self._last_describe_ts = frame.ts_s

        metrics: dict[str, float] = {}
        fused: DensityMap | None = None
        if self._last_density is not None:
            metrics["count_density"] = self._last_density.count
            scale = self._scale.status
            metrics["density_scale"] = scale.scale
            metrics["density_scale_boxes"] = float(scale.n_boxes)
            cal = self.count_calibration
            if cal is not None and cal.target != "none":
                # Shown beside the scale: counts corrected on N labelled frames (held-out MAE).
                metrics["count_calibration_frames"] = float(cal.n_frames)
                if cal.cv_mae_calibrated is not None:
                    metrics["count_calibration_mae"] = cal.cv_mae_calibrated
            if fresh or raw is not None or self._last_fused is None:
                # New map or new boxes; in between, zones keep counting the same map object
                # (and `SceneAnalytics` its cached per-zone sums).
                self._last_fused = fuse(
                    self._last_density,
                    detections if self.detector else None,
                    ground=self._floor.plane,
                )
            counts, fused = self._last_fused
            metrics["count_fused"] = counts.fused
            if self.detector is not None:
                metrics["count_detection"] = counts.detection
        if self.detector is not None:
            metrics["count_tracked"] = float(len(detections))
            names = detections.data.get(CLASS_NAME)
            if names is not None and len(names):
                for name, n in zip(*np.unique(np.asarray(names), return_counts=True), strict=True):
                    metrics[f"count:{name}"] = float(n)

        events: list[Event] = []
        scene = SceneMetrics(counts=metrics)
        if self.analytics is not None:
            res = self.analytics.update(frame, detections, fused, fresh)
            events.extend(res.events)
            scene = scene.merged(res.metrics)
        if self.anomaly is not None:
            events.extend(self._anomaly(frame, raw if raw is not None else detections))
            if self.anomaly.method is not None:  # a model scores (not idle)
                score = {"anomaly_score": self.anomaly.last_score}
                scene = scene.merged(SceneMetrics(counts=score))
        return FrameResult(
            frame, detections, self._last_density, fresh, events, scene, raw=raw, fused=fused
        )

    def _anomaly(self, frame: Frame, boxes: Detections) -> list[Event]:
        """Anomaly events of this frame; ``boxes`` are the detector's (as the model learned)."""
        assert self.anomaly is not None
        locator = getattr(self.analytics, "zone_locator", None)
        zone_at = locator(frame.resolution_wh) if callable(locator) else None
        return self.anomaly.update(
            self.camera_id, frame.index, frame.image, frame.ts_s, boxes, zone_at
        )

    def descriptions(self) -> dict[int, Any]:
        """Current plain-language descriptions by track id ({} without a describer)."""
        if self.describer is None:
            return {}
        out: dict[int, Any] = self.describer.descriptions()
        return out

    def summary(self) -> dict[str, Any]:
        """Scene-level summary from analytics ({} without a scene)."""
        if self.analytics is None:
            return {}
        out: dict[str, Any] = self.analytics.summary()
        return out
