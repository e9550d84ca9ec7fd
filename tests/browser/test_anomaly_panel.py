"""The camera card's anomaly panel in a real browser: "Learn normal now" for a few seconds,
the state going from learning to ready, and the anomaly score chart appearing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, add_looping_camera
from tests.browser.test_dashboard import _live_tile, _q, _wait_for

SCREENSHOT = Path("/tmp/crowdsight-anomaly-panel.png")
LEARN_WAIT_S = 120.0


@pytest.fixture(scope="module")
def ped2_camera(
    live_server: LiveServer, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Camera 'walkway' playing a UCSD Ped2 training clip (normal footage) in a loop."""
    if live_server.pipeline != "standard":
        pytest.skip("learning needs the detector: models are not installed")
    source = shared_data / "ucsd_ped2_train" / "frames" / "01"
    frames = sorted(source.glob("*.jpg"))
    if not frames:
        pytest.skip(f"no frames in {source}")
    return add_looping_camera(
        live_server, frames, tmp_path_factory, id="walkway", name="Walkway", density_every_s=30.0
    )


@pytest.mark.browser
@pytest.mark.data
def test_learn_normal_now_shows_learning_then_ready_and_the_score_chart(
    browser: Any, live_server: LiveServer, ped2_camera: str
) -> None:
    _, tile = _live_tile(browser, live_server, ped2_camera)
    state = _q(browser, "anomaly-state", tile)
    _wait_for("the anomaly state", lambda: "no learned normal" in state.text, 30)
    minutes = _q(browser, "anomaly-minutes", tile)
    minutes.clear()
    minutes.send_keys("0.05")  # three seconds of footage
    _q(browser, "anomaly-learn", tile).click()
    _wait_for("learning", lambda: state.text.startswith("learning"), 30)
    _wait_for("the model", lambda: state.get_attribute("data-state") == "ready", LEARN_WAIT_S)
    assert state.text.startswith("normal learned from 0:0")  # a few seconds of footage
    assert "objects" in state.text and "ready since" in state.text
    chart = _q(browser, "anomaly-chart", tile)
    _wait_for(
        "the score chart",
        lambda: chart.find_elements("css selector", "svg path[data-series='anomaly score']"),
        60,
    )
    assert chart.find_elements("css selector", "svg path[data-series='event threshold']")
    assert (live_server.data_dir / "anomaly" / ped2_camera / "model.npz").exists()
    tile.screenshot(str(SCREENSHOT))
