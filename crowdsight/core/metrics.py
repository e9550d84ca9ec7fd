"""`SceneMetrics`: one camera's figures on one frame, typed from the analytics to the dashboard.

The pipeline builds one record per frame: frame-wide figures (``counts``: crowd counts of
each estimator, per-class counts, the anomaly score), per-zone figures (`ZoneMetrics`), per-line
counts (`LineCounts`) and zone-to-zone transition counts (`FlowCount`). The same record travels
in the worker's report, is served by the live status API (its OpenAPI schema names the
fields) and read by the dashboard under the same names.

The store keeps metrics as flat time series, one named row per figure. `to_rows` and
`from_rows` are the one place where the record and those row names meet:

==========================================  =========================================
record                                       stored row name
==========================================  =========================================
``counts["count_density"]``                  ``count_density``
``zones["hall"].occupancy``                  ``zone:hall:occupancy``
``zones["hall"].density_per_m2``             ``zone:hall:density_per_m2``
``zones["hall"].los_index``                  ``zone:hall:los_index``
``lines["gate"].count_in`` / ``count_out``   ``line:gate:in`` / ``line:gate:out``
``FlowCount("a", "b", 3)``                   ``flow:a>b``
==========================================  =========================================

Example:
    >>> m = SceneMetrics(counts={"count_tracked": 4.0},
    ...                  zones={"hall": ZoneMetrics(occupancy=4.0)})
    >>> m.to_rows()
    {'count_tracked': 4.0, 'zone:hall:occupancy': 4.0}
    >>> SceneMetrics.from_rows(m.to_rows()) == m
    True
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

#: Row-name prefix of the zone-to-zone transition counters (``flow:<from>><to>``): cumulative
#: counts since the camera's pipeline started, stored like line counts; the store turns their
#: increases into flows (`crowdsight.store.events.zone_flows`).
FLOW_ROW_PREFIX = "flow:"

_ZONE_FIELDS = ("occupancy", "density_per_m2", "los_index")


class _Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ZoneMetrics(_Metrics):
    """What one zone holds on this frame."""

    occupancy: float = Field(description="People in the zone (density or tracks, see scene).")
    density_per_m2: float | None = Field(
        None, description="Persons per m² (null without a ground-plane calibration)."
    )
    los_index: int | None = Field(
        None,
        description="Walkway level of service as 0..5 for A..F (null without calibration).",
    )


class LineCounts(_Metrics):
    """Tracks that crossed a counting line since the pipeline started."""

    count_in: float = Field(0.0, description="Crossings towards the line's 'in' side.")
    count_out: float = Field(0.0, description="Crossings towards its 'out' side.")


class FlowCount(_Metrics):
    """Tracks that went from one zone straight to another since the pipeline started."""

    from_zone: str = Field(description="Zone the tracks were in before.")
    to_zone: str = Field(description="Zone they entered next.")
    count: float = Field(description="Number of such moves so far.")


class SceneMetrics(_Metrics):
    """One camera's figures on one frame."""

    counts: dict[str, float] = Field(
        default_factory=dict,
        description="Frame-wide figures by series name: count_density, count_fused, "
        "count_detection, count_tracked, count:<class>, density_scale, anomaly_score.",
    )
    zones: dict[str, ZoneMetrics] = Field(
        default_factory=dict, description="Per-zone figures by zone id."
    )
    lines: dict[str, LineCounts] = Field(
        default_factory=dict, description="Per-line counts by line id."
    )
    flows: list[FlowCount] = Field(
        default_factory=list, description="Zone-to-zone transition counts."
    )

    def __bool__(self) -> bool:
        """False when the record holds no figure at all."""
        return bool(self.counts or self.zones or self.lines or self.flows)

    def merged(self, other: SceneMetrics) -> SceneMetrics:
        """A new record with ``other``'s figures added (``other`` wins on the same name)."""
        return SceneMetrics(
            counts={**self.counts, **other.counts},
            zones={**self.zones, **other.zones},
            lines={**self.lines, **other.lines},
            flows=[*self.flows, *other.flows],
        )

    def to_rows(self) -> dict[str, float]:
        """The figures as flat, named store rows (see the module's table)."""
        rows = dict(self.counts)
        for zid, z in self.zones.items():
            for name in _ZONE_FIELDS:
                value = getattr(z, name)
                if value is not None:
                    rows[f"zone:{zid}:{name}"] = float(value)
        for lid, ln in self.lines.items():
            rows[f"line:{lid}:in"] = ln.count_in
            rows[f"line:{lid}:out"] = ln.count_out
        for f in self.flows:
            rows[flow_row_name(f.from_zone, f.to_zone)] = f.count
        return rows

    @classmethod
    def from_rows(cls, rows: Mapping[str, float]) -> SceneMetrics:
        """Inverse of `to_rows`."""
        counts: dict[str, float] = {}
        zones: dict[str, dict[str, float]] = {}
        lines: dict[str, dict[str, float]] = {}
        flows: list[FlowCount] = []
        for name, value in rows.items():
            kind, _, rest = name.partition(":")
            zid, _, field = rest.rpartition(":")
            if kind == "zone" and zid and field in _ZONE_FIELDS:
                zones.setdefault(zid, {})[field] = value
            elif kind == "line" and zid and field in ("in", "out"):
                lines.setdefault(zid, {})[f"count_{field}"] = value
            elif (pair := parse_flow_row_name(name)) is not None:
                flows.append(FlowCount(from_zone=pair[0], to_zone=pair[1], count=value))
            else:
                counts[name] = value
        return cls(
            counts=counts,
            zones={k: ZoneMetrics.model_validate(v) for k, v in zones.items()},
            lines={k: LineCounts.model_validate(v) for k, v in lines.items()},
            flows=flows,
        )


def flow_row_name(from_zone: str, to_zone: str) -> str:
    """The store row name of a transition counter, e.g. ``flow:gate>hall``."""
    return f"{FLOW_ROW_PREFIX}{from_zone}>{to_zone}"


def parse_flow_row_name(name: str) -> tuple[str, str] | None:
    """(from_zone, to_zone) of a transition counter's row name; None for other rows."""
    if not name.startswith(FLOW_ROW_PREFIX):
        return None
    src, sep, dst = name[len(FLOW_ROW_PREFIX) :].partition(">")
    return (src, dst) if sep and src and dst else None
