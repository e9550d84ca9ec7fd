"""Crowd metrics: level of service, occupancy, line counts, dwell, flows, heatmap, series.

Everything here accumulates numbers only: counts, durations, per-cell sums. Track ids are
used transiently to pair an entry with an exit and are dropped when the track ends, so what
is kept (a zone→zone count matrix, a dwell histogram) describes the crowd, not people.
Drawing lives in `crowdsight.analytics.draw`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crowdsight.config.scene import LosStandard
from crowdsight.core.geometry import F64, as_points, crossings, side_of_line

LOS_LEVELS = ("A", "B", "C", "D", "E", "F")

# Walkway level of service as area per person (m²/person): the lower bound of levels A–E.
# Below the E bound is F. Figures from /work/shared/REFERENCES.md:
#   Fruin (1971): A > 3.25, B 2.3–3.25, C 1.4–2.3, D 0.93–1.4, E 0.46–0.93, F < 0.46 m²/person.
#   Highway Capacity Manual: A > 5.6, B 3.7–5.6, C 2.2–3.7, D 1.4–2.2, E 0.75–1.4, F < 0.75.
LOS_AREA_BOUNDS_M2: dict[LosStandard, tuple[float, float, float, float, float]] = {
    LosStandard.FRUIN: (3.25, 2.3, 1.4, 0.93, 0.46),
    LosStandard.HCM: (5.6, 3.7, 2.2, 1.4, 0.75),
}


def level_of_service(density_per_m2: float, standard: LosStandard = LosStandard.FRUIN) -> str:
    """Walkway level of service (A best … F worst) for a density in persons/m².

    Args:
        density_per_m2: Persons per square metre (0 is level A).
        standard: ``fruin`` (Fruin 1971) or ``hcm`` (Highway Capacity Manual) table.

    Example:
        >>> level_of_service(0.2), level_of_service(2.5), level_of_service(2.5, LosStandard.HCM)
        ('A', 'F', 'F')
    """
    if density_per_m2 <= 0:
        return "A"
    area = 1.0 / density_per_m2
    for level, bound in zip(LOS_LEVELS, LOS_AREA_BOUNDS_M2[standard], strict=False):
        if area > bound:
            return level
    return "F"


def los_index(level: str) -> int:
    """0 for A … 5 for F (numeric form for metrics)."""
    return LOS_LEVELS.index(level)


class LineCounter:
    """Counts tracks crossing one line, in and out, with a dead band against jitter.

    A track's side only changes once its anchor is more than ``margin_px`` beyond the line,
    so a person standing on the line does not produce in/out/in/out. The movement tested
    for a crossing runs from the last position clearly on one side to the current one.

    Args:
        a, b: Line end points (pixels at the frame resolution).
        in_side: +1 if "in" is the left of a → b (positive `side_of_line`), else -1.
        margin_px: Dead band half-width in pixels.
    """

    def __init__(
        self,
        a: Sequence[float],
        b: Sequence[float],
        in_side: int = 1,
        margin_px: float = 2.0,
    ) -> None:
        self.a = as_points(a)[0]
        self.b = as_points(b)[0]
        self.in_side = in_side
        self.margin_px = margin_px
        self._length = float(np.linalg.norm(self.b - self.a))
        self.reset()

    def reset(self) -> None:
        """Zero the counts and forget track positions."""
        self.count_in = 0
        self.count_out = 0
        self.by_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self._last_clear: dict[int, tuple[int, F64]] = {}

    def update(
        self, ids: npt.NDArray[np.int64], anchors: F64, class_names: Sequence[str]
    ) -> list[tuple[int, int, str]]:
        """Feed this frame's tracks; returns ``(track_id, +1 in / -1 out, class)`` crossings."""
        if len(ids) == 0:
            return []
        dist = side_of_line(anchors, self.a, self.b) / self._length
        clear = np.where(dist > self.margin_px, 1, np.where(dist < -self.margin_px, -1, 0))
        prev = anchors.copy()
        prev_side = np.zeros(len(ids), dtype=np.int64)
        for i, tid in enumerate(ids.tolist()):
            state = self._last_clear.get(tid)
            if state is not None:
                prev_side[i], prev[i] = state
        flipped = (clear != 0) & (prev_side != 0) & (clear != prev_side)
        crossed = crossings(prev, anchors, self.a, self.b, self.in_side)
        out: list[tuple[int, int, str]] = []
        for i, tid in enumerate(ids.tolist()):
            if clear[i] != 0:
                self._last_clear[tid] = (int(clear[i]), anchors[i].copy())
            if not flipped[i] or crossed[i] == 0:
                continue
            direction = int(crossed[i])
            name = class_names[i]
            if direction > 0:
                self.count_in += 1
                self.by_class[name][0] += 1
            else:
                self.count_out += 1
                self.by_class[name][1] += 1
            out.append((tid, direction, name))
        return out

    def forget(self, track_id: int) -> None:
        """Drop a lost track's last position."""
        self._last_clear.pop(track_id, None)


