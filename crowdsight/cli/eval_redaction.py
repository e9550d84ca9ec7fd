"""`crowdsight eval redaction`: share of labelled heads hidden, and share of the frame hidden."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.progress import track

from crowdsight.cli.apps import eval_app
from crowdsight.core.errors import InputError
from crowdsight.core.types import Frame, ImageRGB
from crowdsight.privacy.redaction import BoolMask, RedactMode, Redactor

if TYPE_CHECKING:
    from crowdsight.perception.base import Detector
    from crowdsight.perception.density import DensityEstimator

console = Console(stderr=True)


@dataclass
class RedactionScore:
    """Running totals: heads inside the mask, heads labelled, and hidden area per frame."""

    hits: int = 0
    heads: int = 0
    area: list[float] = field(default_factory=list)

    def add(self, mask: BoolMask, points_xy: npt.NDArray[np.float64]) -> None:
        """Score one frame's mask against its head points (x, y in pixels)."""
        h, w = mask.shape
        if len(points_xy):
            x = np.clip(np.round(points_xy[:, 0]).astype(int), 0, w - 1)
            y = np.clip(np.round(points_xy[:, 1]).astype(int), 0, h - 1)
            self.hits += int(mask[y, x].sum())
            self.heads += len(points_xy)
        self.area.append(float(mask.mean()))

    @property
    def recall(self) -> float:
        """Labelled heads inside hidden pixels / all labelled heads (pooled over frames)."""
        return self.hits / self.heads if self.heads else float("nan")

    @property
    def area_fraction(self) -> float:
        """Mean share of each frame's pixels that was hidden."""
        return float(np.mean(self.area)) if self.area else float("nan")


def _save_example(path: Path, image: ImageRGB, redacted: ImageRGB, mask: BoolMask) -> None:
    """Side-by-side picture: original with the mask tinted, and the redacted frame."""
    import cv2

    tint = image.copy()
    tint[mask] = (0.5 * tint[mask] + np.array([0, 90, 0])).astype(np.uint8)
    both = np.hstack([tint, redacted])
    cv2.imwrite(str(path), cv2.cvtColor(both, cv2.COLOR_RGB2BGR))


@eval_app.command("redaction")
def eval_redaction(
    frames: Annotated[Path, typer.Option(help="Folder of Mall frames (seq_NNNNNN.jpg).")],
    gt: Annotated[Path, typer.Option(help="Mall's mall_gt.mat (per-frame head points).")],
    rng: Annotated[
        str | None, typer.Option("--range", help="1-based inclusive frames, e.g. 801-2000.")
    ] = None,
    every: Annotated[
        int, typer.Option(help="Score every Nth frame (motion still sees every frame).")
    ] = 1,
    mode: Annotated[str, typer.Option(help="blur | pixelate | mask")] = "blur",
    density: Annotated[bool, typer.Option(help="Use CSRNet density.")] = True,
    detector: Annotated[bool, typer.Option(help="Use the people detector's heads.")] = True,
    detector_name: Annotated[
        str, typer.Option("--detector-name", help="Bundled detector: ssdlite or nanodet.")
    ] = "ssdlite",
    slicing: Annotated[
        bool, typer.Option(help="Tile the detector (finds small people; ~10x slower).")
    ] = False,
    faces: Annotated[bool, typer.Option(help="Use BlazeFace faces.")] = True,
    motion: Annotated[bool, typer.Option(help="Use moving-blob heads.")] = True,
    threshold: Annotated[
        float, typer.Option(min=0, help="Density threshold, people per pixel.")
    ] = 5e-5,
    save_example: Annotated[
        Path | None, typer.Option(help="Write one side-by-side redacted picture here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON line last.")] = False,
) -> None:
    """Score head/face redaction on Mall: recall of GT head points, share of frame hidden.

    Every frame of the range goes through the redactor in order (the motion cue needs the
    sequence); density and detection run only on the scored frames.
    """
    from crowdsight.datasets.counting import iter_mall_items
    from crowdsight.sources.files import read_image

    if every < 1:
        raise InputError("--every must be ≥ 1")
    if mode not in ("blur", "pixelate", "mask"):
        raise InputError(f"--mode must be blur, pixelate or mask, not {mode!r}")
    items = list(iter_mall_items(frames, gt, rng))
    if not items:
        raise InputError(f"no frames in {frames} for range {rng}")
    red = Redactor(
        cast(RedactMode, mode),
        faces="auto" if faces else None,
        motion=motion,
        density_threshold=threshold,
    )
    est = _density_estimator() if density else None
    det = _people_detector(slicing, detector_name) if detector else None
    score = RedactionScore()
    example_at = len(items) // 2
    for k, item in enumerate(track(items, description="redaction", console=console)):
        image = read_image(item.image)
        if k % every:
            if red.motion is not None:
                red.motion.update(image)
            continue
        dets = det.detect(Frame("eval", k, 0.0, image)) if det is not None else None
        dm = est.estimate(image) if est is not None else None
        out, mask = red.redact(image, dets, dm)
        score.add(mask, item.points)
        if save_example is not None and k >= example_at:
            _save_example(save_example, image, out, mask)
            save_example = None
    console.print(
        f"{len(score.area)} frames, {score.heads} heads: recall {score.recall:.3f}, "
        f"area fraction {score.area_fraction:.3f}"
    )
    result = {
        "recall": round(score.recall, 4),
        "area_fraction": round(score.area_fraction, 4),
        "frames": len(score.area),
        "heads": score.heads,
        "cues": {
            "density": density,
            "detector": det is not None,
            "faces": red.faces is not None,
            "motion": motion,
            "density_threshold": threshold,
        },
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(f"recall {score.recall:.3f} area {score.area_fraction:.3f}")


def _density_estimator() -> DensityEstimator:
    from crowdsight.config.runtime import RuntimeConfig
    from crowdsight.perception.density import DensityEstimator

    return DensityEstimator(runtime=RuntimeConfig.from_env())  # the edge: env read here


def _people_detector(slicing: bool, name: str = "ssdlite") -> Detector | None:
    """A bundled detector (people only), sliced for small people; None if not installed."""
    from crowdsight.core.errors import ModelError

    try:
        from crowdsight.perception.detector import build_detector
        from crowdsight.perception.slicing import SliceSettings

        tiles = SliceSettings(slice_wh=(320, 240), min_frame_px=0) if slicing else None
        from crowdsight.config.runtime import RuntimeConfig

        kwargs: dict[str, Any] = {
            "conf_threshold": 0.3,
            "slicing": tiles,
            "runtime": RuntimeConfig.from_env(),  # the edge: env read here
        }
        if name == "nanodet":
            kwargs["classes"] = ("person",)
        return build_detector(name, **kwargs)
    except (ImportError, ModelError) as exc:
        console.print(f"people detector unavailable ({exc}); scoring without it")
        return None
