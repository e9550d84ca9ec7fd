"""Drawing zones and lines (separate from accumulation: reads figures, changes nothing)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from crowdsight.config.scene import SceneConfig, ZoneKind
from crowdsight.core.geometry import scale_polygon, side_of_line
from crowdsight.core.metrics import LineCounts, SceneMetrics
from crowdsight.core.types import ImageRGB

ZONE_RGB = (60, 180, 255)
RESTRICTED_RGB = (255, 60, 60)
LINE_RGB = (255, 220, 0)


def _label(img: ImageRGB, text: str, org: tuple[int, int], color: tuple[int, int, int]) -> None:
    # A dark box behind thin text: an outline drawn with a thicker stroke would not line
    # up, because Hershey glyph advances grow with thickness.
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - th - 3), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def draw_scene(
    image_rgb: ImageRGB, scene: SceneConfig, live: SceneMetrics, alpha: float = 0.25
) -> ImageRGB:
    """Zones (translucent fill, outline, name and occupancy) and lines (with in-arrow and counts).

    Args:
        image_rgb: H×W×3 RGB frame; not modified.
        scene: Zones and lines, at ``scene.resolution_wh`` (rescaled to the image).
        live: This frame's figures (zone occupancy and density, line counts).
        alpha: Zone fill opacity.

    Returns:
        A new image.
    """
    h, w = image_rgb.shape[:2]
    src = scene.resolution_wh or (w, h)
    out = image_rgb.copy()
    fill = image_rgb.copy()
    for z in scene.zones:
        poly = np.round(scale_polygon(z.polygon, src, (w, h))).astype(np.int32)
        color = RESTRICTED_RGB if z.kind is ZoneKind.RESTRICTED else ZONE_RGB
        cv2.fillPoly(fill, [poly], color)
    out = np.asarray(cv2.addWeighted(fill, alpha, out, 1 - alpha, 0), dtype=np.uint8)
    for z in scene.zones:
        poly = np.round(scale_polygon(z.polygon, src, (w, h))).astype(np.int32)
        color = RESTRICTED_RGB if z.kind is ZoneKind.RESTRICTED else ZONE_RGB
        cv2.polylines(out, [poly], True, color, 2, cv2.LINE_AA)
        text = z.name or z.id
        zm = live.zones.get(z.id)
        if zm is not None:
            text += f": {zm.occupancy:.0f}"
            if zm.density_per_m2 is not None:
                text += f" ({zm.density_per_m2:.1f}/m2)"
        x, y = poly.min(axis=0)
        _label(out, text, (int(x) + 4, int(y) + 16), color)
    for ln in scene.lines:
        a, b = scale_polygon(ln.points, src, (w, h))
        cv2.line(
            out,
            tuple(np.round(a).astype(int)),
            tuple(np.round(b).astype(int)),
            LINE_RGB,
            2,
            cv2.LINE_AA,
        )
        mid = (a + b) / 2
        d = b - a
        normal = np.array([-d[1], d[0]]) / np.linalg.norm(d)  # left of a → b on screen
        if np.sign(side_of_line(mid + normal, a, b)[0]) != ln.in_side:
            normal = -normal
        tip = mid + normal * 25
        cv2.arrowedLine(
            out,
            tuple(np.round(mid).astype(int)),
            tuple(np.round(tip).astype(int)),
            LINE_RGB,
            2,
            cv2.LINE_AA,
            tipLength=0.35,
        )
        counts = live.lines.get(ln.id, LineCounts())
        _label(
            out,
            f"{ln.name or ln.id} in {counts.count_in:.0f} out {counts.count_out:.0f}",
            (int(tip[0]) + 4, int(tip[1])),
            LINE_RGB,
        )
    return out


def draw_occupancy_heatmap(
    image_rgb: ImageRGB, per_cell: npt.NDArray[np.float64], alpha: float = 0.5
) -> ImageRGB:
    """Colour an accumulated occupancy grid (e.g. `OccupancyHeatmap.mean_per_frame`) over a frame.

    Cells are scaled to the busiest one (turbo colour map) and empty cells stay clear, so
    the picture shows where people stand most, not how many there were.

    Args:
        image_rgb: H×W×3 RGB frame (a typical frame of the camera); not modified.
        per_cell: gh×gw accumulation, one value per grid cell.
        alpha: Opacity at the busiest cell.

    Returns:
        A new image.
    """
    h, w = image_rgb.shape[:2]
    peak = float(per_cell.max()) if per_cell.size else 0.0
    if peak <= 0:
        return image_rgb.copy()
    norm = cv2.resize((per_cell / peak).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    a = (alpha * np.clip(norm * 3, 0, 1))[..., None]  # fade in: low occupancy stays light
    out = image_rgb.astype(np.float32) * (1 - a) + colour * a
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)
