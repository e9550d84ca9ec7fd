"""The add-camera form takes its bounds and defaults from the API schema, not from the page.

Each setting is declared once (`crowdsight.config.camera`); the page carries no number of its
own, so a bound changed in the config reaches the form through ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

import pytest

from crowdsight.cli.options import field_bounds
from crowdsight.store.records import Camera
from tests.browser.conftest import LiveServer
from tests.browser.test_dashboard import UI_WAIT_S, _q, _sign_in, _wait_for

FIELDS = {
    "detect_every": "add-camera-detect-every",
    "density_every_s": "add-camera-density-every-s",
}


def test_the_page_hard_codes_no_bound() -> None:
    from importlib.resources import files

    html = files("crowdsight.server").joinpath("static/index.html").read_text(encoding="utf-8")
    for name in FIELDS:
        tag = html[html.index(f'name="{name}"') :].split(">", 1)[0]
        assert "min=" not in tag and "max=" not in tag and "value=" not in tag, tag


@pytest.mark.browser
def test_form_bounds_come_from_the_api_schema(browser: Any, live_server: LiveServer) -> None:
    _sign_in(browser, live_server.url)
    _wait_for("the dashboard", lambda: _q(browser, "dashboard").is_displayed(), UI_WAIT_S)
    _q(browser, "add-camera-open").click()
    form = _q(browser, "add-camera-form")
    _wait_for("the schema", lambda: form.get_attribute("data-schema") == "loaded", UI_WAIT_S)
    for name, testid in FIELDS.items():
        field = Camera.model_fields[name]
        bounds = field_bounds(field)
        box = _q(browser, testid)
        assert float(box.get_attribute("min")) == bounds["ge"]
        assert float(box.get_attribute("max")) == bounds["le"]
        assert float(box.get_attribute("value")) == field.default
        assert box.get_attribute("title") == field.description
        # The browser now refuses what the API refuses.
        valid = "arguments[0].value = arguments[1]; return arguments[0].checkValidity();"
        assert browser.execute_script(valid, box, str(bounds["le"] + 1)) is False
        assert browser.execute_script(valid, box, str(bounds["le"])) is True
    browser.execute_script("arguments[0].reset();", form)  # back to the schema's defaults
    for name, testid in FIELDS.items():
        assert float(_q(browser, testid).get_property("value")) == Camera.model_fields[name].default
    _q(browser, "add-camera-cancel").click()
