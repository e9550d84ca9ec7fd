"""Scene files: valid examples load; every kind of mistake is one clear ConfigError line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crowdsight.config.scene import SceneConfig, load_scene, parse_scene
from crowdsight.core.errors import ConfigError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "scenes").glob("*.yaml"))
ZONE = {"id": "z", "polygon": [[0, 0], [10, 0], [10, 10]]}
CAL = {
    "image_px": [[0, 0], [100, 0], [100, 100], [0, 100]],
    "ground_m": [[0, 0], [5, 0], [5, 5], [0, 5]],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load(path: Path) -> None:
    scene = load_scene(path)
    assert isinstance(scene, SceneConfig)
    assert scene.zones


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 2


def test_defaults_follow_still() -> None:
    rules = parse_scene({}).rules
    assert (rules.overcrowding.warn_per_m2, rules.overcrowding.critical_per_m2) == (4.0, 5.0)


def test_calibration_gives_area() -> None:
    scene = parse_scene({"calibration": CAL})
    assert scene.calibration is not None
    assert scene.calibration.homography().area_m2(CAL["image_px"]) == pytest.approx(25.0)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"zones": [{"id": "z", "polygon": [[0, 0], [1, 1]]}]}, "zones.0.polygon: a zone polygon"),
        ({"zones": [{"id": "z", "polygon": [[0, 0], [1, 1], [2, 2]]}]}, "zero area"),
        ({"zones": [ZONE, ZONE]}, "duplicate zone id(s): z"),
        ({"zones": [{**ZONE, "colour": "red"}]}, "zones.0.colour: Extra inputs"),
        ({"zones": [{**ZONE, "kind": "secret"}]}, "zones.0.kind"),
        ({"zones": [{**ZONE, "allowed_direction": [0, 0]}]}, "non-zero vector"),
        (  # a typo'd exponent: its area overflowed to infinity and the zone was accepted
            {"zones": [{"id": "z", "polygon": [[0, 0], [1e200, 0], [1e200, 1e200]]}]},
            "zones.0.polygon.1.0: Input should be less than or equal to 100000",
        ),
        ({"lines": [{"id": "l", "points": [[0, 0], [-3e5, 9]]}]}, "lines.0.points.1.0"),
        ({"resolution_wh": [0, 0]}, "resolution_wh.0: Input should be greater than or equal to 1"),
        ({"resolution_wh": [640, -480]}, "resolution_wh.1"),
        ({"lines": [{"id": "l", "points": [[1, 1], [1, 1]]}]}, "lines.0.points: the two"),
        (
            {"lines": [{"id": "l", "points": [[0, 0], [10, 0]], "in_direction": [5, 0]}]},
            "not be parallel",
        ),
        (
            {"calibration": {**CAL, "image_px": [[0, 0], [1, 1], [2, 2], [3, 3]]}},
            "calibration: image points are collinear",
        ),
        ({"calibration": {**CAL, "ground_m": CAL["ground_m"][:3]}}, "same number of points"),
        ({"rules": {"overcrowding": {"warn_per_m2": 6, "critical_per_m2": 5}}}, "critical_per_m2"),
        ({"rules": {"overcrowding": {"warn_per_mpx": 10}}}, "set both"),
        ({"rules": {"running": {"speed_m_s": -1}}}, "rules.running.speed_m_s"),
        ({"rules": {"anomaly": {"enter_score": 2, "exit_score": 3}}}, "exit_score"),
        ({"metrics": {"los_standard": "imperial"}}, "metrics.los_standard"),
        ([1, 2], "top level must be a mapping"),
    ],
)
def test_invalid_scene_is_one_line_config_error(data: Any, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scene(data, "cam.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("cam.yaml: ")
    assert needle in msg


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    p = tmp_path / "scene.yaml"
    p.write_text("zones:\n  - id: a\n    polygon: [[0, 0], [1, 0]\n")
    with pytest.raises(ConfigError, match=r"scene.yaml: invalid YAML at line \d+"):
        load_scene(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read scene file"):
        load_scene(tmp_path / "nope.yaml")


def test_every_field_is_described() -> None:
    from pydantic import BaseModel

    def walk(model: type[BaseModel], seen: set[type]) -> None:
        if model in seen:
            return
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", model.__name__
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, seen)
            for arg in getattr(ann, "__args__", ()):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    walk(arg, seen)

    walk(SceneConfig, set())


def test_floor_coordinates_may_be_large() -> None:
    """Metres in any frame (UTM northings are millions) stay allowed; only pixels are bounded."""
    utm = [[500_000 + x, 5_700_000 + y] for x, y in CAL["ground_m"]]
    scene = parse_scene({"calibration": {**CAL, "ground_m": utm}}, "cam.yaml")
    assert scene.calibration is not None  # was refused: "ground points are collinear"
    assert scene.calibration.homography().area_m2(CAL["image_px"]) == pytest.approx(25.0)
