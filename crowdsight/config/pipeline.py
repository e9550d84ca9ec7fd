"""Per-camera pipeline settings (a boundary object: loaded from CLI flags or config files)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdsight.models.runtime import RuntimeConfig


class PipelineSettings(BaseModel):
    """What a camera pipeline runs and how often."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    density: bool = Field(True, description="Estimate crowd density (CSRNet) on a cadence.")
    density_every_s: float | None = Field(
        1.0,
        ge=0,
        description="Seconds of video between density estimates (0: every frame). "
        "Density is the costliest stage; counts change slowly, so 0.5–2 s keeps long videos fast.",
    )
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
    detector: str = Field(
        "nanodet",
        description="'nanodet' (bundled: people, vehicles, bags; chosen as the default by "
        "measurement, see README 'Detectors'), 'ssdlite' (bundled, people only, faster), "
        "several joined by '+' (merged), or the path to a YOLO/YOLOX ONNX file you bring.",
    )
    detector_classes: str | None = Field(
        None,
        description="Class-names file for a detector "
        "you bring (one name per line; COCO by default).",
    )
    detect_every: int = Field(
        1,
        ge=1,
        description="Run the detector on every k-th frame; tracks coast on the frames between.",
    )
    detector_threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime threads for the detector (None: all cores). With several "
        "cameras on one machine, cores / cameras avoids oversubscription; on 2 cores, 1 "
        "leaves a core for decoding and tracking (higher bench ratio, lower fps).",
    )
    detect_ahead: Literal["auto", "on", "off"] = Field(
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
    slicing: Literal["auto", "on", "off"] = Field(
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
        default_factory=RuntimeConfig.from_env,
        description="Model backend for the detector and density models (ONNX Runtime by "
        "default). Built once here, where settings enter, from CROWDSIGHT_PROVIDERS / "
        "CROWDSIGHT_ORT_SPIN; the per-model thread counts above override its threads.",
    )
    redact: bool = Field(
        True,
        description="Blur heads/faces in every exported image. Turning "
        "it off is recorded in the output's metadata.",
    )


#: The default detector spec, for CLI options that mirror the setting.
DEFAULT_DETECTOR: str = PipelineSettings.model_fields["detector"].default


def live_defaults() -> PipelineSettings:
    """Pipeline settings `serve` gives every camera (and `bench` measures by default).

    Density runs in a background thread with one ONNX Runtime thread, so it never holds
    more than one core and detection keeps the rest. On a 16-core Xeon this kept
    `crowdsight bench` at ratio 0.81-0.86 with a density map every second, against
    0.57-0.59 when density may use every core.
    """
    return PipelineSettings(density_async=True, density_threads=1)
