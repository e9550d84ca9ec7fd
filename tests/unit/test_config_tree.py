"""One config tree: each setting is declared once, and every mirror reads that declaration.

The CLI options, the API's camera schema (hence the dashboard form) and the pipeline settings
must show the bounds, defaults and description of the one field in `crowdsight.config`; a
bound changed there changes everywhere, and a bound written by hand somewhere else fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel, ValidationError

import crowdsight.cli.analyze  # importing a command module registers the command
import crowdsight.cli.bench
import crowdsight.cli.serve  # noqa: F401
from crowdsight.cli.apps import app as cli_app
from crowdsight.cli.options import field_bounds, setting_default
from crowdsight.config.camera import DensityEverySeconds, DetectEvery
from crowdsight.config.pipeline import (
    BundledDetector,
    OnnxDetector,
    PipelineSettings,
    live_defaults,
    with_runtime_env,
)
from crowdsight.config.runtime import DEFAULT_PROVIDERS, RuntimeConfig
from crowdsight.config.server import ServerSettings
from crowdsight.store.records import Camera

LIVE = live_defaults()

#: (command, option parameter, model, field, the preset the option's default mirrors).
MIRRORED: list[tuple[str, str, type[BaseModel], str, Any]] = [
    ("analyze", "density", PipelineSettings, "density", PipelineSettings),
    ("analyze", "density_every_s", PipelineSettings, "density_every_s", PipelineSettings),
    ("analyze", "density_every_n", PipelineSettings, "density_every_n", PipelineSettings),
    ("analyze", "detect", PipelineSettings, "detect", PipelineSettings),
    ("analyze", "detect_every", PipelineSettings, "detect_every", PipelineSettings),
    ("analyze", "slicing", PipelineSettings, "slicing", PipelineSettings),
    ("analyze", "describe", PipelineSettings, "describe", PipelineSettings),
    ("analyze", "redact", PipelineSettings, "redact", PipelineSettings),
    ("analyze", "backend", RuntimeConfig, "backend", RuntimeConfig),
    ("analyze", "detector", PipelineSettings, "detector", None),
    ("analyze", "classes", OnnxDetector, "classes", OnnxDetector),
    ("bench", "density", PipelineSettings, "density", LIVE),
    ("bench", "density_every_s", PipelineSettings, "density_every_s", LIVE),
    ("bench", "density_async", PipelineSettings, "density_async", LIVE),
    ("bench", "detector_threads", PipelineSettings, "detector_threads", LIVE),
    ("bench", "detect_ahead", PipelineSettings, "detect_ahead", LIVE),
    ("bench", "density_threads", PipelineSettings, "density_threads", LIVE),
    ("bench", "backend", RuntimeConfig, "backend", RuntimeConfig),
    ("serve", "port", ServerSettings, "port", None),
    ("serve", "host", ServerSettings, "host", None),
    ("serve", "data_dir", ServerSettings, "data_dir", None),
]


def _param(command: str, name: str) -> Any:
    """The click parameter behind a typer option (typer builds click objects)."""
    group: Any = typer.main.get_command(cli_app)
    return next(p for p in group.commands[command].params if p.name == name)


def _click_bounds(param: Any) -> dict[str, float]:
    """The range a numeric option accepts (``{}`` when unbounded)."""
    return {k: v for k in ("min", "max") if (v := getattr(param, k, None)) is not None}


@pytest.mark.parametrize(("command", "option", "model", "field", "preset"), MIRRORED)
def test_cli_option_mirrors_its_setting(
    command: str, option: str, model: type[BaseModel], field: str, preset: Any
) -> None:
    param = _param(command, option)
    info = model.model_fields[field]
    bounds = field_bounds(info)
    expected: dict[str, float] = {}
    if "ge" in bounds or "gt" in bounds:
        expected["min"] = bounds.get("ge", bounds.get("gt", 0))
    if "le" in bounds or "lt" in bounds:
        expected["max"] = bounds.get("le", bounds.get("lt", 0))
    assert _click_bounds(param) == expected
    assert info.description and (param.help or "").startswith(info.description)
    if preset is not None:
        assert param.default == setting_default(preset, field)


def test_the_detector_option_defaults_to_the_settings_detector() -> None:
    assert PipelineSettings(detector=_param("analyze", "detector").default) == PipelineSettings()
    assert PipelineSettings(detector=_param("bench", "detector").default).detector == LIVE.detector


def test_density_every_s_has_one_set_of_bounds() -> None:
    """The six places of the review: pipeline, record, CLIs, API schema, form (via schema)."""
    pipe = PipelineSettings.model_json_schema()["properties"]
    cam = Camera.model_json_schema()["properties"]
    for name in ("density_every_s", "detect_every"):
        keys = ("minimum", "maximum", "description", "default")
        assert {k: pipe[name].get(k) for k in keys} == {k: cam[name].get(k) for k in keys}
    assert (cam["density_every_s"]["minimum"], cam["density_every_s"]["maximum"]) == (0, 3600)
    assert (cam["detect_every"]["minimum"], cam["detect_every"]["maximum"]) == (1, 1000)
    assert _click_bounds(_param("analyze", "density_every_s")) == {"min": 0, "max": 3600}
    assert _click_bounds(_param("bench", "density_every_s")) == {"min": 0, "max": 3600}


def test_api_camera_schema_carries_the_bounds(tmp_path: Path) -> None:
    from crowdsight.server.app import create_app

    http = create_app(ServerSettings(database_url=f"sqlite:///{tmp_path / 'cs.db'}"))
    props = http.openapi()["components"]["schemas"]["Camera"]["properties"]
    for name, alias in (("detect_every", DetectEvery), ("density_every_s", DensityEverySeconds)):
        bounds = field_bounds(Camera.model_fields[name])
        assert (props[name]["minimum"], props[name]["maximum"]) == (bounds["ge"], bounds["le"])
        assert props[name]["description"] == alias.__metadata__[0].description


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--density-every-s", "-1"], "--density-every-s"),
        (["--density-every-s", "3601"], "--density-every-s"),
        (["--detect-every", "0"], "--detect-every"),
        (["--slicing", "sometimes"], "--slicing"),
        (["--detector", "yolo"], "unknown detector"),
    ],
)
def test_cli_refuses_what_the_model_refuses(args: list[str], needle: str) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app, ["analyze", "in.mp4", *args])
    assert result.exit_code == 2
    assert needle in result.output


@pytest.mark.parametrize(
    ("given", "expected", "raises"),
    [
        ("nanodet", BundledDetector(type="nanodet"), None),
        ("SSDLite", BundledDetector(type="ssdlite"), None),
        ("nanodet+ssdlite", BundledDetector(type="nanodet+ssdlite"), None),
        ("/m/yolo.onnx", OnnxDetector(path=Path("/m/yolo.onnx")), None),
        (
            {"type": "onnx", "path": "y.onnx", "classes": "names.txt"},
            OnnxDetector(path=Path("y.onnx"), classes=Path("names.txt")),
            None,
        ),
        ("yolo", None, "unknown detector 'yolo': use nanodet, ssdlite, nanodet\\+ssdlite or"),
        ({"type": "yolo"}, None, "does not match any of the expected tags"),
        ({"type": "onnx"}, None, "path"),
        ({"type": "nanodet", "path": "x.onnx"}, None, "Extra inputs"),
    ],
)
def test_detector_is_a_typed_choice(given: Any, expected: Any, raises: str | None) -> None:
    if raises is not None:
        with pytest.raises(ValidationError, match=raises):
            PipelineSettings(detector=given)
        return
    settings = PipelineSettings(detector=given)
    assert settings.detector == expected
    assert PipelineSettings.model_validate(settings.model_dump(mode="json")) == settings


def test_environment_is_read_only_at_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDSIGHT_PROVIDERS", "CPUExecutionProvider")
    monkeypatch.setenv("CROWDSIGHT_ORT_SPIN", "1")
    deep = PipelineSettings()  # validation reads no environment
    assert (deep.runtime.providers, deep.runtime.spin) == (DEFAULT_PROVIDERS, False)
    edge = with_runtime_env(deep)
    assert (edge.runtime.providers, edge.runtime.spin) == (("CPUExecutionProvider",), True)
    chosen = PipelineSettings(runtime=RuntimeConfig(providers=("CUDAExecutionProvider",)))
    assert with_runtime_env(chosen).runtime.providers == ("CUDAExecutionProvider",)


def test_serve_config_applies_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crowdsight.config.serve import load_serve_config

    monkeypatch.setenv("CROWDSIGHT_PROVIDERS", "CPUExecutionProvider")
    assert load_serve_config(None).runner.pipeline.runtime.providers == ("CPUExecutionProvider",)
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("runner:\n  pipeline:\n    detector: ssdlite\n    detect_every: 2\n")
    loaded = load_serve_config(cfg).runner.pipeline
    assert loaded.detector == BundledDetector(type="ssdlite") and loaded.detect_every == 2
    assert loaded.runtime.providers == ("CPUExecutionProvider",)
    cfg.write_text("runner: {pipeline: {detector: {type: onnx, path: m/y.onnx, classes: c.txt}}}")
    onnx = load_serve_config(cfg).runner.pipeline.detector
    assert onnx == OnnxDetector(path=tmp_path / "m/y.onnx", classes=tmp_path / "c.txt")


def test_config_sits_below_everything_but_core() -> None:
    """`crowdsight.config` imports only itself and `core` (the serve root also lists cameras)."""
    from tests.unit.test_import_graph import import_graph

    allowed_extra = {"crowdsight.config.serve": {"crowdsight.store.records"}}
    graph = import_graph()
    bad = {
        module: sorted(
            dep
            for dep in deps - allowed_extra.get(module, set())
            if not dep.startswith(("crowdsight.config", "crowdsight.core"))
        )
        for module, deps in graph.items()
        if module.startswith("crowdsight.config")
    }
    assert {m: d for m, d in bad.items() if d} == {}
