"""Event rules: small classes, each with per-key state and a ``reset()``.

Every rule satisfies the `Rule` protocol: it reads one `FrameContext` per frame and returns
the events it opens or closes. `build_rules` turns a scene's configuration into the list of
rules that `SceneAnalytics` runs in order; adding a rule means one class here, one config
model, one event type, and one line in `build_rules`.
Duration events are emitted when they open (``end_ts_s`` None) and again when they close
(same ``event_id``); `_OpenEvents` does that bookkeeping. Hysteresis (enter/exit thresholds
and minimum durations) keeps noisy values from flapping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from crowdsight.analytics.hysteresis import Hysteresis, Transition
from crowdsight.analytics.tracks import FrameTracks, Track, TrackHistory
from crowdsight.config.scene import (
    CrowdSurgeRule,
    DispersalRule,
    FallRule,
    IntrusionRule,
    LoiteringRule,
    OvercrowdingRule,
    RunningRule,
    SceneConfig,
    WrongWayRule,
    ZoneKind,
)
from crowdsight.core.events import (
    CrowdSurge,
    Dispersal,
    Event,
    Fall,
    Intrusion,
    Loitering,
    Overcrowding,
    Running,
    Severity,
    WrongWay,
)
from crowdsight.core.geometry import BoolArray, Homography, angle_between_deg


@dataclass(frozen=True)
class FrameContext:
    """What every rule sees on one frame.

    Attributes:
        camera_id: Camera name for events.
        frame_index: Frame index for events.
        ts_s: Frame time.
        tracks: This frame's tracked rows.
        history: Recent histories of live tracks.
        zone_ids: Zone ids (columns of ``inside``).
        inside: N×Z raw membership of this frame's anchors.
        homography: Image→ground mapping, or None.
        lost: Tracks dropped on this frame.
        zone_counts: Per-zone people estimate (density map or tracks).
        zone_area_m2: Per-zone ground area (None uncalibrated).
        zone_area_px: Per-zone image area in px².
        dwell: (track, zone) of tracks currently in a zone → seconds so far.
        exits: (track, zone) that left a zone on this frame → exit time.
    """

    camera_id: str
    frame_index: int
    ts_s: float
    tracks: FrameTracks
    history: TrackHistory
    zone_ids: list[str]
    inside: BoolArray
    homography: Homography | None
    lost: list[Track]
    zone_counts: dict[str, float]
    zone_area_m2: dict[str, float | None]
    zone_area_px: dict[str, float]
    dwell: dict[tuple[int, str], float] = field(default_factory=dict)
    exits: dict[tuple[int, str], float] = field(default_factory=dict)

    def zones_of(self, row: int) -> list[str]:
        """Zones containing this frame's track row."""
        return [z for j, z in enumerate(self.zone_ids) if self.inside[row, j]]


class Rule(Protocol):
    """One event rule: per-key state, fed one frame at a time.

    ``reads_tracks``: the rule judges tracked boxes (speeds, dwell, membership). Such a rule
    is fed only frames whose boxes were found on that very frame: between detector runs the
    pipeline carries the previous frame's boxes, and judging them at a later time would
    stretch one observation into a sustained condition (one frame, one truth).
    """

    reads_tracks: bool

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""


class _OpenEvents:
    """Open events by key: opens, updates (same id) and closes them."""

    def __init__(self) -> None:
        self.events: dict[Hashable, Event] = {}

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        self.events.clear()

    def open(self, key: Hashable, event: Event) -> Event:
        self.events[key] = event
        return event

    def update(self, key: Hashable, **changes: Any) -> Event | None:
        ev = self.events.get(key)
        if ev is None:
            return None
        self.events[key] = replace(ev, **changes)
        return self.events[key]

    def close(self, key: Hashable, ts_s: float, **changes: Any) -> Event | None:
        ev = self.events.pop(key, None)
        return None if ev is None else ev.closed(ts_s, **changes)


