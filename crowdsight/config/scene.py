"""Scene configuration of one camera: zones, lines, ground-plane calibration and rules.

A scene file is YAML validated by the pydantic models below (``extra="forbid"``: a typo is
an error, not a silently ignored key). Coordinates are image pixels at ``resolution_wh``
(the resolution the polygons were drawn on); analytics rescale them to the frames they see.

Example (see ``examples/scenes/`` for complete files)::

    resolution_wh: [1280, 720]
    zones:
      - id: concourse
        polygon: [[100, 300], [1200, 300], [1200, 700], [100, 700]]
    lines:
      - id: gate
        points: [[600, 200], [600, 700]]
        in_direction: [1, 0]
    rules:
      overcrowding: {warn_per_m2: 4, critical_per_m2: 5}

Load it with `load_scene`, which turns any problem into a one-line `ConfigError`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crowdsight.core.errors import ConfigError, validation_line
from crowdsight.core.geometry import Homography, polygon_area

Point = tuple[float, float]
#: Largest image coordinate a scene accepts, in pixels. No camera is 100,000 px wide; a zone may
#: reach past the image edge, but 1e200 is a typo (and a polygon's area overflows to infinity).
MAX_PIXEL = 1e5
Pixel = Annotated[float, Field(ge=-MAX_PIXEL, le=MAX_PIXEL)]
#: A point or vector in image pixels (floor coordinates in metres stay `Point`: any frame,
#: UTM included).
ImagePoint = tuple[Pixel, Pixel]
#: A width or height in pixels (a scene drawn at 0×0 made every rescale a division by zero).
PixelCount = Annotated[int, Field(ge=1, le=int(MAX_PIXEL))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ZoneKind(StrEnum):
    """What a zone is for."""

    NORMAL = "normal"
    RESTRICTED = "restricted"


class LosStandard(StrEnum):
    """Which walkway level-of-service table grades density (see REFERENCES.md)."""

    FRUIN = "fruin"
    HCM = "hcm"


class Zone(_Model):
    """An area of the image measured on its own (occupancy, dwell, flows, rules)."""

    id: str = Field(min_length=1, description="Stable identifier used in events and metrics.")
    name: str = Field("", description="Human-readable name shown on the dashboard.")
    polygon: list[ImagePoint] = Field(
        description="Vertices [[x, y], ...] in image pixels at the scene's resolution_wh."
    )
    kind: ZoneKind = Field(
        ZoneKind.NORMAL,
        description="'normal' or 'restricted' (restricted: listed classes raise Intrusion).",
    )
    restricted_classes: list[str] = Field(
        default_factory=lambda: ["person"],
        description="Classes that must not enter a restricted zone (ignored for normal zones).",
    )
    allowed_direction: ImagePoint | None = Field(
        None,
        description="Image-space vector [dx, dy] of the permitted walking direction; tracks "
        "moving against it raise WrongWay. None disables wrong-way in this zone.",
    )

    @field_validator("polygon")
    @classmethod
    def _polygon_ok(cls, v: list[ImagePoint]) -> list[ImagePoint]:
        if len(v) < 3:
            raise ValueError("a zone polygon needs at least 3 points")
        if polygon_area(v) <= 0:
            raise ValueError("the zone polygon has zero area")
        return v

    @field_validator("allowed_direction")
    @classmethod
    def _direction_ok(cls, v: ImagePoint | None) -> ImagePoint | None:
        if v is not None and np.hypot(*v) == 0:
            raise ValueError("allowed_direction must be a non-zero vector")
        return v


class Line(_Model):
    """A counting line: tracks crossing it are counted in or out."""

    id: str = Field(min_length=1, description="Stable identifier used in events and metrics.")
    name: str = Field("", description="Human-readable name shown on the dashboard.")
    points: tuple[ImagePoint, ImagePoint] = Field(
        description="The two end points [[x1, y1], [x2, y2]] in image pixels."
    )
    in_direction: ImagePoint | None = Field(
        None,
        description="Vector [dx, dy] pointing to the 'in' side; None: the left of "
        "point 1 → point 2 as seen on screen.",
    )
    classes: list[str] | None = Field(
        None, description="Only count these classes (None: every class)."
    )

    @field_validator("points")
    @classmethod
    def _distinct(cls, v: tuple[ImagePoint, ImagePoint]) -> tuple[ImagePoint, ImagePoint]:
        if np.allclose(v[0], v[1]):
            raise ValueError("the two line points must differ")
        return v

    @model_validator(mode="after")
    def _direction_not_along(self) -> Self:
        if self.in_direction is not None:
            d = np.subtract(self.points[1], self.points[0])
            cross = d[0] * self.in_direction[1] - d[1] * self.in_direction[0]
            if abs(cross) < 1e-9:
                raise ValueError("in_direction must not be parallel to the line")
        return self

    @property
    def in_side(self) -> int:
        """+1 when 'in' is the left of point 1 → point 2 (positive side_of_line), else -1."""
        if self.in_direction is None:
            return 1
        d = np.subtract(self.points[1], self.points[0])
        cross = d[0] * self.in_direction[1] - d[1] * self.in_direction[0]
        return 1 if cross > 0 else -1


class Calibration(_Model):
    """Ground-plane calibration: image points with their positions on the floor in metres."""

    image_px: list[ImagePoint] = Field(
        description="At least 4 image points [[x, y], ...] on the floor."
    )
    ground_m: list[Point] = Field(
        description="The same points' floor coordinates in metres, in the same order."
    )

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if len(self.image_px) != len(self.ground_m):
            raise ValueError("image_px and ground_m must have the same number of points")
        if len(self.image_px) < 4:
            raise ValueError("calibration needs at least 4 point pairs")
        Homography.fit(self.image_px, self.ground_m)  # raises ValueError when degenerate
        return self

    def homography(self) -> Homography:
        """The image→ground mapping."""
        return Homography.fit(self.image_px, self.ground_m)


class OvercrowdingRule(_Model):
    """Density above a threshold for a sustained time, judged per zone.

    Draw a zone over the floor area to watch: per-m² needs the zone's ground area (from
    the calibration), and the per-megapixel fallback needs its image area.
    """

    enabled: bool = Field(True, description="Raise Overcrowding events.")
    warn_per_m2: float = Field(
        4.0, gt=0, description="Warning at this many persons/m² (Still: warn near 4/m²)."
    )
    critical_per_m2: float = Field(
        5.0, gt=0, description="Critical at this many persons/m² (Still: act at 5/m²)."
    )
    warn_per_mpx: float | None = Field(
        None,
        gt=0,
        description="Uncalibrated fallback: warning at this many people per megapixel of "
        "zone area (None: no overcrowding events without calibration).",
    )
    critical_per_mpx: float | None = Field(
        None, gt=0, description="Uncalibrated fallback: critical per megapixel."
    )
    exit_ratio: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Hysteresis: the event ends when density falls below exit_ratio × warn.",
    )
    min_duration_s: float = Field(
        5.0, ge=0, description="Density must stay above warn this long before the event opens."
    )
    max_quiet_s: float = Field(
        30.0,
        gt=0,
        description="An open event whose zone has had no people estimate for this long "
        "closes at the last estimate (a stalled density model or a zone that vanished).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.critical_per_m2 < self.warn_per_m2:
            raise ValueError("critical_per_m2 must be >= warn_per_m2")
        if (self.warn_per_mpx is None) != (self.critical_per_mpx is None):
            raise ValueError("set both warn_per_mpx and critical_per_mpx, or neither")
        if (
            self.warn_per_mpx
            and self.critical_per_mpx
            and self.critical_per_mpx < self.warn_per_mpx
        ):
            raise ValueError("critical_per_mpx must be >= warn_per_mpx")
        return self


class CrowdSurgeRule(_Model):
    """A fast rise of a zone's crowd: people pouring in within seconds, judged per zone.

    The rise is the zone's density now minus its lowest density in the last ``window_s``.
    Defaults are chosen a priori from Fruin's walkway levels of service (REFERENCES.md):
    each level spans roughly 0.3-1.1 persons/m² (C 0.43-0.71, D 0.71-1.08, E 1.08-2.17),
    so +1 person/m² within 10 s skips one to two levels in seconds, and the surge only
    counts once the zone has reached level E (1.08 persons/m², 0.93 m² per person) where
    free movement is lost. No figure was tuned on any data set.
    """

    enabled: bool = Field(True, description="Raise CrowdSurge events.")
    window_s: float = Field(
        10.0, gt=0, description="The rise is measured against the lowest density this long ago."
    )
    rise_per_m2: float = Field(
        1.0, gt=0, description="Surge when density rose by this many persons/m² in the window."
    )
    min_density_per_m2: float = Field(
        1.08, ge=0, description="...and the zone is at least this dense (Fruin LoS E)."
    )
    rise_count: float | None = Field(
        None,
        gt=0,
        description="Uncalibrated fallback: surge when the zone gained this many people in "
        "the window (None: no surge events without calibration).",
    )
    exit_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Hysteresis: the event ends when the rise falls below exit_ratio × rise.",
    )
    min_duration_s: float = Field(
        1.0, ge=0, description="The rise must hold this long before the event opens."
    )


class RunningRule(_Model):
    """A track moving much faster than walking, for a sustained time."""

    enabled: bool = Field(True, description="Raise Running events.")
    speed_m_s: float | None = Field(
        3.0,
        gt=0,
        description="Absolute threshold in m/s with calibration (walking is ~1.3 m/s).",
    )
    speed_px_s: float | None = Field(
        None, gt=0, description="Absolute threshold in px/s for uncalibrated cameras."
    )
    relative_k: float | None = Field(
        6.0,
        gt=0,
        description="Relative threshold: scene baseline median + k·MAD of recent track "
        "speeds; the larger of absolute and relative applies (None: absolute only).",
    )
    min_baseline_samples: int = Field(
        50, ge=1, description="Speed samples needed before the relative threshold applies."
    )
    exit_ratio: float = Field(
        0.8, gt=0, le=1, description="Hysteresis: ends below exit_ratio × threshold."
    )
    min_duration_s: float = Field(
        0.8, ge=0, description="Speed must stay above the threshold this long."
    )
    window_s: float = Field(
        0.5, gt=0, description="Look-back window over which speed is measured (jitter vs lag)."
    )
    min_evidence: int = Field(
        3,
        ge=1,
        description="Speed measurements in a row (one per detector frame) above the threshold "
        "before the event opens, besides min_duration_s. One wrong association (a track "
        "jumping to a neighbour) makes one fast measurement, a track flipping between two "
        "people two; at a low frame rate they are seconds apart, so min_duration_s alone "
        "does not filter them.",
    )
    max_gap_s: float = Field(
        1.0,
        gt=0,
        description="Speeds measured between two sightings of a track further apart than this "
        "are not judged: in 1 s a walker covers ~1.3 m, more than the ~1 m between people in "
        "a moderately dense crowd, so a longer jump is as likely the tracker swapping to a "
        "neighbour as a runner. A camera whose detector runs less often than this gets a "
        "standing warning instead of running events.",
    )


class DispersalRule(_Model):
    """Many tracks suddenly moving away from the crowd's centroid."""

    enabled: bool = Field(True, description="Raise Dispersal events.")
    min_tracks: int = Field(5, ge=2, description="Tracks needed to judge a crowd.")
    radial_speed_m_s: float = Field(
        1.5, gt=0, description="Mean outward speed from the centroid (m/s, calibrated)."
    )
    radial_speed_px_s: float = Field(
        60.0, gt=0, description="Mean outward speed from the centroid (px/s, uncalibrated)."
    )
    jump_ratio: float = Field(
        3.0, gt=1, description="Outward speed must also exceed jump_ratio × its recent mean."
    )
    min_outward_fraction: float = Field(
        0.7, gt=0, le=1, description="Fraction of tracks that must be moving outward."
    )
    min_duration_s: float = Field(0.3, ge=0, description="Condition must hold this long.")
    exit_ratio: float = Field(0.5, gt=0, le=1, description="Hysteresis on the outward speed.")
    window_s: float = Field(0.5, gt=0, description="Velocity look-back window.")


