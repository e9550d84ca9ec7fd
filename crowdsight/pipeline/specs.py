"""The worker spec of one camera: a camera record under the runner's settings."""

from __future__ import annotations

from typing import Any, Protocol

from crowdsight.config.runner import RunnerSettings
from crowdsight.config.scene import SceneConfig
from crowdsight.core.backoff import Backoff
from crowdsight.pipeline.worker import WorkerSpec


class CameraLike(Protocol):
    """A camera record (`crowdsight.store.records.Camera` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def loop(self) -> bool: ...


def spec_for(camera: CameraLike, settings: RunnerSettings, salt: str) -> WorkerSpec:
    """The worker spec of a camera record under the runner's settings."""
    overrides: dict[str, Any] = {}
    for name in ("detect_every", "density_every_s"):
        value = getattr(camera, name, None)
        if value is not None:
            overrides[name] = value
    pipeline = settings.pipeline.model_copy(update=overrides)
    scene: SceneConfig | None = getattr(camera, "scene", None)
    if scene is not None and scene.is_empty:
        scene = None  # an empty scene means counts and density only
    return WorkerSpec(
        camera_id=camera.id,
        source=str(camera.source),
        loop=bool(camera.loop),
        realtime=settings.realtime,
        drop_late=settings.drop_late,
        settings=pipeline,
        scene=scene,
        pipeline_factory=settings.pipeline_factory,
        id_salt=salt,
        jpeg_every_s=settings.jpeg_every_s,
        descriptions_every_s=settings.descriptions_every_s,
        folder_fps=settings.folder_fps,
        snapshots=settings.snapshots,
        metrics_every_s=settings.metrics_every_s,
        backoff=Backoff(initial_s=settings.reconnect_initial_s, max_s=settings.reconnect_max_s),
        anomaly_dir=settings.anomaly_dir,
    )