def _duration(seconds: float) -> str:
    """ "40 s", "3 min 20 s", "1 h 5 min": how long, as an operator says it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _where(zone_id: str | None) -> str:
    return f" in {zone_id}" if zone_id else ""


def _base(ctx: FrameContext, start_ts_s: float) -> dict[str, Any]:
    return {"camera_id": ctx.camera_id, "start_ts_s": start_ts_s, "frame_index": ctx.frame_index}


class OvercrowdingRules:
    """Overcrowding per zone: persons/m² (calibrated) or people in the zone (fallback).

    One event per zone: it opens once density has stayed at or above ``warn`` for
    ``min_duration_s``, becomes CRITICAL (same event id, re-emitted) once ``critical`` is
    reached, and closes when density falls below ``exit_ratio`` × ``warn`` (hysteresis) or
    when the zone has had no people estimate for ``max_quiet_s`` (closed at the last one).
    Without a calibration the per-megapixel thresholds are turned into a people limit for
    the zone (threshold × zone area in Mpx), so the event text reads "24 people in
    concourse, limit 20" instead of a unit nobody uses. Zones with neither a ground area
    nor per-px thresholds are skipped.
    """

    reads_tracks = False  # zone counts: the density map's, or the tracks' when it has none

    def __init__(self, cfg: OvercrowdingRule) -> None:
        self.cfg = cfg
        self._hyst: dict[str, Hysteresis] = {}
        self._open = _OpenEvents()
        self._last_seen: dict[str, float] = {}

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        self._hyst.clear()
        self._open.reset()
        self._last_seen.clear()

    def _limits(self, area_m2: float | None, area_px: float) -> tuple[float, float] | None:
        """(warn, critical) in persons/m² (calibrated) or people in the zone; None: no rule."""
        if area_m2 is not None and area_m2 > 0:
            return self.cfg.warn_per_m2, self.cfg.critical_per_m2
        if self.cfg.warn_per_mpx is not None and self.cfg.critical_per_mpx is not None:
            mpx = area_px / 1e6
            return self.cfg.warn_per_mpx * mpx, self.cfg.critical_per_mpx * mpx
        return None

    @staticmethod
    def reason(ev: Overcrowding, ts_s: float) -> str:
        """Why, in the operator's units: "3.1 persons/m² in concourse for 40 s, limit 2.0"."""
        zone, since = ev.zone_id or "the zone", max(0.0, ts_s - ev.start_ts_s)
        if ev.density_per_m2 is not None:
            what = f"{ev.peak:.1f} persons/m² in {zone}"
            limit = f"limit {ev.limit:.1f}"
        else:
            what = f"{ev.peak:.0f} people in {zone}"
            limit = f"limit {ev.limit:.0f}"
        return f"{what} for {since:.0f} s, {limit}"

    def _close(self, zid: str, ts_s: float) -> Event | None:
        ev = self._open.events.get(zid)
        if not isinstance(ev, Overcrowding):
            return None
        return self._open.close(zid, ts_s, reason=self.reason(ev, ts_s))

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""
        if not self.cfg.enabled:
            return []
        out: list[Event] = []
        for zid in [k for k in self._open.events if isinstance(k, str)]:
            last = self._last_seen.get(zid, ctx.ts_s)
            if zid not in ctx.zone_counts and ctx.ts_s - last >= self.cfg.max_quiet_s:
                self._hyst.pop(zid, None)
                closed = self._close(zid, last)
                if closed is not None:
                    out.append(closed)
        for zid, count in ctx.zone_counts.items():
            area_m2 = ctx.zone_area_m2.get(zid)
            calibrated = area_m2 is not None and area_m2 > 0
            limits = self._limits(area_m2, ctx.zone_area_px.get(zid, 0.0))
            if limits is None or limits[0] <= 0:
                continue
            self._last_seen[zid] = ctx.ts_s
            warn, critical = limits
            value = count / area_m2 if calibrated and area_m2 is not None else count
            hyst = self._hyst.setdefault(
                zid, Hysteresis(warn, warn * self.cfg.exit_ratio, self.cfg.min_duration_s)
            )
            tr = hyst.update(zid, value, ctx.ts_s)
            severity = Severity.CRITICAL if value >= critical else Severity.WARNING
            if tr is not None and tr.kind == "open":
                ev = Overcrowding(
                    **_base(ctx, tr.ts_s),
                    zone_id=zid,
                    severity=severity,
                    count=count,
                    peak=value,
                    limit=warn,
                    density_per_m2=value if calibrated else None,
                    density_per_mpx=None,
                )
                out.append(self._open.open(zid, replace(ev, reason=self.reason(ev, ctx.ts_s))))
            elif tr is not None:
                closed = self._close(zid, tr.ts_s)
                if closed is not None:
                    out.append(closed)
            elif hyst.is_active(zid):
                cur = self._open.events[zid]
                assert isinstance(cur, Overcrowding)
                if value > cur.peak:
                    cur = replace(cur, peak=value, count=count)
                    if calibrated:
                        cur = replace(cur, density_per_m2=value)
                escalate = severity is Severity.CRITICAL and cur.severity is not Severity.CRITICAL
                if escalate:
                    cur = replace(cur, severity=severity)
                cur = self._open.open(zid, replace(cur, reason=self.reason(cur, ctx.ts_s)))
                if escalate:
                    out.append(cur)
        return out


