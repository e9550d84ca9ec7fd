"""Zones at the frame's resolution, and debounced zone membership of tracks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np

from crowdsight.analytics.hysteresis import Hysteresis
from crowdsight.config.scene import SceneConfig, Zone
from crowdsight.core.geometry import (
    F64,
    BoolArray,
    Homography,
    points_in_polygon,
    polygon_area,
    polygon_mask,
    scale_polygon,
)


@dataclass
class ZoneGeometry:
    """One zone's polygon, mask and area at a given frame resolution."""

    zone: Zone
    polygon_px: F64
    resolution_wh: tuple[int, int]
    area_px: float
    area_m2: float | None
    _mask: BoolArray | None = field(default=None, repr=False)

    @property
    def mask(self) -> BoolArray:
        """H×W boolean mask (built on first use, then cached)."""
        if self._mask is None:
            self._mask = polygon_mask(self.polygon_px, self.resolution_wh)
        return self._mask


class SceneGeometry:
    """The scene's zones and lines scaled to the frames actually received.

    Args:
        scene: The scene configuration.
        resolution_wh: Frame resolution.
        homography: Image→ground mapping at *frame* resolution (None without calibration).
    """

    def __init__(
        self, scene: SceneConfig, resolution_wh: tuple[int, int], homography: Homography | None
    ) -> None:
        self.resolution_wh = resolution_wh
        src = scene.resolution_wh or resolution_wh
        self.zones: list[ZoneGeometry] = []
        for z in scene.zones:
            poly = scale_polygon(z.polygon, src, resolution_wh)
            area_m2 = homography.area_m2(poly) if homography is not None else None
            self.zones.append(ZoneGeometry(z, poly, resolution_wh, polygon_area(poly), area_m2))
        self.lines = [(ln, scale_polygon(ln.points, src, resolution_wh)) for ln in scene.lines]

    @property
    def zone_ids(self) -> list[str]:
        """Zone ids in configuration order."""
        return [g.zone.id for g in self.zones]

    def inside(self, anchors: F64) -> BoolArray:
        """N×Z membership of anchors in each zone."""
        if not self.zones:
            return np.zeros((len(anchors), 0), dtype=bool)
        cols = [
            points_in_polygon(anchors, g.polygon_px) if len(anchors) else np.zeros(0, dtype=bool)
            for g in self.zones
        ]
        return np.stack(cols, axis=1)


def scaled_homography(scene: SceneConfig, resolution_wh: tuple[int, int]) -> Homography | None:
    """The calibration's homography for frames at ``resolution_wh`` (None if uncalibrated)."""
    if scene.calibration is None:
        return None
    src = scene.resolution_wh or resolution_wh
    image_px = scale_polygon(scene.calibration.image_px, src, resolution_wh)
    return Homography.fit(image_px, scene.calibration.ground_m)


@dataclass(frozen=True, slots=True)
class Membership:
    """A debounced zone entry or exit of one track."""

    kind: str  # "enter" or "exit"
    track_id: int
    zone_id: str
    ts_s: float
    dwell_s: float = 0.0


class ZoneMembership:
    """Which tracks are in which zone, debounced so border jitter does not flap.

    Args:
        enter_s: A track must be inside this long to have entered.
        exit_s: ... and outside this long to have left.
    """

    def __init__(self, enter_s: float = 0.2, exit_s: float = 0.5) -> None:
        self._hyst = Hysteresis(enter=1.0, exit=0.5, min_duration_s=enter_s, release_s=exit_s)
        self._entered: dict[tuple[int, str], float] = {}

    def reset(self) -> None:
        """Forget every track."""
        self._hyst.reset()
        self._entered.clear()

    def update(
        self, ts_s: float, ids: list[int], zone_ids: list[str], inside: BoolArray
    ) -> list[Membership]:
        """Feed this frame's membership matrix; returns entries and exits."""
        out: list[Membership] = []
        for i, tid in enumerate(ids):
            for j, zid in enumerate(zone_ids):
                tr = self._hyst.update((tid, zid), 1.0 if inside[i, j] else 0.0, ts_s)
                if tr is not None:
                    out.append(self._apply(tr.kind, tid, zid, tr.ts_s))
        return out

    def drop(self, track_id: int, ts_s: float) -> list[Membership]:
        """A track was lost at ``ts_s`` (its last sighting): exit it from every zone."""
        out = []
        for key in self._hyst.keys():  # noqa: SIM118 - a method, not a dict
            tid, zid = cast(tuple[int, str], key)
            if tid == track_id:
                tr = self._hyst.drop(key, ts_s)
                if tr is not None:
                    out.append(self._apply("exit", tid, zid, tr.ts_s))
        return out

    def _apply(self, kind: str, tid: int, zid: str, ts_s: float) -> Membership:
        if kind == "open":
            self._entered[(tid, zid)] = ts_s
            return Membership("enter", tid, zid, ts_s)
        start = self._entered.pop((tid, zid), ts_s)
        return Membership("exit", tid, zid, ts_s, dwell_s=ts_s - start)

    def dwell_now(self, track_id: int, zone_id: str, ts_s: float) -> float | None:
        """Seconds the track has been in the zone so far (None if not in it)."""
        start = self._entered.get((track_id, zone_id))
        return None if start is None else ts_s - start

    def members(self, zone_id: str) -> list[int]:
        """Track ids currently in the zone."""
        return [t for (t, z) in self._entered if z == zone_id]
