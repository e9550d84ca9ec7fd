"""Per-camera settings shared by the pipeline, the camera record, the API, the CLIs and the form.

Each setting is declared here once, as an ``Annotated`` type that carries its bounds and its
description, with its default beside it. `crowdsight.config.pipeline.PipelineSettings`, the
stored `crowdsight.store.records.Camera` (hence the API's camera schema and the dashboard
form, which reads the bounds from that schema), the database table's CHECK constraints and
the CLI options
(`crowdsight.cli.options`) all use these, so a bound cannot drift between them.

Example:
    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(DetectEvery).validate_python(3)
    3
    >>> TypeAdapter(DensityEverySeconds).validate_python(-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ...
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Bounds chosen a priori, not on data: 1 = every frame; beyond 1000 frames (40 s at 25 fps)
# a track cannot coast between detections. 0 s = a density map on every frame; one map an
# hour is a snapshot, not a series. The database's CHECK constraints use the same numbers.
DETECT_EVERY_MIN = 1
DETECT_EVERY_MAX = 1000
DENSITY_EVERY_S_MIN = 0.0
DENSITY_EVERY_S_MAX = 3600.0

DetectEvery = Annotated[
    int,
    Field(
        ge=DETECT_EVERY_MIN,
        le=DETECT_EVERY_MAX,
        description="Run the detector on every N-th frame; tracks coast on the frames between. "
        "Higher saves CPU; tracks get coarser.",
    ),
]
DETECT_EVERY_DEFAULT = 1

DensityEverySeconds = Annotated[
    float,
    Field(
        ge=DENSITY_EVERY_S_MIN,
        le=DENSITY_EVERY_S_MAX,
        allow_inf_nan=False,
        description="Seconds of video between crowd-density estimates (0: every frame). "
        "Density is the costliest stage; counts change slowly, so 0.5–2 s keeps long videos "
        "and many cameras fast.",
    ),
]
DENSITY_EVERY_S_DEFAULT = 1.0
