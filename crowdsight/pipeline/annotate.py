"""Drawing: density heatmap with legend, boxes with class and track id, trails, scene overlays.

Drawing is separate from accumulation: the annotators below only read a `FrameResult`. Heads
and faces are redacted *before* overlays are drawn (so labels stay legible), and every image
that leaves the process goes through `Annotator.annotate(..., redact=True)` unless the user
explicitly turned redaction off.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import supervision as sv

from crowdsight.core.events import Anomaly
from crowdsight.core.types import CLASS_NAME, DensityMap, ImageRGB
from crowdsight.pipeline.camera import FrameResult

#: Density is shown as people per 100×100 image pixels (10,000 px²) without calibration.
PX_AREA = 10_000.0
#: Frames narrower than this (e.g. 360×240 CCTV) label people with their track number only.
SHORT_LABELS_BELOW_PX = 640


def _text(
    img: ImageRGB,
    text: str,
    org: tuple[int, int],
    scale: float = 0.5,
    color: tuple[int, int, int] = (255, 255, 255),
) -> None:
    # A dark box behind thin text reads on any background (a thick dark outline drawn
    # under the text lands offset from it with some OpenCV builds).
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _clock(ts_s: float) -> str:
    """Seconds into a file, or the UTC time of day for live (wall-clock) timestamps."""
    if ts_s >= 1e9:  # after 2001-09-09: a Unix time from a live source
        return time.strftime("%H:%M:%S UTC", time.gmtime(ts_s))
    return f"t={ts_s:.1f}s"


class HeatmapOverlay:
    """Colour density patches over the frame, with a legend bar.

    Args:
        vmax: Density (people per 100×100 px) drawn at full colour; None adapts to the
            video's running peak (decaying slowly) so the scale does not flicker.
        min_fraction: Cells below this fraction of vmax stay transparent, so sparse areas
            keep their detail.
        alpha: Opacity at full density.
    """

    def __init__(
        self, vmax: float | None = None, min_fraction: float = 0.12, alpha: float = 0.6
    ) -> None:
        self.fixed_vmax = vmax
        self.min_fraction = min_fraction
        self.alpha = alpha
        self.reset()

    def reset(self) -> None:
        """Forget the adaptive scale."""
        self._vmax = self.fixed_vmax or 0.0

    def _scale(self, per_px_area: np.ndarray) -> float:
        if self.fixed_vmax is not None:
            return self.fixed_vmax
        peak = float(np.percentile(per_px_area, 99.5)) if per_px_area.size else 0.0
        self._vmax = max(peak, 0.98 * self._vmax, 0.5)
        return self._vmax

    def annotate(self, image: ImageRGB, density: DensityMap) -> ImageRGB:
        """Blend the heatmap into a copy of ``image`` and draw the legend."""
        out = image.copy()
        h, w = out.shape[:2]
        per_px = density.to_image_resolution() * PX_AREA
        vmax = self._scale(per_px)
        norm = np.clip(per_px / vmax, 0.0, 1.0)
        colour = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
        # Opacity rises from 0 at the threshold (no tint over sparse floor) to alpha.
        ramp = np.clip((norm - self.min_fraction) / (1.0 - self.min_fraction), 0.0, 1.0)
        a = self.alpha * np.sqrt(ramp)
        a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), 2.0)[..., None]
        out = np.asarray(out * (1 - a) + colour * a, dtype=np.uint8)
        self._legend(out, vmax, w, h)
        return out

    @staticmethod
    def _legend(img: ImageRGB, vmax: float, w: int, h: int) -> None:
        bar_h, bar_w = max(60, h // 3), 14
        x0, y0 = w - bar_w - 58, 30
        if x0 < 0 or y0 + bar_h + 32 > h:
            return  # a frame too small for the legend keeps its heat map only
        grad = np.linspace(255, 0, bar_h).astype(np.uint8)[:, None].repeat(bar_w, 1)
        bar = cv2.cvtColor(cv2.applyColorMap(grad, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        img[y0 : y0 + bar_h, x0 : x0 + bar_w] = bar
        cv2.rectangle(img, (x0, y0), (x0 + bar_w, y0 + bar_h), (255, 255, 255), 1)
        _text(img, f"{vmax:.1f}", (x0 + bar_w + 4, y0 + 10), 0.4)
        _text(img, "0", (x0 + bar_w + 4, y0 + bar_h), 0.4)
        _text(img, "people /", (x0 - 10, y0 + bar_h + 16), 0.38)
        _text(img, "100x100px", (x0 - 10, y0 + bar_h + 30), 0.38)


class Annotator:
    """Draws a `FrameResult`: heatmap, boxes, trails, scene overlays and the counts.

    Args:
        heatmap: Draw the density heatmap when a density map is available.
        trails: Draw short trails behind tracked objects.
        redactor: Object with ``redact(image, detections, density) -> (image, mask)``;
            built lazily (the default head/face redactor) when needed.
        scene_drawer: Callable ``(image, live: SceneMetrics) -> image`` drawing zones and lines.
    """

    def __init__(
        self,
        *,
        heatmap: bool = True,
        trails: bool = True,
        redactor: Any = None,
        scene_drawer: Any = None,
    ) -> None:
        self.heatmap = HeatmapOverlay() if heatmap else None
        self.boxes = sv.BoxAnnotator(thickness=2)
        self.labels = sv.LabelAnnotator(
            text_scale=0.4, text_padding=3, text_position=sv.Position.TOP_LEFT
        )
        self.trails = sv.TraceAnnotator(trace_length=30, thickness=2) if trails else None
        self.redactor = redactor
        self.scene_drawer = scene_drawer

    def reset(self) -> None:
        """Forget heatmap scale and trails."""
        if self.heatmap is not None:
            self.heatmap.reset()
        if self.trails is not None:
            self.trails = sv.TraceAnnotator(trace_length=30, thickness=2)

    def _redactor(self) -> Any:
        if self.redactor is None:
            from crowdsight.privacy import Redactor

            self.redactor = Redactor()
        return self.redactor

    def annotate(self, result: FrameResult, *, redact: bool = True) -> ImageRGB:
        """The annotated (and, by default, redacted) image of one result."""
        img = result.frame.image
        dets = result.detections
        if redact:
            img, _ = self._redactor().redact(img, result.redaction_boxes(), result.density)
        else:
            img = img.copy()
        shown = result.fused if result.fused is not None else result.density
        if self.heatmap is not None and shown is not None:
            img = self.heatmap.annotate(img, shown)
        if self.scene_drawer is not None:
            img = self.scene_drawer(img, result.metrics)
        if len(dets):
            img = self.boxes.annotate(img, dets)
            if self.trails is not None and dets.tracker_id is not None:
                img = self.trails.annotate(img, dets)
            # On a small frame "person #12" over every walker hides the scene: people get
            # their track number only (their box colour says "person"), other classes keep
            # their name.
            short = img.shape[1] < SHORT_LABELS_BELOW_PX
            img = self.labels.annotate(img, dets, labels=_labels(dets, short_people=short))
        _anomaly_boxes(img, result)
        self._counts(img, result)
        return img

    @staticmethod
    def _counts(img: ImageRGB, result: FrameResult) -> None:
        parts = []
        m = result.metrics.counts
        if "count_density" in m:
            where = (
                " in zones"
                if result.density is not None and result.density.roi_mask is not None
                else ""
            )
            count = m.get("count_fused", m["count_density"])
            parts.append(f"crowd count{where} ~ {count:.0f}")
        if "count_tracked" in m:
            parts.append(f"tracked {m['count_tracked']:.0f}")
        parts.append(_clock(result.frame.ts_s))
        cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0), -1)
        _text(img, "   ".join(parts), (6, 16), 0.5)


def _anomaly_boxes(img: ImageRGB, result: FrameResult) -> None:
    """Outline (red) the abnormal object of each anomaly opened on this frame, with why."""
    for ev in result.events:
        if not isinstance(ev, Anomaly) or ev.xyxy is None or not ev.is_open:
            continue
        x0, y0, x1, y1 = (round(v) for v in ev.xyxy)
        cv2.rectangle(img, (x0, y0), (x1, y1), (255, 40, 40), 2)
        text = ev.reason if len(ev.reason) <= 60 else ev.reason[:57] + "..."
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        x = min(max(x0, 2), max(img.shape[1] - tw - 4, 2))  # inside the frame when it fits
        y = min(max(y0 - 6, 36), img.shape[0] - 4)
        _text(img, text, (x, y), 0.4, (255, 200, 200))


def _labels(dets: sv.Detections, *, short_people: bool = False) -> list[str]:
    """ "class #id" per box; with ``short_people``, "#id" for tracked people."""
    names = dets.data.get(CLASS_NAME)
    ids = dets.tracker_id
    class_ids = dets.class_id if dets.class_id is not None else np.zeros(len(dets), int)
    out = []
    for i in range(len(dets)):
        name = str(names[i]) if names is not None else str(int(class_ids[i]))
        if ids is None:
            out.append(name)
        elif short_people and name == "person":
            out.append(f"#{int(ids[i])}")
        else:
            out.append(f"{name} #{int(ids[i])}")
    return out