@dataclass
class DwellStats:
    """Distribution of completed dwell times in one zone (seconds)."""

    durations_s: list[float] = field(default_factory=list)

    def add(self, dwell_s: float) -> None:
        """Record one completed visit."""
        self.durations_s.append(dwell_s)

    def summary(self, bins_s: Sequence[float] = (0, 5, 15, 30, 60, 120, 300)) -> dict[str, object]:
        """Count, mean, median, p90, max and a histogram over ``bins_s`` (last bin open)."""
        d = np.asarray(self.durations_s, dtype=np.float64)
        if len(d) == 0:
            return {"count": 0}
        edges = [*bins_s, np.inf]
        hist, _ = np.histogram(d, bins=edges)
        labels = [
            f"{int(lo)}-{int(hi)}s" if np.isfinite(hi) else f">{int(lo)}s"
            for lo, hi in itertools.pairwise(edges)
        ]
        return {
            "count": len(d),
            "mean_s": float(d.mean()),
            "median_s": float(np.median(d)),
            "p90_s": float(np.percentile(d, 90)),
            "max_s": float(d.max()),
            "histogram": dict(zip(labels, hist.tolist(), strict=True)),
        }


class FlowMatrix:
    """Anonymous zone→zone transition counts (ready for a Sankey diagram).

    When a track that was last seen entering zone A enters zone B, ``A→B`` is incremented
    (entries are debounced, so the order holds even where zones touch and the exit from A
    is confirmed after the entry into B). The track's last zone is forgotten when the
    track ends; only the counts are kept.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero the counts."""
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self._last_zone: dict[int, str] = {}

    def entered(self, track_id: int, zone_id: str) -> None:
        """A track entered ``zone_id``: counts a transition from its previous zone."""
        prev = self._last_zone.get(track_id)
        if prev is not None and prev != zone_id:
            self.counts[(prev, zone_id)] += 1
        self._last_zone[track_id] = zone_id

    def forget(self, track_id: int) -> None:
        """The track ended."""
        self._last_zone.pop(track_id, None)

    def as_dict(self) -> dict[str, object]:
        """``{"links": [{"source", "target", "value"}...]}`` sorted by value."""
        links = [
            {"source": s, "target": t, "value": v}
            for (s, t), v in sorted(self.counts.items(), key=lambda kv: -kv[1])
        ]
        return {"links": links}