class CrowdSurgeRules:
    """A zone whose crowd grows fast: density now minus its minimum over ``window_s``.

    Crowd-safety practice (Fruin 1971, walkway levels of service; G. K. Still on crowd
    dynamics, see /work/shared/REFERENCES.md) treats how fast a space fills as a warning sign
    on its own: a surge toward level of service E-F leaves no time for the steady
    overcrowding rule's dwell. The rule watches each zone's people estimate (density map or
    tracks); with a calibration it compares persons/m², without one it compares people
    (only when ``rise_count`` is set). The event ends once the rise fades, which happens at
    the latest ``window_s`` after the zone stops filling.
    """

    reads_tracks = False  # zone counts, like overcrowding

    def __init__(self, cfg: CrowdSurgeRule) -> None:
        self.cfg = cfg
        self._hyst = Hysteresis(1.0, cfg.exit_ratio, cfg.min_duration_s)
        self._open = _OpenEvents()
        self._recent: dict[str, deque[tuple[float, float]]] = {}

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        self._hyst.reset()
        self._open.reset()
        self._recent.clear()

    def _rise(self, zid: str, ts_s: float, value: float) -> float:
        """``value`` minus its minimum over the last ``window_s`` (this sample included)."""
        recent = self._recent.setdefault(zid, deque())
        recent.append((ts_s, value))
        while recent[0][0] < ts_s - self.cfg.window_s - 1e-6:  # a sample window_s ago stays
            recent.popleft()
        return value - min(v for _, v in recent)

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened or closed on it."""
        if not self.cfg.enabled:
            return []
        out: list[Event] = []
        for zid, count in ctx.zone_counts.items():
            area_m2 = ctx.zone_area_m2.get(zid)
            if area_m2 is not None and area_m2 > 0:
                per_m2 = count / area_m2
                density: float | None = per_m2
                rise = self._rise(zid, ctx.ts_s, per_m2)
                dense = per_m2 >= self.cfg.min_density_per_m2
                value = rise / self.cfg.rise_per_m2 if dense else 0.0
                unit = "persons/m²"
            elif self.cfg.rise_count is not None:
                density = None
                rise = self._rise(zid, ctx.ts_s, count)
                value = rise / self.cfg.rise_count
                unit = "persons"
            else:
                continue
            tr = self._hyst.update(zid, value, ctx.ts_s)
            if tr is not None and tr.kind == "open":
                surge = CrowdSurge(
                    **_base(ctx, tr.ts_s),
                    severity=Severity.WARNING,
                    zone_id=zid,
                    count=count,
                    rise=rise,
                    rise_unit=unit,
                    density_per_m2=density,
                )
                out.append(self._open.open(zid, replace(surge, reason=self.reason(surge))))
            elif tr is not None:
                ev = self._open.close(zid, tr.ts_s)
                if ev is not None:
                    out.append(ev)
            elif self._hyst.is_active(zid):
                cur = self._open.events.get(zid)
                if isinstance(cur, CrowdSurge) and rise > cur.rise:
                    cur = replace(cur, rise=rise, count=count, density_per_m2=density)
                    self._open.open(zid, replace(cur, reason=self.reason(cur)))
        return out

    def reason(self, ev: CrowdSurge) -> str:
        """ "+0.8 persons/m² in 10 s in concourse, now 2.6 (limit +0.5 per 10 s above 2.0)"."""
        window = _duration(self.cfg.window_s)
        if ev.density_per_m2 is not None:
            return (
                f"+{ev.rise:.1f} persons/m² in {window}{_where(ev.zone_id)}, now "
                f"{ev.density_per_m2:.1f} (limit +{self.cfg.rise_per_m2:.1f} per {window} "
                f"above {self.cfg.min_density_per_m2:.1f})"
            )
        limit = self.cfg.rise_count or 0.0
        return (
            f"+{ev.rise:.0f} people in {window}{_where(ev.zone_id)}, now {ev.count:.0f} "
            f"(limit +{limit:.0f} per {window})"
        )


class _PerTrackRule:
    """Shared plumbing for rules whose state is keyed by (track id, ...)."""

    reads_tracks = True

    def __init__(self) -> None:
        self._open = _OpenEvents()

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        self._open.reset()
        self._hyst.reset()

    _hyst: Hysteresis

    def _close_lost(self, ctx: FrameContext) -> list[Event]:
        out: list[Event] = []
        lost = {t.track_id: t.last.ts_s for t in ctx.lost}
        for key in self._hyst.keys():  # noqa: SIM118 - a method, not a dict
            tid = key[0] if isinstance(key, tuple) else key
            if tid in lost:
                tr = self._hyst.drop(key, lost[tid])
                if tr is not None:
                    ev = self._open.close(key, tr.ts_s)
                    if ev is not None:
                        out.append(ev)
        return out

    def _transition(self, key: Hashable, tr: Transition | None, event: Event) -> Event | None:
        if tr is None:
            return None
        if tr.kind == "open":
            return self._open.open(key, replace(event, start_ts_s=tr.ts_s))
        return self._open.close(key, tr.ts_s)


class RunningRules(_PerTrackRule):
    """A track faster than max(absolute threshold, scene baseline median + k·MAD).

    The baseline is the robust median and MAD of recent speed samples of every track in
    the scene, so "running" adapts to a camera where everyone walks fast in pixels.

    Evidence: an event opens only after ``min_evidence`` measurements in a row above the
    threshold spanning ``min_duration_s`` (one measurement per detector frame; `SceneAnalytics`
    feeds this rule only frames the detector ran on). At 25 fps the duration decides; at
    0.6 fps (a busy CPU) the count does, so a track that jumps once to a neighbour (or flips
    between two people) is not a runner.
    """

    def __init__(self, cfg: RunningRule, baseline_size: int = 2000) -> None:
        super().__init__()
        self.cfg = cfg
        self._speeds: deque[float] = deque(maxlen=baseline_size)
        self._hyst = Hysteresis(
            1.0, cfg.exit_ratio, cfg.min_duration_s, min_updates=cfg.min_evidence
        )
        self._gaps: deque[float] = deque(maxlen=100)

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        super().reset()
        self._speeds.clear()
        self._gaps.clear()

    @property
    def warning(self) -> str | None:
        """Why running is not being judged (tracks seen too rarely), or None."""
        if len(self._gaps) < 10:
            return None
        gap = float(np.median(np.fromiter(self._gaps, np.float64)))
        if gap <= self.cfg.max_gap_s:
            return None
        return (
            f"running is not judged: tracks are seen every {gap:.1f} s (at most "
            f"{self.cfg.max_gap_s:.1f} s needed); lower detect_every or give this camera more CPU"
        )

    def threshold(self, calibrated: bool) -> float | None:
        """Current speed threshold (m/s calibrated, else px/s); None when undefined."""
        absolute = self.cfg.speed_m_s if calibrated else self.cfg.speed_px_s
        relative = None
        if self.cfg.relative_k is not None and len(self._speeds) >= self.cfg.min_baseline_samples:
            s = np.fromiter(self._speeds, np.float64)
            med = float(np.median(s))
            mad = float(np.median(np.abs(s - med)))
            if med > 0:
                # The 2×median floor keeps a still scene (MAD ≈ 0) from flagging strollers.
                relative = max(med + self.cfg.relative_k * mad, 2.0 * med)
        values = [v for v in (absolute, relative) if v is not None]
        return max(values) if values else None

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""
        if not self.cfg.enabled:
            return []
        out = self._close_lost(ctx)
        calibrated = ctx.homography is not None
        thr = self.threshold(calibrated)
        unit = "m/s" if calibrated else "px/s"
        for i, tid in enumerate(ctx.tracks.ids.tolist()):
            track = ctx.history.tracks.get(tid)
            if track is None or len(track.samples) < 2:
                continue
            gap = track.samples[-1].ts_s - track.samples[-2].ts_s
            self._gaps.append(gap)
            if gap > self.cfg.max_gap_s:
                continue  # a jump this long is no evidence of running (see max_gap_s)
            speed = track.speed(self.cfg.window_s, ctx.homography)
            if thr is None:
                self._speeds.append(speed)
                continue
            if not self._hyst.is_active(tid):
                self._speeds.append(speed)  # runners do not teach the baseline
            zones = ctx.zones_of(i)
            ev = Running(
                **_base(ctx, ctx.ts_s),
                severity=Severity.WARNING,
                track_ids=(tid,),
                zone_id=zones[0] if zones else None,
                speed=speed,
                speed_unit=unit,
            )
            ev = replace(ev, reason=self.reason(ev.speed, thr, unit, ev.zone_id))
            tr = self._hyst.update(tid, speed / thr, ctx.ts_s)
            done = self._transition(tid, tr, ev)
            if done is not None:
                out.append(done)
            elif self._hyst.is_active(tid):
                cur = self._open.events.get(tid)
                if isinstance(cur, Running) and speed > cur.speed:
                    self._open.update(
                        tid, speed=speed, reason=self.reason(speed, thr, unit, cur.zone_id)
                    )
        return out

    def reason(self, speed: float, limit: float, unit: str, zone_id: str | None) -> str:
        """ "moving at 3.4 m/s in concourse (limit 2.5 m/s)"; px/s when uncalibrated."""
        digits = 1 if unit == "m/s" else 0
        return (
            f"moving at {speed:.{digits}f} {unit}{_where(zone_id)} "
            f"(limit {limit:.{digits}f} {unit}: the larger of the set speed and this "
            "scene's usual speeds)"
        )


def _dispersal_reason(
    speed: float, usual: float, limit: float, n: int, frac: float, calibrated: bool
) -> str:
    """ "12 people moving apart at 1.8 m/s, 83 % outward (usual 0.2 m/s, limit 1.5 m/s)"."""
    unit, d = ("m/s", 1) if calibrated else ("px/s", 0)
    return (
        f"{n} people moving apart at {speed:.{d}f} {unit}, {100 * frac:.0f} % outward "
        f"(usual {usual:.{d}f} {unit}, limit {limit:.{d}f} {unit})"
    )


class DispersalRules:
    """Many tracks suddenly moving away from the crowd's centroid.

    The signal is the mean radial velocity (outward positive) of the current tracks
    around their centroid. It must exceed an absolute speed, ``jump_ratio`` × its own recent
    average (a sudden change, not a steady outflow), with most tracks moving outward.
    """

    reads_tracks = True

    def __init__(self, cfg: DispersalRule, baseline_s: float = 10.0) -> None:
        self.cfg = cfg
        self.baseline_s = baseline_s
        self._hyst = Hysteresis(1.0, cfg.exit_ratio, cfg.min_duration_s)
        self._open = _OpenEvents()
        self.reset()

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        self._hyst.reset()
        self._open.reset()
        self._recent: deque[tuple[float, float]] = deque()

    def radial(self, ctx: FrameContext) -> tuple[float, float, int]:
        """(mean outward speed, outward fraction, tracks used) on this frame."""
        pos, vel = [], []
        for tid in ctx.tracks.ids.tolist():
            tr = ctx.history.tracks.get(tid)
            if tr is None or len(tr.samples) < 2:
                continue
            _ts, pts = tr.arrays()
            p = pts[-1:] if ctx.homography is None else ctx.homography.to_ground(pts[-1:])
            pos.append(p[0])
            vel.append(tr.velocity(self.cfg.window_s, ctx.homography))
        if len(pos) < self.cfg.min_tracks:
            return 0.0, 0.0, len(pos)
        p_arr, v_arr = np.array(pos), np.array(vel)
        r = p_arr - p_arr.mean(axis=0)
        norm = np.linalg.norm(r, axis=1, keepdims=True)
        r = np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)
        radial = np.sum(r * v_arr, axis=1)
        return float(radial.mean()), float(np.mean(radial > 0)), len(pos)

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""
        if not self.cfg.enabled:
            return []
        speed, frac, n = self.radial(ctx)
        thr = self.cfg.radial_speed_m_s if ctx.homography else self.cfg.radial_speed_px_s
        while self._recent and self._recent[0][0] < ctx.ts_s - self.baseline_s:
            self._recent.popleft()
        base = float(np.mean([v for _, v in self._recent])) if self._recent else 0.0
        active = self._hyst.is_active("scene")
        jump = speed >= self.cfg.jump_ratio * max(base, 1e-6)
        ok = active or (jump and frac >= self.cfg.min_outward_fraction)
        value = speed / thr if ok and n >= self.cfg.min_tracks else 0.0
        if not active and value < 1.0:
            self._recent.append((ctx.ts_s, max(speed, 0.0)))
        tr = self._hyst.update("scene", value, ctx.ts_s)
        out: list[Event] = []
        if tr is not None and tr.kind == "open":
            ids = tuple(int(t) for t in ctx.tracks.ids.tolist())
            out.append(
                self._open.open(
                    "scene",
                    Dispersal(
                        **_base(ctx, tr.ts_s),
                        severity=Severity.CRITICAL,
                        track_ids=ids,
                        divergence=speed,
                        n_tracks=n,
                        reason=self.reason(speed, base, thr, n, frac, ctx.homography is not None),
                    ),
                )
            )
        elif tr is not None:
            ev = self._open.close("scene", tr.ts_s)
            if ev is not None:
                out.append(ev)
        return out

    reason = staticmethod(_dispersal_reason)


class LoiteringRules(_PerTrackRule):
    """A track that stays in one zone longer than ``dwell_s``.

    Opens at entry time + ``dwell_s``; closes when the track leaves the zone or is lost,
    carrying the full dwell.
    """

    def __init__(self, cfg: LoiteringRule) -> None:
        super().__init__()
        self.cfg = cfg
        self._hyst = Hysteresis(1.0, 0.5)

    def reason(self, zone_id: str | None, seconds: float) -> str:
        """ "stayed in shopfront for 3 min 20 s (limit 2 min)"."""
        return _loitering_reason(self.cfg.dwell_s, zone_id, seconds)

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame: its current dwell times (``ctx.dwell``) and zone exits."""
        if not self.cfg.enabled:
            return []
        dwell, exits = ctx.dwell, ctx.exits
        out: list[Event] = []
        classes = dict(zip(ctx.tracks.ids.tolist(), ctx.tracks.class_names, strict=True))
        for key in list(self._open.events):
            if key not in dwell:
                end = exits.get(key, ctx.ts_s)  # type: ignore[call-overload]
                ev = self._open.events[key]
                self._hyst.drop(key, end)
                entered = ev.start_ts_s - self.cfg.dwell_s
                zone = ev.zone_id if isinstance(ev, Loitering) else None
                closed = self._open.close(
                    key, end, dwell_s=end - entered, reason=self.reason(zone, end - entered)
                )
                if closed is not None:
                    out.append(closed)
        for (tid, zid), seconds in dwell.items():
            if classes.get(tid, "person") not in self.cfg.classes:
                continue
            if (tid, zid) in self._open.events:
                self._open.update((tid, zid), dwell_s=seconds, reason=self.reason(zid, seconds))
                continue
            if seconds >= self.cfg.dwell_s:
                start = ctx.ts_s - seconds + self.cfg.dwell_s
                self._hyst.update((tid, zid), 1.0, start)
                out.append(
                    self._open.open(
                        (tid, zid),
                        Loitering(
                            **_base(ctx, start),
                            severity=Severity.WARNING,
                            zone_id=zid,
                            track_ids=(tid,),
                            dwell_s=seconds,
                            reason=self.reason(zid, seconds),
                        ),
                    )
                )
        return out


