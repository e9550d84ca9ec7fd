"""`SceneAnalytics`: one camera's zones, lines, metrics and event rules, frame by frame.

The pipeline calls ``update(frame, detections, density, density_fresh)`` on every frame and
gets back the events raised or closed on it plus this frame's metrics; ``summary()``
describes the whole run per zone; ``draw`` paints zones and lines; ``reset()`` forgets
everything. Each rule is a small object with its own state (see `rules`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdsight.analytics.draw import draw_scene
from crowdsight.analytics.metrics import (
    DwellStats,
    FlowMatrix,
    LineCounter,
    OccupancyHeatmap,
    OccupancyStats,
    TimeSeries,
    level_of_service,
    los_index,
)
from crowdsight.analytics.rules import FrameContext, Rule, RunningRules, build_rules
from crowdsight.analytics.tracks import FrameTracks, Track, TrackHistory
from crowdsight.analytics.zones import Membership, SceneGeometry, ZoneMembership, scaled_homography
from crowdsight.config.scene import SceneConfig
from crowdsight.core.events import (
    Event,
    LineCrossed,
    Severity,
    ZoneEntered,
    ZoneExited,
)
from crowdsight.core.geometry import Homography
from crowdsight.core.metrics import FlowCount, LineCounts, SceneMetrics, ZoneMetrics
from crowdsight.core.types import DensityMap, Detections, Frame, ImageRGB

log = logging.getLogger(__name__)


@dataclass
class AnalyticsResult:
    """What analytics produced on one frame."""

    events: list[Event] = field(default_factory=list)
    metrics: SceneMetrics = field(default_factory=SceneMetrics)


class SceneAnalytics:
    """Zones, lines, metrics and rules of one camera.

    Args:
        scene: The camera's scene configuration.
        camera_id: Name used in events.

    Example:
        >>> from crowdsight.config.scene import parse_scene
        >>> sa = SceneAnalytics(parse_scene({}), "cam1")
        >>> sa.summary()["zones"]
        {}
    """

    def __init__(self, scene: SceneConfig, camera_id: str) -> None:
        self.scene = scene
        self.camera_id = camera_id
        self.history = TrackHistory(keep_s=5.0, max_age_s=1.0)
        self.membership = ZoneMembership()
        self.rules: list[Rule] = build_rules(scene)
        self.reset()

    def reset(self) -> None:
        """Forget all state: tracks, open events, counts and accumulations."""
        self._geometry: SceneGeometry | None = None
        self._homography: Homography | None = None
        self._roi: npt.NDArray[np.bool_] | None = None
        self._density_src: DensityMap | None = None
        self._density_counts: dict[str, float] = {}
        self._last_dets: Detections | None = None
        self.history.reset()
        self.membership.reset()
        for rule in self.rules:
            rule.reset()
        self.lines: dict[str, LineCounter] = {}
        self.occupancy = {z.id: OccupancyStats() for z in self.scene.zones}
        self.dwell = {z.id: DwellStats() for z in self.scene.zones}
        self.flows = FlowMatrix()
        self.heatmap = OccupancyHeatmap(self.scene.metrics.heatmap_cell_px)
        self.series = TimeSeries(self.scene.metrics.interval_s)

    # --- geometry at the frame's resolution -------------------------------------------

    #: Set when the frames' size differs from the scene's reference size (see
    #: `resolution_warning`); None while they match.
    scale_warning: str | None = None

    def _geometry_for(self, resolution_wh: tuple[int, int]) -> SceneGeometry:
        if self._geometry is None or self._geometry.resolution_wh != resolution_wh:
            self.scale_warning = resolution_warning(self.scene.resolution_wh, resolution_wh)
            if self.scale_warning is not None:
                log.warning("%s: %s", self.camera_id, self.scale_warning)
            self._homography = scaled_homography(self.scene, resolution_wh)
            self._geometry = SceneGeometry(self.scene, resolution_wh, self._homography)
            self.lines = {
                ln.id: LineCounter(pts[0], pts[1], ln.in_side) for ln, pts in self._geometry.lines
            }
        return self._geometry

    @property
    def rule_warnings(self) -> list[str]:
        """Standing reasons why a rule cannot judge this camera (e.g. tracks seen too rarely)."""
        return [w for r in self.rules if isinstance(r, RunningRules) and (w := r.warning)]

    def roi_mask(self, resolution_wh: tuple[int, int]) -> npt.NDArray[np.bool_] | None:
        """Union of zone masks (density is only needed there); None without zones."""
        geo = self._geometry_for(resolution_wh)
        if not geo.zones:
            return None
        if self._roi is None or self._roi.shape != (resolution_wh[1], resolution_wh[0]):
            mask = np.zeros((resolution_wh[1], resolution_wh[0]), dtype=bool)
            for z in geo.zones:
                mask |= z.mask
            self._roi = mask
        return self._roi

    def draw(self, image_rgb: ImageRGB, live: SceneMetrics) -> ImageRGB:
        """Zones and lines with live figures (see `draw_scene`)."""
        return draw_scene(image_rgb, self.scene, live)

    # --- per frame --------------------------------------------------------------------

    def update(
        self,
        frame: Frame,
        detections: Detections,
        density: DensityMap | None,
        density_fresh: bool,
    ) -> AnalyticsResult:
        """Update metrics and rules with one frame.

        Args:
            frame: The frame (time and index).
            detections: Tracked detections (``tracker_id`` set); untracked rows are ignored
                by track rules.
            density: Latest density map or None; used for zone occupancy when present.
            density_fresh: True when ``density`` was computed on this frame. Zone counts
                from a map are integrated once per map either way (a stale map is reused).
        """
        ts = frame.ts_s
        geo = self._geometry_for(frame.resolution_wh)
        tracks = FrameTracks.from_detections(detections)
        # The pipeline hands the same object again on frames where the detector did not run:
        # adding those stale positions with new times would make movers look like they stop,
        # and rules that judge tracks skip such frames (see `_apply_rules`).
        fresh = detections is not self._last_dets
        lost = self.history.update(ts, tracks) if fresh else []
        self._last_dets = detections
        inside = geo.inside(tracks.anchors)
        zones: dict[str, ZoneMetrics] = {}
        counts: dict[str, float] = {}

        memberships = self._update_membership(ts, geo, tracks, inside, lost)
        events = self._zone_events(frame, memberships, tracks)
        events += self._line_events(frame, tracks)
        ctx = FrameContext(
            camera_id=self.camera_id,
            frame_index=frame.index,
            ts_s=ts,
            tracks=tracks,
            history=self.history,
            zone_ids=geo.zone_ids,
            inside=inside,
            homography=self._homography,
            lost=lost,
            zone_counts=self._zone_counts(geo, tracks, inside, density, zones),
            zone_area_m2={g.zone.id: g.area_m2 for g in geo.zones},
            zone_area_px={g.zone.id: g.area_px for g in geo.zones},
        )
        events += self._apply_rules(ctx, geo, memberships, fresh)
        # The run's time series holds the per-frame figures (not the running totals below).
        self.series.add(ts, SceneMetrics(counts=counts, zones=zones).to_rows())

        lines = {
            lid: LineCounts(count_in=float(c.count_in), count_out=float(c.count_out))
            for lid, c in self.lines.items()
        }
        # Zone-to-zone transitions so far, as counters like the line counts: the store sums
        # their increases, so flows exist without storing a zone_entered event per track.
        flows = [
            FlowCount(from_zone=src, to_zone=dst, count=float(n))
            for (src, dst), n in self.flows.counts.items()
        ]
        self.heatmap.add(tracks.anchors, frame.resolution_wh)
        metrics = SceneMetrics(counts=counts, zones=zones, lines=lines, flows=flows)
        return AnalyticsResult(events, metrics)

    def _update_membership(
        self,
        ts: float,
        geo: SceneGeometry,
        tracks: FrameTracks,
        inside: npt.NDArray[np.bool_],
        lost: list[Track],
    ) -> list[Membership]:
        """Debounced zone entries/exits; lost tracks leave every zone and are forgotten."""
        memberships = self.membership.update(ts, tracks.ids.tolist(), geo.zone_ids, inside)
        for t in lost:
            memberships += self.membership.drop(t.track_id, t.last.ts_s)
            self.flows.forget(t.track_id)
            for counter in self.lines.values():
                counter.forget(t.track_id)
        return memberships

    def _apply_rules(
        self,
        ctx: FrameContext,
        geo: SceneGeometry,
        memberships: list[Membership],
        tracks_fresh: bool = True,
    ) -> list[Event]:
        """Run the rules; those that read tracks only when ``tracks_fresh`` (one frame, one
        truth: boxes carried over from an earlier frame are never judged at a later time)."""
        dwell: dict[tuple[int, str], float] = {}
        for zid in geo.zone_ids:
            for tid in self.membership.members(zid):
                seconds = self.membership.dwell_now(tid, zid, ctx.ts_s)
                if seconds is not None:
                    dwell[(tid, zid)] = seconds
        exits = {(m.track_id, m.zone_id): m.ts_s for m in memberships if m.kind == "exit"}
        ctx = replace(ctx, dwell=dwell, exits=exits)
        events: list[Event] = []
        for rule in self.rules:
            if tracks_fresh or not rule.reads_tracks:
                events += rule.update(ctx)
        return events

    def _zone_counts(
        self,
        geo: SceneGeometry,
        tracks: FrameTracks,
        inside: npt.NDArray[np.bool_],
        density: DensityMap | None,
        zones: dict[str, ZoneMetrics],
    ) -> dict[str, float]:
        source = self.scene.metrics.occupancy_source
        use_density = density is not None and source in ("auto", "density")
        from_map = (
            self._counts_from_map(geo, density)
            if use_density and density is not None and density.resolution_wh == geo.resolution_wh
            else None
        )
        counts: dict[str, float] = {}
        for j, g in enumerate(geo.zones):
            zid = g.zone.id
            if from_map is not None:
                count = from_map[zid]
            else:
                count = float(inside[:, j].sum()) if len(tracks) else 0.0
            counts[zid] = count
            per_m2 = los = None
            if g.area_m2:
                per_m2 = count / g.area_m2
                los = level_of_service(per_m2, self.scene.metrics.los_standard)
            zones[zid] = ZoneMetrics(
                occupancy=count,
                density_per_m2=per_m2,
                los_index=None if los is None else los_index(los),
            )
            self.occupancy[zid].add(count, per_m2, los)
        return counts

    def zone_locator(self, resolution_wh: tuple[int, int]) -> Callable[[float, float], str | None]:
        """Maps (x, y) fractions of a frame to the first zone containing it (or None)."""
        geo = self._geometry_for(resolution_wh)
        w, h = geo.resolution_wh

        def zone_at(x_frac: float, y_frac: float) -> str | None:
            hit = geo.inside(np.array([[x_frac * w, y_frac * h]]))
            ids = [z for j, z in enumerate(geo.zone_ids) if hit[0, j]]
            return ids[0] if ids else None

        return zone_at

    def _counts_from_map(self, geo: SceneGeometry, density: DensityMap) -> dict[str, float]:
        # A map is reused for many frames between refreshes: integrate it once per map.
        if density is not self._density_src:
            up = density.to_image_resolution()
            self._density_counts = {
                g.zone.id: float(up[g.mask].sum(dtype=np.float64)) for g in geo.zones
            }
            self._density_src = density
        return self._density_counts

    def _zone_events(
        self, frame: Frame, memberships: list[Membership], tracks: FrameTracks
    ) -> list[Event]:
        names = dict(zip(tracks.ids.tolist(), tracks.class_names, strict=True))
        out: list[Event] = []
        for m in memberships:
            name = names.get(m.track_id) or self._class_of(m.track_id)
            common: dict[str, Any] = {
                "camera_id": self.camera_id,
                "start_ts_s": m.ts_s,
                "end_ts_s": m.ts_s,
                "zone_id": m.zone_id,
                "track_ids": (m.track_id,),
                "class_name": name,
                "frame_index": frame.index,
            }
            if m.kind == "enter":
                self.flows.entered(m.track_id, m.zone_id)
                ev: Event = ZoneEntered(**common)
            else:
                self.dwell[m.zone_id].add(m.dwell_s)
                ev = ZoneExited(**common, dwell_s=m.dwell_s)
            if self.scene.rules.occupancy_items and self.scene.rules.zone_events:
                out.append(ev)
        return out

    def _class_of(self, track_id: int) -> str:
        tr = self.history.tracks.get(track_id)
        return tr.class_name if tr is not None else "person"

    def _line_events(self, frame: Frame, tracks: FrameTracks) -> list[Event]:
        out: list[Event] = []
        for ln in self.scene.lines:
            counter = self.lines[ln.id]
            keep = [
                i for i, n in enumerate(tracks.class_names) if ln.classes is None or n in ln.classes
            ]
            idx = np.asarray(keep, dtype=np.int64)
            names = [tracks.class_names[i] for i in keep]
            crossed = counter.update(tracks.ids[idx], tracks.anchors[idx], names)
            if not self.scene.rules.occupancy_items:
                continue  # counted (`LineCounts` metrics), not a timeline item
            for tid, direction, name in crossed:
                out.append(
                    LineCrossed(
                        camera_id=self.camera_id,
                        start_ts_s=frame.ts_s,
                        end_ts_s=frame.ts_s,
                        line_id=ln.id,
                        track_ids=(tid,),
                        direction="in" if direction > 0 else "out",
                        class_name=name,
                        frame_index=frame.index,
                        severity=Severity.INFO,
                    )
                )
        return out

    # --- run summary -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Per-zone metrics, line counts, flows and the time series of the run so far."""
        zones: dict[str, Any] = {}
        for z in self.scene.zones:
            zones[z.id] = {
                "name": z.name or z.id,
                **self.occupancy[z.id].summary(),
                "dwell": self.dwell[z.id].summary(),
            }
        lines = {
            lid: {
                "in": c.count_in,
                "out": c.count_out,
                "by_class": {k: {"in": v[0], "out": v[1]} for k, v in c.by_class.items()},
            }
            for lid, c in self.lines.items()
        }
        return {
            "camera_id": self.camera_id,
            "los_standard": str(self.scene.metrics.los_standard),
            "zones": zones,
            "lines": lines,
            "flows": self.flows.as_dict(),
            "series": self.series.rows(),
        }