class LoiteringRule(_Model):
    """A track staying in one zone for too long."""

    enabled: bool = Field(True, description="Raise Loitering events.")
    dwell_s: float = Field(60.0, gt=0, description="Time in a zone that counts as loitering.")
    classes: list[str] = Field(
        default_factory=lambda: ["person"], description="Classes the rule applies to."
    )


class WrongWayRule(_Model):
    """Sustained movement against a zone's allowed_direction."""

    enabled: bool = Field(True, description="Raise WrongWay events in zones with a direction.")
    max_angle_deg: float = Field(
        120.0,
        gt=90,
        le=180,
        description="Movement this far (degrees) from the allowed direction is counter-flow.",
    )
    exit_angle_deg: float = Field(
        100.0, gt=0, le=180, description="Hysteresis: ends when the angle falls below this."
    )
    min_speed_m_s: float = Field(0.4, ge=0, description="Ignore slower tracks (m/s, calibrated).")
    min_speed_px_s: float = Field(15.0, ge=0, description="Ignore slower tracks (px/s).")
    min_duration_s: float = Field(1.5, ge=0, description="Counter-flow must last this long.")
    window_s: float = Field(1.0, gt=0, description="Velocity look-back window.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.exit_angle_deg > self.max_angle_deg:
            raise ValueError("exit_angle_deg must be <= max_angle_deg")
        return self


class FallRule(_Model):
    """A person's box turns from tall to wide with a height drop, then stays still."""

    enabled: bool = Field(True, description="Raise Fall events.")
    tall_ratio: float = Field(
        1.2, gt=0, description="Standing: box height/width at least this (before the fall)."
    )
    wide_ratio: float = Field(
        0.9, gt=0, description="Fallen: box height/width at most this (after the fall)."
    )
    height_drop: float = Field(
        0.4, gt=0, lt=1, description="Box height must shrink by at least this fraction."
    )
    max_fall_s: float = Field(2.0, gt=0, description="The flip must happen within this time.")
    still_s: float = Field(2.0, ge=0, description="Then the person must stay still this long.")
    still_px_s: float = Field(
        10.0, ge=0, description="'Still' means the anchor moves slower than this (px/s)."
    )
    classes: list[str] = Field(
        default_factory=lambda: ["person"], description="Classes the rule applies to."
    )


class IntrusionRule(_Model):
    """A restricted class inside a restricted zone."""

    enabled: bool = Field(True, description="Raise Intrusion events.")
    min_duration_s: float = Field(
        0.5, ge=0, description="Presence must last this long (filters detector blips)."
    )
    release_s: float = Field(
        1.0, ge=0, description="The event ends after the track has been out this long."
    )


class AnomalyRule(_Model):
    """Objects and motion unlike the camera's normal footage (`crowdsight.analytics.anomaly`).

    Two models feed one event path. The *object* model (learned from a normal period of this
    camera: ``learn_for_s`` here, or the "Learn normal now" action of the API/dashboard) names
    the abnormal object and why; while a camera has none, the label-free *cell* model (motion
    against the stream's own recent past) scores when ``enabled``.

    Example::

        anomaly: {learn_from: "2026-03-02T07:00:00Z", learn_for_s: 600}
    """

    enabled: bool = Field(
        False,
        description="Run the label-free motion (cell) model while the camera has no learned "
        "object model (costs CPU). A learned object model scores whatever this says.",
    )
    learn_from: datetime | None = Field(
        None,
        description="Start of the calibration window (ISO 8601 with a timezone, e.g. "
        "2026-03-02T07:00:00Z): the objects seen from then for learn_for_s seconds become this "
        "camera's normal. Live cameras (frames stamped with the wall clock).",
    )
    learn_for_s: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Length of the calibration window in seconds. Without learn_from: the "
        "first learn_for_s seconds the camera runs, when it has no object model yet.",
    )
    objects_enter_score: float = Field(
        5.0,
        gt=0,
        description="Object model: open an Anomaly event when the most abnormal object scores "
        "above this (1.0 = the 99th percentile of normal objects on one attribute; 5 is fixed "
        "a priori, not tuned on test labels).",
    )
    objects_exit_score: float = Field(
        3.0, gt=0, description="Object model: close it when the score falls below this."
    )
    work_width: int = Field(
        180, ge=32, description="Frames are downscaled to this width before optical flow."
    )
    cell_px: int = Field(
        15, ge=2, description="Grid cell size at work width (about one person's size)."
    )
    warmup_s: float = Field(
        30.0, ge=0, description="Training-free mode: seconds of footage that seed the baseline."
    )
    enter_score: float = Field(
        8.0, gt=0, description="Open an Anomaly event when the robust z-score exceeds this."
    )
    exit_score: float = Field(5.0, gt=0, description="Close it when the score falls below this.")
    min_duration_s: float = Field(1.0, ge=0, description="Score must stay high this long.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.exit_score > self.enter_score:
            raise ValueError("exit_score must be <= enter_score")
        if self.objects_exit_score > self.objects_enter_score:
            raise ValueError("objects_exit_score must be <= objects_enter_score")
        if self.learn_from is not None:
            if self.learn_for_s is None:
                raise ValueError("learn_from needs learn_for_s (the window's length in seconds)")
            if self.learn_from.tzinfo is None:
                raise ValueError("learn_from needs a timezone, e.g. 2026-03-02T07:00:00Z or +01:00")
        return self

    @property
    def learn_window(self) -> tuple[float | None, float] | None:
        """(start as epoch seconds or None for "when the camera starts", length in s)."""
        if self.learn_for_s is None:
            return None
        start = self.learn_from.timestamp() if self.learn_from is not None else None
        return start, self.learn_for_s


class Rules(_Model):
    """Thresholds of every event rule (each has sensible defaults)."""

    overcrowding: OvercrowdingRule = Field(
        default_factory=OvercrowdingRule, description="Overcrowding thresholds."
    )
    crowd_surge: CrowdSurgeRule = Field(
        default_factory=CrowdSurgeRule, description="Crowd-surge thresholds."
    )
    running: RunningRule = Field(default_factory=RunningRule, description="Running thresholds.")
    dispersal: DispersalRule = Field(
        default_factory=DispersalRule, description="Sudden-dispersal thresholds."
    )
    loitering: LoiteringRule = Field(
        default_factory=LoiteringRule, description="Loitering thresholds."
    )
    wrong_way: WrongWayRule = Field(
        default_factory=WrongWayRule, description="Wrong-way thresholds."
    )
    fall: FallRule = Field(default_factory=FallRule, description="Fall thresholds.")
    intrusion: IntrusionRule = Field(
        default_factory=IntrusionRule, description="Intrusion thresholds."
    )
    anomaly: AnomalyRule = Field(default_factory=AnomalyRule, description="Anomaly model.")
    zone_events: bool = Field(
        True, description="With occupancy_items: emit ZoneEntered / ZoneExited events."
    )
    occupancy_items: bool = Field(
        False,
        description="Emit zone entered/exited and line crossed as timeline events. Off by "
        "default: they are counts and metrics (occupancy, line in/out), and one item per "
        "person would drown the safety events.",
    )


class MetricsSettings(_Model):
    """How metrics are computed and aggregated."""

    los_standard: LosStandard = Field(
        LosStandard.FRUIN, description="Level-of-service table: 'fruin' or 'hcm'."
    )
    interval_s: float = Field(
        60.0, gt=0, description="Time-series aggregation interval in seconds."
    )
    heatmap_cell_px: int = Field(
        16, ge=1, description="Cell size of the accumulated occupancy heatmap (px)."
    )
    occupancy_source: str = Field(
        "auto",
        pattern="^(auto|tracks|density)$",
        description="Zone occupancy from 'tracks', 'density', or 'auto' (density when a "
        "map exists, else tracks).",
    )


class CountingSettings(_Model):
    """How this camera's counts are corrected."""

    calibration: Path | None = Field(
        None,
        description="Count calibration JSON fitted on this camera's labelled frames "
        "(`crowdsight calibrate counting`): its refitted output layer is used by the density "
        "model, or its row gains multiply every density map, before fusion, so the heatmap "
        "shows the calibrated density. Absolute, or relative to the "
        "working directory. None: no correction.",
    )


class SceneConfig(_Model):
    """Everything crowdsight knows about one camera's view."""

    resolution_wh: tuple[PixelCount, PixelCount] | None = Field(
        None,
        description="(width, height) the coordinates were drawn at; None: the frames' own.",
    )
    zones: list[Zone] = Field(default_factory=list, description="Measured areas.")
    lines: list[Line] = Field(default_factory=list, description="Counting lines.")
    calibration: Calibration | None = Field(
        None, description="Ground-plane calibration (per m² densities and m/s speeds)."
    )
    rules: Rules = Field(default_factory=Rules, description="Event rules and thresholds.")
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Metric settings."
    )
    counting: CountingSettings = Field(
        default_factory=CountingSettings, description="Per-camera count corrections."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        for what, items in (("zone", self.zones), ("line", self.lines)):
            ids = [i.id for i in items]
            dup = {i for i in ids if ids.count(i) > 1}
            if dup:
                raise ValueError(f"duplicate {what} id(s): {', '.join(sorted(dup))}")
        return self

    @property
    def is_empty(self) -> bool:
        """True for a scene given as ``{}``: the camera gets counts and density only.

        A scene that names any key (even ``rules: {}``) runs the analytics, as its
        defaults then apply; what was given is pydantic's ``model_fields_set``.
        """
        return not self.model_fields_set

    def zone(self, zone_id: str) -> Zone:
        """The zone with this id (KeyError if absent)."""
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)


def parse_scene(data: Any, source: str = "scene") -> SceneConfig:
    """Validate an already-parsed mapping; problems become a one-line `ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    try:
        return SceneConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_line(source, exc)) from None


def load_scene(path: Path | str) -> SceneConfig:
    """Read and validate a scene YAML file.

    Raises:
        ConfigError: One line naming the file, the field path and the problem, e.g.
            ``scene.yaml: zones.0.polygon: a zone polygon needs at least 3 points``.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read scene file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{p}: invalid YAML{where}: {problem}") from None
    return parse_scene(data, str(p))