def _loitering_reason(limit_s: float, zone_id: str | None, seconds: float) -> str:
    return f"stayed{_where(zone_id)} for {_duration(seconds)} (limit {_duration(limit_s)})"


class WrongWayRules(_PerTrackRule):
    """Sustained movement against a zone's ``allowed_direction`` (image space)."""

    def __init__(self, cfg: WrongWayRule, directions: dict[str, tuple[float, float]]) -> None:
        super().__init__()
        self.cfg = cfg
        self.directions = directions
        self._hyst = Hysteresis(
            cfg.max_angle_deg, cfg.exit_angle_deg, cfg.min_duration_s, release_s=0.5
        )

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""
        if not self.cfg.enabled or not self.directions:
            return []
        out = self._close_lost(ctx)
        min_speed = self.cfg.min_speed_m_s if ctx.homography else self.cfg.min_speed_px_s
        for i, tid in enumerate(ctx.tracks.ids.tolist()):
            track = ctx.history.tracks.get(tid)
            if track is None or len(track.samples) < 2:
                continue
            vel_px = track.velocity(self.cfg.window_s)
            speed = track.speed(self.cfg.window_s, ctx.homography)
            for j, zid in enumerate(ctx.zone_ids):
                if zid not in self.directions:
                    continue
                angle = 0.0
                if ctx.inside[i, j] and speed >= min_speed:
                    angle = float(angle_between_deg(vel_px, self.directions[zid])[0])
                ev = WrongWay(
                    **_base(ctx, ctx.ts_s),
                    severity=Severity.WARNING,
                    zone_id=zid,
                    track_ids=(tid,),
                    angle_deg=angle,
                    reason=(
                        f"moving {angle:.0f}° off the allowed direction of {zid} "
                        f"(limit {self.cfg.max_angle_deg:.0f}°, for at least "
                        f"{_duration(self.cfg.min_duration_s)})"
                    ),
                )
                done = self._transition(
                    (tid, zid), self._hyst.update((tid, zid), angle, ctx.ts_s), ev
                )
                if done is not None:
                    out.append(done)
        return out


