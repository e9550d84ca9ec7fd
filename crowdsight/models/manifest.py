"""The installed models as run-time code sees them: the manifest `crowdsight models install` wrote.

Run-time code (perception, privacy, pipeline) finds a model's files and settings here, by the
model's name, and never imports the install-time converters (which pull in onnx and
protobuf). Layout of the cache (``models_dir()``)::

    manifest.json            one entry per installed model (files + sha256, tensors, extra)
    <name>/<files...>        converted files (ONNX, TFLite, anchors)

Example:
    >>> ssd = installed_model("people-ssdlite")              # doctest: +SKIP
    >>> ssd.file(".onnx").name, ssd.extra["input_hw"]        # doctest: +SKIP
    ('ssdlite_people.onnx', [300, 300])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from crowdsight.core.errors import ModelError

MANIFEST = "manifest.json"

#: Per-channel mean and std (RGB, 0–1 units) of the input normalisations manifests name in
#: ``extra["normalisation"]``; converters bake them into graphs, run-time code pads with them.
NORMALISATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def models_dir() -> Path:
    """Cache folder for converted models (``$CROWDSIGHT_MODELS`` overrides)."""
    env = os.environ.get("CROWDSIGHT_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("crowdsight")) / "models"


def read_manifest(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's entries by model name ({} when nothing is installed)."""
    path = (root or models_dir()) / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"model manifest {path} is corrupt ({exc}); delete it and run "
            "`crowdsight models install`"
        ) from exc
    return {m["name"]: m for m in data.get("models", [])}


def model_path(name: str, filename: str | None = None) -> Path:
    """Path of an installed model's folder (or one of its files).

    Raises:
        ModelError: the model is not installed.
    """
    root = models_dir()
    entry = read_manifest(root).get(name)
    if entry is None:
        raise ModelError(
            f"model {name!r} is not installed in {root}; run `crowdsight models install`"
        )
    folder = root / name
    if filename is None:
        return folder
    path = folder / filename
    if not path.exists():
        raise ModelError(
            f"model file {path} is missing; run `crowdsight models install --force {name}`"
        )
    return path


@dataclass(frozen=True)
class InstalledModel:
    """One manifest entry: where the model's files are and the settings read off its source.

    Attributes:
        name: Model name (``csrnet``, ``people-ssdlite``, ...).
        folder: Folder holding its files.
        files: File names the manifest lists, in install order.
        extra: Settings the converter recorded (input size, anchors options, ...).
    """

    name: str
    folder: Path
    files: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def file(self, suffix: str, contains: str = "") -> Path:
        """The one listed file ending in ``suffix`` (and containing ``contains``).

        Raises:
            ModelError: no such file, several, or it is missing on disk.
        """
        hits = [f for f in self.files if f.endswith(suffix) and contains in f]
        if len(hits) != 1:
            what = f"*{contains}*{suffix}" if contains else f"*{suffix}"
            raise ModelError(
                f"model {self.name!r} lists {len(hits)} files {what} in its manifest "
                f"(expected 1); run `crowdsight models install --force {self.name}`"
            )
        path = self.folder / hits[0]
        if not path.exists():
            raise ModelError(
                f"model file {path} is missing; run `crowdsight models install --force {self.name}`"
            )
        return path


def installed_model(name: str, root: Path | None = None) -> InstalledModel:
    """The installed model called ``name``.

    Raises:
        ModelError: it is not installed (the message says how to install it).
    """
    root = root or models_dir()
    entry = read_manifest(root).get(name)
    if entry is None:
        raise ModelError(
            f"model {name!r} is not installed in {root}; run `crowdsight models install`"
        )
    return InstalledModel(
        name=name,
        folder=root / name,
        files=tuple(entry.get("files", {})),
        extra=dict(entry.get("extra", {})),
    )