def resolution_warning(
    scene_wh: tuple[int, int] | None, frame_wh: tuple[int, int], aspect_tolerance: float = 0.02
) -> str | None:
    """Why a scene drawn at ``scene_wh`` may not fit frames of ``frame_wh`` (None: it fits).

    Zones and lines are rescaled to the frame either way. The same aspect ratio (within
    ``aspect_tolerance``, 2 %: a few pixels of cropping by an encoder) only changes the
    scale; a different one stretches every zone, which usually means the scene was drawn
    for another camera or stream profile.

    Example:
        >>> resolution_warning((1280, 720), (360, 240)).split(": ")[0]
        'scene drawn at 1280×720 but frames are 360×240 (aspect 1.78 vs 1.50)'
    """
    if scene_wh is None or tuple(scene_wh) == tuple(frame_wh):
        return None
    (sw, sh), (fw, fh) = scene_wh, frame_wh
    a, b = sw / sh, fw / fh
    where = f"scene drawn at {sw}×{sh} but frames are {fw}×{fh}"
    if abs(a - b) / a > aspect_tolerance:
        return (
            f"{where} (aspect {a:.2f} vs {b:.2f}): zones and lines are stretched to fit; "
            f"redraw the scene on a {fw}×{fh} frame"
        )
    return f"{where}: zones and lines are rescaled by {fw / sw:.2f}"
