"""Per-camera pipeline settings (a boundary object: loaded from CLI flags or config files).

The detector is a typed choice (`DetectorConfig`): a `BundledDetector` named by ``type``, or
an `OnnxDetector` (``type: onnx``) with the path of a YOLO-family export and its class names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from crowdsight.config.camera import (
    DENSITY_EVERY_S_DEFAULT,
    DETECT_EVERY_DEFAULT,
    DensityEverySeconds,
    DetectEvery,
)
from crowdsight.config.runtime import RuntimeConfig

#: An optional speed-up: "auto" (decided from the frame or the device), "on" or "off".
Mode = Literal["auto", "on", "off"]

#: Detectors shipped with crowdsight, by name ("a+b": both, their boxes merged).
BundledName = Literal["nanodet", "ssdlite", "nanodet+ssdlite"]


class BundledDetector(BaseModel):
    """A detector shipped with crowdsight (installed by `crowdsight models install`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: BundledName = Field(
        description="'nanodet' (people, vehicles, bags), 'ssdlite' (people only, faster) or "
        "'nanodet+ssdlite' (both, merged)."
    )

    @property
    def spec(self) -> str:
        """The `crowdsight.perception.detector.build_detector` spec."""
        return self.type

    @property
    def classes(self) -> Path | None:
        """Bundled detectors know their class names."""
        return None


class OnnxDetector(BaseModel):
    """A YOLO / YOLOX ONNX export you bring (class names: COCO unless ``classes`` is given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["onnx"] = Field("onnx", description="A detector you bring as an ONNX file.")
    path: Path = Field(description="The .onnx file (YOLOv5/v8/v11 or YOLOX export).")
    classes: Path | None = Field(
        None, description="Class-names file, one name per line (default: the COCO names)."
    )

    @property
    def spec(self) -> str:
        """The `crowdsight.perception.detector.build_detector` spec."""
        return str(self.path)


def _detector_shorthand(value: Any) -> Any:
    """``"nanodet"`` → ``{"type": "nanodet"}``; ``"x.onnx"`` → ``{"type": "onnx", "path": ...}``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower().endswith(".onnx"):
        return {"type": "onnx", "path": text}
    if text.lower() not in get_args(BundledName):
        names = ", ".join(get_args(BundledName))
        raise ValueError(f"unknown detector {text!r}: use {names} or the path of a .onnx file")
    return {"type": text.lower()}


#: The detector setting: a bundled detector by name, or an ONNX file you bring.
DetectorConfig = Annotated[
    BundledDetector | OnnxDetector,
    BeforeValidator(_detector_shorthand),
    Field(discriminator="type"),
]


class PipelineSettings(BaseModel):
    """What a camera pipeline runs and how often."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    density: bool = Field(True, description="Estimate crowd density (CSRNet) on a cadence.")
    density_every_s: DensityEverySeconds = DENSITY_EVERY_S_DEFAULT
    density_every_n: int | None = Field(
        None, ge=1, description="Frames between density estimates; overrides density_every_s."
    )
    density_scale: float | Literal["auto"] = Field(
        "auto",
        description="Input scale for the density model. 'auto': learned per camera from the "
        "detector's person boxes over the first seconds (or the scene's ground-plane "
        "calibration), re-estimated slowly; a number (e.g. 0.5) fixes it.",
    )
    density_async: bool = Field(
        False,
        description="Estimate density in a background thread (live cameras): the frame "
        "loop never waits for it and uses the latest finished map. Offline analysis keeps it "
        "off so results are deterministic.",
    )
    density_threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime threads for density (None: all cores). With "
        "density_async, leave a core for the detector.",
    )
    detect: bool = Field(
        True, description="Detect and track people (and other classes the detector knows)."
    )
    detector: DetectorConfig = Field(
        default_factory=lambda: BundledDetector(type="nanodet"),
        description="Which detector finds people and objects: a bundled one by name "
        "('nanodet', the default by measurement, see README 'Detectors'; 'ssdlite', people "
        "only, faster; 'nanodet+ssdlite', both merged) or {type: onnx, path, classes} for a "
        "YOLO/YOLOX ONNX file you bring. A bare name or a path ending in .onnx is accepted "
        "as a shorthand.",
    )
    detect_every: DetectEvery = DETECT_EVERY_DEFAULT
    detector_threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime threads for the detector (None: all cores). With several "
        "cameras on one machine, cores / cameras avoids oversubscription; on 2 cores, 1 "
        "leaves a core for decoding and tracking (higher bench ratio, lower fps).",
    )
    detect_ahead: Mode = Field(
        "auto",
        description="When a stream of frames is processed (analyze, bench), detect on the "
        "next frame in a helper thread while this one is tracked. 'auto': only when "
        "inference runs on a GPU, where the CPU would otherwise wait. On CPU inference it "
        "measured no gain (bench ratio 2 vCPUs: 0.81 on vs 0.87 off; 16 cores: 0.84-0.85 "
        "on vs 0.82-0.87 off): the cores it would overlap with are the detector's own.",
    )
    density_people: bool = Field(
        False,
        description="On frames with a fresh density map, add a person box for every density "
        "peak (a head) that no detected person box covers, sized by the perspective of the "
        "boxes found, so packed crowds the detector cannot separate are tracked and counted "
        "in zones too (boxes marked origin=density).",
    )
    confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Minimum detection confidence (None: the detector's own default, 0.35 "
        "for nanodet, 0.4 for ssdlite, 0.25 for YOLO files).",
    )
    slicing: Mode = Field(
        "auto",
        description="Sliced inference (overlapping tiles + the whole frame, merged) so small, "
        "distant people are found in large frames. 'auto' slices frames of 1 MP or more "
        "(1080p and up; person AP50 on MOT17 1080p: 0.14 whole-frame, 0.48 sliced, for "
        "about 10x the detector time: 200 vs 19 ms on 2 CPU cores); 'on' slices every "
        "frame; 'off' never.",
    )
    describe: bool = Field(
        True,
        description="Describe tracked people/vehicles in plain, "
        "non-biometric words (clothing colours, carried bags, vehicle type).",
    )
    describe_every_s: float = Field(
        2.0,
        ge=0,
        description="Seconds between description updates (0: every detected frame). Each "
        "update adds one vote per tracked person. The learned clothing heads cost two VGG "
        "passes per person crop (`crowdsight bench` on Mall, 2 vCPUs: pipeline/detector ratio "
        "0.69 at 0.4 s); clothing does not change, so a vote every 2 s is enough for a "
        "walking person's track, and the cost does not grow with the camera's fps.",
    )
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig,
        description="Model backend for the detector, density and description models (ONNX "
        "Runtime by default). Validation reads no environment: the edges (CLI commands, "
        "`crowdsight.config.serve.load_serve_config`) apply CROWDSIGHT_PROVIDERS / "
        "CROWDSIGHT_ORT_SPIN with `with_runtime_env`. The per-model thread counts above "
        "override its threads.",
    )
    redact: bool = Field(
        True,
        description="Blur heads/faces in every exported image. Turning "
        "it off is recorded in the output's metadata.",
    )


#: The default detector, as the shorthand CLI options take.
DEFAULT_DETECTOR: str = PipelineSettings().detector.spec


def with_runtime_env(
    settings: PipelineSettings, environ: Mapping[str, str] | None = None
) -> PipelineSettings:
    """``settings`` with ``CROWDSIGHT_PROVIDERS`` / ``CROWDSIGHT_ORT_SPIN`` applied to the runtime.

    Called once where settings enter (CLI commands, the serve config loader); a runtime the
    user configured explicitly (``runtime`` set in the file) is kept as given.

    Example:
        >>> env = {"CROWDSIGHT_PROVIDERS": "CPUExecutionProvider"}
        >>> with_runtime_env(PipelineSettings(), env).runtime.providers
        ('CPUExecutionProvider',)
    """
    if "runtime" in settings.model_fields_set:
        return settings
    given = settings.runtime.model_dump(exclude_defaults=True)
    return settings.model_copy(update={"runtime": RuntimeConfig.from_env(environ, **given)})


def live_defaults() -> PipelineSettings:
    """Pipeline settings `serve` gives every camera (and `bench` measures by default).

    Density runs in a background thread with one ONNX Runtime thread, so it never holds
    more than one core and detection keeps the rest. On a 16-core Xeon this kept
    `crowdsight bench` at ratio 0.81-0.86 with a density map every second, against
    0.57-0.59 when density may use every core.
    """
    return PipelineSettings(density_async=True, density_threads=1)