class OccupancyStats:
    """Running mean / peak occupancy and level-of-service distribution of one zone."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self.n = 0
        self.total = 0.0
        self.peak = 0.0
        self.density_total = 0.0
        self.density_peak = 0.0
        self.los_frames: dict[str, int] = dict.fromkeys(LOS_LEVELS, 0)

    def add(self, occupancy: float, density: float | None = None, los: str | None = None) -> None:
        """Record one frame's occupancy (and density, LoS when calibrated)."""
        self.n += 1
        self.total += occupancy
        self.peak = max(self.peak, occupancy)
        if density is not None:
            self.density_total += density
            self.density_peak = max(self.density_peak, density)
        if los is not None:
            self.los_frames[los] += 1

    def summary(self) -> dict[str, object]:
        """Mean and peak occupancy, densities and the LoS share of frames."""
        out: dict[str, object] = {
            "frames": self.n,
            "mean_occupancy": self.total / self.n if self.n else 0.0,
            "peak_occupancy": self.peak,
        }
        if self.density_total or self.density_peak:
            out["mean_density"] = self.density_total / self.n if self.n else 0.0
            out["peak_density"] = self.density_peak
        graded = sum(self.los_frames.values())
        if graded:
            out["los_share"] = {k: v / graded for k, v in self.los_frames.items()}
        return out


class OccupancyHeatmap:
    """Accumulates where people stand (anchors per grid cell), independent of drawing.

    Args:
        cell_px: Cell size in image pixels; coarser cells need fewer frames to look smooth.
    """

    def __init__(self, cell_px: int = 16) -> None:
        self.cell_px = cell_px
        self.reset()

    def reset(self) -> None:
        """Clear the accumulation."""
        self.counts: F64 | None = None
        self.frames = 0
        self.resolution_wh: tuple[int, int] | None = None

    def add(self, anchors: F64, resolution_wh: tuple[int, int]) -> None:
        """Add one frame of anchors (pixels at ``resolution_wh``)."""
        w, h = resolution_wh
        gw, gh = max(1, -(-w // self.cell_px)), max(1, -(-h // self.cell_px))
        if self.counts is None or self.resolution_wh != resolution_wh:
            self.counts = np.zeros((gh, gw))
            self.frames = 0
            self.resolution_wh = resolution_wh
        self.frames += 1
        if len(anchors) == 0:
            return
        gx = np.clip((anchors[:, 0] // self.cell_px).astype(int), 0, gw - 1)
        gy = np.clip((anchors[:, 1] // self.cell_px).astype(int), 0, gh - 1)
        np.add.at(self.counts, (gy, gx), 1.0)

    def mean_per_frame(self) -> F64:
        """Average people per cell per frame (zeros before any frame)."""
        if self.counts is None or self.frames == 0:
            return np.zeros((1, 1))
        out: F64 = self.counts / self.frames
        return out


class TimeSeries:
    """Aggregates per-frame metrics into fixed intervals (mean and max of each key).

    Args:
        interval_s: Bucket length; buckets are aligned to multiples of it.
        max_buckets: Oldest buckets beyond this are discarded (bounded memory on live feeds).
    """

    def __init__(self, interval_s: float = 60.0, max_buckets: int = 10_000) -> None:
        self.interval_s = interval_s
        self.max_buckets = max_buckets
        self.reset()

    def reset(self) -> None:
        """Drop every bucket."""
        self._buckets: dict[int, dict[str, list[float]]] = {}

    def add(self, ts_s: float, metrics: Mapping[str, float]) -> None:
        """Add one frame's metrics."""
        key = int(ts_s // self.interval_s)
        bucket = self._buckets.setdefault(key, {})
        for name, value in metrics.items():
            agg = bucket.setdefault(name, [0.0, 0.0, float("-inf")])  # n, sum, max
            agg[0] += 1
            agg[1] += value
            agg[2] = max(agg[2], value)
        while len(self._buckets) > self.max_buckets:
            del self._buckets[min(self._buckets)]

    def rows(self) -> list[dict[str, float]]:
        """One row per interval: ``t_start_s`` plus ``<key>:mean`` and ``<key>:max``."""
        out = []
        for key in sorted(self._buckets):
            row: dict[str, float] = {"t_start_s": key * self.interval_s}
            for name, (n, total, peak) in sorted(self._buckets[key].items()):
                row[f"{name}:mean"] = total / n
                row[f"{name}:max"] = peak
            out.append(row)
        return out
