"""The serve config file (YAML): server, runner, cameras and Ray, read and validated once.

This is the edge where configuration enters the live service: `load_serve_config` reads the
file, validates it against `ServeConfig` (one line naming the file and field on error) and
applies the environment (`CROWDSIGHT_PROVIDERS` / `CROWDSIGHT_ORT_SPIN`) to the model runtime.
Nothing deeper reads environment variables for settings.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowdsight.config.pipeline import OnnxDetector, with_runtime_env
from crowdsight.config.runner import RunnerSettings
from crowdsight.config.server import ServerSettings
from crowdsight.core.errors import ConfigError, validation_line
from crowdsight.store.records import Camera


class RayConfig(BaseModel):
    """Run camera workers as Ray actors (``pip install 'crowdsight[ray]'``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    address: str | None = Field(
        default=None,
        description="Ray cluster to join ('auto': the one this machine belongs to; "
        "'ray://host:10001': a remote one); None starts a local Ray.",
    )
    num_cpus_per_camera: float = Field(
        default=1.0, gt=0, description="CPUs Ray reserves for each camera's actor."
    )


class ServeConfig(BaseModel):
    """The serve config file (YAML): server, runner and cameras; every part is optional.

    Example::

        server: {host: 127.0.0.1, port: 8080}
        runner: {realtime: true}
        cameras:
          - id: mall
            name: Mall concourse
            source: /data/mall/frames
            loop: true
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    server: ServerSettings = Field(
        default_factory=ServerSettings,
        description="HTTP service: bind address, database, data dir, admin, MQTT, webhooks.",
    )
    runner: RunnerSettings = Field(
        default_factory=RunnerSettings,
        description="Camera workers: pipeline stages, watchdog, restart and reconnect policy.",
    )
    cameras: list[Camera] = Field(
        default_factory=list,
        description="Cameras written to the store at start (the dashboard can add more).",
    )
    ray: RayConfig | None = Field(
        default=None,
        description="Run camera workers as Ray actors on a cluster; omitted: local processes.",
    )


def load_serve_config(path: Path | None) -> ServeConfig:
    """Read and validate a serve config (None: every default, no cameras).

    Raises:
        ConfigError: one line naming the file, the field and the problem.
    """
    if path is None:
        return _with_env(ServeConfig())
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (server, runner, cameras)")
    try:
        cfg = ServeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_line(path, exc)) from None
    _check_cameras(cfg, path)
    return _with_env(_resolve_detector(cfg, path.parent))


def _resolve_detector(cfg: ServeConfig, folder: Path) -> ServeConfig:
    """A detector file (and its class names) given relative to the config: from its folder."""
    detector = cfg.runner.pipeline.detector
    if not isinstance(detector, OnnxDetector):
        return cfg

    def resolve(p: Path | None) -> Path | None:
        return None if p is None or p.expanduser().is_absolute() else (folder / p).resolve()

    files = {"path": resolve(detector.path), "classes": resolve(detector.classes)}
    detector = detector.model_copy(update={k: v for k, v in files.items() if v is not None})
    pipeline = cfg.runner.pipeline.model_copy(update={"detector": detector})
    return cfg.model_copy(update={"runner": cfg.runner.model_copy(update={"pipeline": pipeline})})


def _with_env(cfg: ServeConfig) -> ServeConfig:
    """The config with the environment's model runtime (unless the file sets ``runtime``)."""
    pipeline = with_runtime_env(cfg.runner.pipeline)
    runner = cfg.runner.model_copy(update={"pipeline": pipeline})
    return cfg.model_copy(update={"runner": runner})


def _check_cameras(cfg: ServeConfig, path: Path) -> None:
    """Unique ids; relative file sources resolved against the config (scenes are validated
    with the cameras, by `ServeConfig`)."""
    seen: set[str] = set()
    for i, cam in enumerate(cfg.cameras):
        if cam.id in seen:
            raise ConfigError(f"{path}: cameras.{i}.id: duplicate camera id {cam.id!r}")
        seen.add(cam.id)
        src = Path(cam.source).expanduser()
        if "://" not in cam.source and not cam.source.isdigit() and not src.is_absolute():
            cfg.cameras[i] = cam.model_copy(update={"source": str((path.parent / src).resolve())})