@dataclass
class _FallState:
    fall_ts_s: float
    still_since_s: float | None


class FallRules(_PerTrackRule):
    """Box flips from tall to wide with a height drop, then the person stays still.

    1. Within ``max_fall_s``, a sample with height/width ≥ ``tall_ratio`` is followed by
       the current one with height/width ≤ ``wide_ratio`` and height shrunk by
       ``height_drop``: a fall candidate at this time.
    2. The box stays wide and the anchor moves slower than ``still_px_s`` for ``still_s``:
       the Fall opens (start = the flip). It closes when the box is tall again or lost.
    """

    def __init__(self, cfg: FallRule) -> None:
        super().__init__()
        self.cfg = cfg
        self._hyst = Hysteresis(1.0, 0.5)
        self._cand: dict[int, _FallState] = {}

    def reset(self) -> None:
        """Forget all state (open events are dropped, not closed)."""
        super().reset()
        self._cand.clear()

    def _flipped(self, track: Track) -> bool:
        cur = track.last
        if cur.width <= 0 or cur.height / cur.width > self.cfg.wide_ratio:
            return False
        for s in track.samples:
            if s.ts_s < cur.ts_s - self.cfg.max_fall_s or s.width <= 0:
                continue
            if (
                s.height / s.width >= self.cfg.tall_ratio
                and cur.height <= (1 - self.cfg.height_drop) * s.height
            ):
                return True
        return False

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""
        if not self.cfg.enabled:
            return []
        out = self._close_lost(ctx)
        for t in ctx.lost:
            self._cand.pop(t.track_id, None)
        for i, tid in enumerate(ctx.tracks.ids.tolist()):
            track = ctx.history.tracks.get(tid)
            if track is None or ctx.tracks.class_names[i] not in self.cfg.classes:
                continue
            cur = track.last
            ratio = cur.height / cur.width if cur.width > 0 else 0.0
            if self._hyst.is_active(tid):
                if ratio >= self.cfg.tall_ratio:  # got up
                    self._hyst.drop(tid, ctx.ts_s)
                    ev = self._open.close(tid, ctx.ts_s)
                    if ev is not None:
                        out.append(ev)
                continue
            cand = self._cand.get(tid)
            if cand is None:
                if self._flipped(track):
                    self._cand[tid] = _FallState(ctx.ts_s, None)
                continue
            # Small slack on "wide" so a box breathing around the ratio keeps the candidate.
            if ratio > self.cfg.wide_ratio * 1.15:
                del self._cand[tid]
                continue
            still = track.speed(0.5) < self.cfg.still_px_s
            if not still:
                cand.still_since_s = None
                continue
            if cand.still_since_s is None:
                cand.still_since_s = ctx.ts_s
            if ctx.ts_s - cand.still_since_s >= self.cfg.still_s:
                del self._cand[tid]
                self._hyst.update(tid, 1.0, ctx.ts_s)
                zones = ctx.zones_of(i)
                out.append(
                    self._open.open(
                        tid,
                        Fall(
                            **_base(ctx, cand.fall_ts_s),
                            severity=Severity.CRITICAL,
                            track_ids=(tid,),
                            zone_id=zones[0] if zones else None,
                            reason=(
                                "person went from upright to lying"
                                f"{_where(zones[0] if zones else None)} and has not moved "
                                f"for {_duration(ctx.ts_s - cand.fall_ts_s)}"
                            ),
                        ),
                    )
                )
        return out


class IntrusionRules(_PerTrackRule):
    """A restricted class inside a restricted zone (debounced in and out)."""

    def __init__(self, cfg: IntrusionRule, restricted: dict[str, list[str]]) -> None:
        super().__init__()
        self.cfg = cfg
        self.restricted = restricted
        self._hyst = Hysteresis(1.0, 0.5, cfg.min_duration_s, cfg.release_s)

    def update(self, ctx: FrameContext) -> list[Event]:
        """Feed one frame; returns the events opened, escalated or closed on it."""
        if not self.cfg.enabled or not self.restricted:
            return []
        out = self._close_lost(ctx)
        for i, tid in enumerate(ctx.tracks.ids.tolist()):
            name = ctx.tracks.class_names[i]
            for j, zid in enumerate(ctx.zone_ids):
                classes = self.restricted.get(zid)
                if classes is None or name not in classes:
                    continue
                ev = Intrusion(
                    **_base(ctx, ctx.ts_s),
                    severity=Severity.CRITICAL,
                    zone_id=zid,
                    track_ids=(tid,),
                    class_name=name,
                    reason=f"{name} inside {zid}, which is closed to {', '.join(classes)}",
                )
                tr = self._hyst.update((tid, zid), 1.0 if ctx.inside[i, j] else 0.0, ctx.ts_s)
                done = self._transition((tid, zid), tr, ev)
                if done is not None:
                    out.append(done)
        return out


def build_rules(scene: SceneConfig) -> list[Rule]:
    """The rules of one scene, in the order they run on each frame."""
    rules = scene.rules
    directions = {z.id: z.allowed_direction for z in scene.zones if z.allowed_direction}
    return [
        OvercrowdingRules(rules.overcrowding),
        CrowdSurgeRules(rules.crowd_surge),
        RunningRules(rules.running),
        DispersalRules(rules.dispersal),
        LoiteringRules(rules.loitering),
        WrongWayRules(rules.wrong_way, directions),
        FallRules(rules.fall),
        IntrusionRules(rules.intrusion, restricted_zones(scene.zones)),
    ]


def restricted_zones(zones: list[Any]) -> dict[str, list[str]]:
    """zone id → restricted classes, for restricted zones only."""
    return {z.id: list(z.restricted_classes) for z in zones if z.kind == ZoneKind.RESTRICTED}
