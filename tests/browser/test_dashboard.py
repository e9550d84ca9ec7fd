"""The dashboard in a real browser, against the real server, runner and camera pipeline.

One camera plays a few real frames of the Mall dataset in a loop (symlinked into a temp
folder, never copied into the repository). The tests sign in like an operator would, watch
the live tile, and check that an event recorded while the page is open shows up in the
timeline, with its snapshot, and that the description search narrows it down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from crowdsight.core.events import LineCrossed, Overcrowding, Severity, ZoneEntered
from crowdsight.perception.count_calibration import CountCalibration, save_calibration
from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, add_looping_camera

SCREENSHOT = Path("/tmp/dashboard.png")
FRAMES = 8
# Waits are upper bounds for slow CI machines, not assertions about speed.
FIRST_FRAME_WAIT_S = 240.0
UI_WAIT_S = 30.0
# Track ids of the events the test records: far above the ids the live pipeline hands out
# meanwhile, so its own descriptions never overwrite the test's.
RED_TRACK, BLUE_TRACK = 900_007, 900_008


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.25)


#: A stored (not running) camera whose zone-to-zone flows the test records itself.
FLOW_CAMERA = "plaza"
FLOW_SCENE = {
    "resolution_wh": [640, 480],
    "zones": [
        {"id": zone, "polygon": [[x, 0], [x + 200, 0], [x + 200, 480], [x, 480]]}
        for zone, x in (("entrance", 0), ("shops", 210), ("food", 420))
    ],
}
#: The dashboard re-reads the camera list every 10 s.
POLL_CAMERAS_WAIT_S = 40.0


#: Two uncalibrated zones and a counting line, as in examples/serve.yaml.
MALL_SCENE = {
    "resolution_wh": [640, 480],
    "zones": [
        {"id": "walkway", "polygon": [[0, 150], [640, 150], [640, 280], [0, 280]]},
        {"id": "concourse", "polygon": [[0, 280], [640, 280], [640, 480], [0, 480]]},
    ],
    "lines": [{"id": "shopfront", "points": [[330, 140], [330, 480]], "in_direction": [1, 0]}],
}


@pytest.fixture(scope="module")
def mall_camera(
    live_server: LiveServer, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Camera 'mall' playing the first frames of the Mall dataset in a loop."""
    source = shared_data / "mall" / "frames"
    frames = sorted(source.glob("*.jpg"))[:FRAMES]
    if len(frames) < FRAMES:
        pytest.skip(f"need {FRAMES} frames in {source}")
    # A count calibration as `crowdsight calibrate counting` writes one (gain 1: counts as is).
    calibration = tmp_path_factory.mktemp("count") / "mall_calibration.json"
    save_calibration(
        CountCalibration(
            resolution_wh=(640, 480),
            gains=[1.0],
            target="total",
            data="test",
            frames="range 1-200, every 5",
            n_frames=40,
            cv_mae_calibrated=2.9,
        ),
        calibration,
    )
    return add_looping_camera(
        live_server,
        frames,
        tmp_path_factory,
        id="mall",
        name="Mall concourse",
        detect_every=2,
        density_every_s=2.0,
        scene={**MALL_SCENE, "counting": {"calibration": str(calibration)}},
    )


def _first_frame(server: LiveServer, camera_id: str) -> bytes:
    """Wait for the camera's first live JPEG; fail early, with the reason, if it keeps dying."""
    runner = server.app.state.runner

    def check() -> bytes | None:
        jpeg: bytes | None = runner.latest_jpeg(camera_id)
        status = runner.cameras_status().get(camera_id, {})
        if jpeg is None and status.get("restarts", 0) >= 3:
            pytest.fail(
                f"camera {camera_id!r} keeps failing ({server.pipeline} pipeline): "
                f"{status.get('error')}"
            )
        return jpeg

    jpeg: bytes = _wait_for(f"a first frame from {camera_id!r}", check, FIRST_FRAME_WAIT_S)
    return jpeg


def _q(driver: Any, testid: str, root: Any = None) -> Any:
    from selenium.webdriver.common.by import By

    return (root or driver).find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")


def _sign_in(
    driver: Any, url: str, password: str = ADMIN_PASSWORD, username: str = "admin"
) -> None:
    driver.delete_all_cookies()
    driver.get(url)
    _wait_for("the sign-in form", lambda: _q(driver, "login-view").is_displayed(), UI_WAIT_S)
    _q(driver, "login-username").clear()
    _q(driver, "login-username").send_keys(username)
    _q(driver, "login-password").send_keys(password)
    _q(driver, "login-submit").click()


def _image_loaded(driver: Any, css: str) -> bool:
    return bool(
        driver.execute_script(
            "const i = document.querySelector(arguments[0]);"
            "return !!i && i.complete && i.naturalWidth > 0;",
            css,
        )
    )


def _live_tile(driver: Any, server: LiveServer, camera_id: str) -> tuple[str, Any]:
    """Sign in and wait for the camera's tile to show its first live image: (css, tile)."""
    _sign_in(driver, server.url)
    _wait_for("the dashboard", lambda: _q(driver, "dashboard").is_displayed(), UI_WAIT_S)
    tile_css = f"[data-testid=camera-tile][data-camera-id={camera_id}]"
    _wait_for("the camera tile", lambda: driver.find_elements("css selector", tile_css), UI_WAIT_S)
    _first_frame(server, camera_id)
    _wait_for(
        "the live image to load",
        lambda: _image_loaded(driver, f"{tile_css} [data-testid=camera-image]"),
        UI_WAIT_S,
    )
    return tile_css, driver.find_element("css selector", tile_css)


def _event_ids(driver: Any) -> list[str]:
    ids: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=event]')].map(e => e.dataset.eventId);"
    )
    return ids


@pytest.mark.browser
def test_wrong_password_shows_an_error(browser: Any, live_server: LiveServer) -> None:
    _sign_in(browser, live_server.url, password="not the password")
    message = _wait_for("the error", lambda: _q(browser, "login-error").text, UI_WAIT_S)
    assert "wrong" in message.lower()
    assert not _q(browser, "dashboard").is_displayed()


@pytest.mark.browser
@pytest.mark.data
def test_live_tile_and_new_events_show_up(
    browser: Any, live_server: LiveServer, mall_camera: str
) -> None:
    tile_css, tile = _live_tile(browser, live_server, mall_camera)
    _wait_for(
        "the running state", lambda: _q(browser, "camera-state", tile).text == "running", UI_WAIT_S
    )

    # The live view draws the scene: both zones, and the line with its in/out arrows and counts.
    overlay = f"{tile_css} [data-testid=scene-overlay]"
    _wait_for(
        "the scene overlay", lambda: browser.find_elements("css selector", overlay), UI_WAIT_S
    )
    zone_ids = [
        e.get_attribute("data-zone-id")
        for e in browser.find_elements("css selector", f"{overlay} polygon.zone-shape")
    ]
    assert zone_ids == ["walkway", "concourse"]
    assert (
        browser.execute_script(
            "return document.querySelector(arguments[0]).getAttribute('viewBox')", overlay
        )
        == "0 0 640 480"
    )
    line = f"{overlay} [data-line-id=shopfront]"
    assert len(browser.find_elements("css selector", f"{line} line.arrow")) == 2
    _wait_for(
        "the line counts on the overlay",
        lambda: (
            browser.find_element("css selector", f"{line} text.in").text.startswith("in ")
            and not browser.find_element("css selector", f"{line} text.in").text.endswith("–")
        ),
        UI_WAIT_S,
    )

    # Where the density model's scale comes from, in words.
    _wait_for(
        "the density scale line",
        lambda: _q(browser, "density-scale", tile).text.startswith("density scale "),
        FIRST_FRAME_WAIT_S,
    )
    # ... and that the camera's count calibration is in use.
    assert (
        "counts calibrated on 40 labelled frames (held-out error 2.9)"
        in _q(browser, "density-scale", tile).text
    )
    # The scene was drawn at 640×480: no size warning (a slow machine may show another one,
    # "running is not judged: tracks are seen every … s").
    assert "scene drawn at" not in _q(browser, "camera-warning", tile).text

    # The timeline has polled at least once before the events happen.
    _wait_for("the first events poll", lambda: _q(browser, "events-updated").text, UI_WAIT_S)
    now = time.time()
    snapshot = live_server.app.state.runner.latest_jpeg(mall_camera)
    crowd = Overcrowding(
        camera_id=mall_camera,
        start_ts_s=now,
        severity=Severity.CRITICAL,
        zone_id="concourse",
        track_ids=(RED_TRACK,),
        count=42.0,
        reason="42 people in concourse for 12 s, limit 20",
    )
    crossing = LineCrossed(
        camera_id=mall_camera, start_ts_s=now, end_ts_s=now, track_ids=(BLUE_TRACK,)
    )
    store = live_server.store
    store.record_descriptions(
        mall_camera,
        [
            {"track_id": RED_TRACK, "text": "red top, black trousers", "ts_s": now},
            {"track_id": BLUE_TRACK, "text": "blue jacket, carrying a bag", "ts_s": now},
        ],
    )
    store.record_events([crowd, crossing], {crowd.event_id: snapshot} if snapshot else None)

    shown = _wait_for(
        "both events in the timeline",
        lambda: {crowd.event_id, crossing.event_id} <= set(_event_ids(browser)),
        UI_WAIT_S,
    )
    assert shown
    item = f"[data-testid=event][data-event-id='{crowd.event_id}']"
    assert "red top" in browser.find_element("css selector", item).text
    assert "42 people in concourse for 12 s, limit 20" in _q(browser, "event-reason").text
    assert _event_ids(browser)[0] == crowd.event_id  # the open critical event leads
    # Uncalibrated zones read in people with a prompt to calibrate, never per megapixel.
    _wait_for(
        "the zone rows",
        lambda: len(browser.find_elements("css selector", "[data-testid=calibrate-hint]")) == 2,
        FIRST_FRAME_WAIT_S,
    )
    assert "people in zone" in _q(browser, "zone-occupancy", tile).text
    assert "/Mpx" not in browser.find_element("tag name", "body").text
    if snapshot is not None:
        _wait_for(
            "the event snapshot to load",
            lambda: _image_loaded(browser, f"{item} [data-testid=event-snapshot]"),
            UI_WAIT_S,
        )

    browser.find_element("css selector", item).click()
    dialog = _q(browser, "event-dialog")
    _wait_for("the event dialog", dialog.is_displayed, UI_WAIT_S)
    assert "red top, black trousers" in _q(browser, "event-dialog-fields").text
    _q(browser, "event-dialog-close").click()
    _wait_for("the dialog to close", lambda: not dialog.is_displayed(), UI_WAIT_S)

    # Flows on a camera of their own: the live Mall camera counts its real tracks' moves
    # between its zones, and a camera's counters take precedence over its zone events.
    headers = {"Authorization": f"Bearer {live_server.token()}"}
    res = httpx.post(
        f"{live_server.url}/api/cameras",
        headers=headers,
        json={
            "id": FLOW_CAMERA,
            "name": "Plaza",
            "source": "rtsp://127.0.0.1:1/none",
            "enabled": False,  # stored, not run: no worker, so no counters of its own
            "scene": FLOW_SCENE,
        },
        timeout=10,
    )
    assert res.status_code in (200, 201), res.text
    try:
        # Anonymous tracks moving between zones: two entrance→shops, one entrance→food.
        a, b, c = RED_TRACK + 10, RED_TRACK + 11, RED_TRACK + 12
        moves = [
            ZoneEntered(
                camera_id=FLOW_CAMERA,
                start_ts_s=now - 30 + i,
                end_ts_s=now - 30 + i,
                zone_id=zone,
                track_ids=(t,),
            )
            for i, (t, zone) in enumerate(
                [
                    (a, "entrance"),
                    (b, "entrance"),
                    (c, "entrance"),
                    (a, "shops"),
                    (b, "shops"),
                    (c, "food"),
                ]
            )
        ]
        store.record_events(moves)
        option = f"[data-testid=flow-camera] option[value='{FLOW_CAMERA}']"
        _wait_for(
            "the new camera in the flows picker",
            lambda: browser.find_elements("css selector", option),
            POLL_CAMERAS_WAIT_S,
        )
        from selenium.webdriver.support.ui import Select

        Select(_q(browser, "flow-camera")).select_by_value(FLOW_CAMERA)
        flows_css = "[data-testid=flows-view] [data-flow='entrance>shops']"
        _wait_for(
            "the flows view", lambda: browser.find_elements("css selector", flows_css), UI_WAIT_S
        )
        matrix = browser.execute_script(
            "const t = document.querySelector('[data-testid=flow-matrix]');"
            "const cols = [...t.tHead.rows[0].cells].slice(1).map(c => c.textContent);"
            "return Object.fromEntries([...t.tBodies[0].rows].map(r => [r.cells[0].textContent,"
            "  Object.fromEntries(cols.map((c, i) => [c, r.cells[i + 1].textContent]))]));"
        )
        assert matrix == {"entrance": {"food": "1", "shops": "2"}}
    finally:
        httpx.delete(f"{live_server.url}/api/cameras/{FLOW_CAMERA}", headers=headers, timeout=10)

    _q(browser, "event-search").send_keys("red top")
    _wait_for(
        "the search to keep only the red-top event",
        lambda: _event_ids(browser) == [crowd.event_id],
        UI_WAIT_S,
    )
    _q(browser, "event-search").clear()  # fires 'input': the filter resets
    _wait_for(
        "the full timeline",
        lambda: {crowd.event_id, crossing.event_id} <= set(_event_ids(browser)),
        UI_WAIT_S,
    )

    if live_server.pipeline == "standard":
        # The first crowd-density map takes a while on a busy CPU; the tile then shows the
        # count (and the live frame its heatmap).
        _wait_for(
            "the density count in the tile",
            lambda: _q(browser, "count-density", tile).text not in ("", "–"),
            FIRST_FRAME_WAIT_S,
        )
        float(_q(browser, "count-density", tile).text)
        _wait_for(
            "the stored density series in the chart",
            lambda: "People (density) (now" in _q(browser, "counts-chart").text,
            UI_WAIT_S,
        )
    _wait_for(
        "the counts chart to draw stored metrics",
        lambda: browser.find_elements("css selector", "[data-testid=counts-chart] svg path"),
        UI_WAIT_S,
    )
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(1000, height + 160))  # the whole page, no scrolling
    browser.save_screenshot(str(SCREENSHOT))
    viewers = [e.detail for e in store.query_audit(action="live.view", username="admin")]
    assert mall_camera in viewers
    script_errors = [
        e["message"]
        for e in browser.get_log("browser")
        if "Uncaught" in e["message"] or "Content Security Policy" in e["message"]
    ]
    assert script_errors == []


@pytest.mark.browser
def test_operator_adds_a_camera_from_the_form(browser: Any, live_server: LiveServer) -> None:
    _sign_in(browser, live_server.url)
    _wait_for("the dashboard", lambda: _q(browser, "dashboard").is_displayed(), UI_WAIT_S)
    _q(browser, "add-camera-open").click()
    _q(browser, "add-camera-id").send_keys("side-door")
    _q(browser, "add-camera-name").send_keys("Side door")
    _q(browser, "add-camera-source").send_keys("rtsp://127.0.0.1:1/none")
    _q(browser, "add-camera-enabled").click()  # stored but not run: no worker needed
    _q(browser, "add-camera-submit").click()
    _wait_for(
        "the new tile",
        lambda: browser.find_elements(
            "css selector", "[data-testid=camera-tile][data-camera-id=side-door]"
        ),
        UI_WAIT_S,
    )
    tile = browser.find_element(
        "css selector", "[data-testid=camera-tile][data-camera-id=side-door]"
    )
    assert _q(browser, "camera-placeholder", tile).text == "Camera disabled"
    assert _q(browser, "camera-image", tile).get_attribute("src") in (None, "")
    stored = live_server.store.get_camera("side-door")
    assert stored is not None
    assert stored.name == "Side door"
    assert stored.enabled is False


@pytest.mark.browser
def test_a_camera_with_a_missing_file_shows_error_and_the_reason_on_its_card(
    browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.mp4"
    headers = {"Authorization": f"Bearer {live_server.token()}"}
    res = httpx.post(
        f"{live_server.url}/api/cameras",
        headers=headers,
        json={"id": "gone", "name": "Gone", "source": str(missing), "loop": True},
        timeout=10,
    )
    assert res.status_code in (200, 201), res.text
    try:
        _sign_in(browser, live_server.url)
        tile_css = "[data-testid=camera-tile][data-camera-id=gone]"
        _wait_for("the tile", lambda: browser.find_elements("css selector", tile_css), UI_WAIT_S)
        tile = browser.find_element("css selector", tile_css)
        _wait_for("the error state", lambda: _q(browser, "camera-state", tile).text == "error", 120)
        reason = _q(browser, "camera-error", tile).text
        assert "no such file or folder; retrying with back-off (attempt" in reason
        status = httpx.get(
            f"{live_server.url}/api/cameras/gone/status", headers=headers, timeout=10
        ).json()
        assert status["state"] == "error" and "no such file" in status["detail"]["error"]
    finally:
        httpx.delete(f"{live_server.url}/api/cameras/gone", headers=headers, timeout=10)


@pytest.mark.browser
def test_a_store_that_cannot_write_shows_a_banner_with_what_to_do(
    browser: Any, live_server: LiveServer
) -> None:
    """A store write failing (tests/api/test_db_health.py makes both kinds happen for real: a
    corrupt file, a full disk) reaches the operator's screen, and goes away when it heals.
    The permanent kind is set here: the live camera's next good write would clear the other."""
    writer = live_server.app.state.runner.writer
    _sign_in(browser, live_server.url)
    _wait_for("the dashboard", lambda: _q(browser, "dashboard").is_displayed(), UI_WAIT_S)
    assert not _q(browser, "service-problem").is_displayed()
    writer.store_error = "store write failed permanently: database disk image is malformed"
    try:
        _wait_for("the banner", lambda: _q(browser, "service-problem").is_displayed(), UI_WAIT_S)
        assert "database disk image is malformed" in _q(browser, "service-problem").text
    finally:
        writer.store_error = None
    _wait_for(
        "the banner to go", lambda: not _q(browser, "service-problem").is_displayed(), UI_WAIT_S
    )


@pytest.mark.browser
def test_viewer_sees_no_add_camera_button(browser: Any, live_server: LiveServer) -> None:
    live_server.store.create_user("watcher", "viewer password 1", "viewer")
    _sign_in(browser, live_server.url, password="viewer password 1", username="watcher")
    _wait_for("the dashboard", lambda: _q(browser, "dashboard").is_displayed(), UI_WAIT_S)
    assert "watcher" in _q(browser, "current-user").text
    assert not _q(browser, "add-camera-open").is_displayed()


@pytest.mark.data
def test_mjpeg_stream_sends_jpeg_parts(live_server: LiveServer, mall_camera: str) -> None:
    headers = {"Authorization": f"Bearer {live_server.token()}"}
    url = f"{live_server.url}/api/cameras/{mall_camera}/live.mjpeg"
    _first_frame(live_server, mall_camera)
    with httpx.stream("GET", url, headers=headers, timeout=30) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("multipart/x-mixed-replace")
        buf = b""
        for chunk in res.iter_bytes():
            buf += chunk
            if buf.count(b"--crowdsightframe") >= 2:
                break
    first = buf.split(b"--crowdsightframe")[1]
    body = first.split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b"\xff\xd8")  # JPEG start-of-image


@pytest.mark.browser
@pytest.mark.data
def test_operator_calibrates_the_floor_by_clicking_four_points(
    browser: Any, live_server: LiveServer, mall_camera: str
) -> None:
    """Four clicks on the live image and two distances give the scene a calibration."""
    from selenium.webdriver.common.action_chains import ActionChains

    tile_css, tile = _live_tile(browser, live_server, mall_camera)
    _q(browser, "calibrate-open", tile).click()
    overlay = _q(browser, "calib-overlay", tile)
    save = _q(browser, "calib-save", tile)
    assert save.get_attribute("disabled") is not None  # four points first
    size = overlay.size
    fractions = [(0.2, 0.6), (0.8, 0.6), (0.9, 0.95), (0.1, 0.95)]
    for fx, fy in fractions:  # offsets are from the element's centre
        ActionChains(browser).move_to_element_with_offset(
            overlay, int((fx - 0.5) * size["width"]), int((fy - 0.5) * size["height"])
        ).click().perform()
    assert "size" in _q(browser, "calib-status", tile).text
    _q(browser, "calib-width", tile).send_keys("8")
    _q(browser, "calib-depth", tile).send_keys("5")
    save.click()
    _wait_for(
        "the helper to close",
        lambda: not browser.find_elements("css selector", f"{tile_css} [data-testid=calib-panel]"),
        UI_WAIT_S,
    )
    stored = live_server.store.get_camera(mall_camera)
    assert stored is not None and stored.scene is not None
    scene = stored.scene if isinstance(stored.scene, dict) else stored.scene.model_dump()
    cal = scene["calibration"]
    assert [list(p) for p in cal["ground_m"]] == [[0, 0], [8, 0], [8, 5], [0, 5]]
    # Clicks land in the scene's own pixels (640×480), whatever size the tile is drawn at.
    for (x, y), (fx, fy) in zip(cal["image_px"], fractions, strict=True):
        assert x == pytest.approx(fx * 640, abs=8) and y == pytest.approx(fy * 480, abs=8)
    assert scene["zones"] and scene["resolution_wh"] in ([640, 480], (640, 480))


@pytest.mark.browser
@pytest.mark.data
def test_a_scene_drawn_at_another_size_shows_a_warning_on_the_card(
    browser: Any, live_server: LiveServer, shared_data: Path, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {live_server.token()}"}
    for frame in sorted((shared_data / "mall" / "frames").glob("*.jpg"))[:FRAMES]:
        (tmp_path / frame.name).symlink_to(frame)
    scene = {
        "resolution_wh": [1280, 720],
        "zones": [{"id": "right", "polygon": [[640, 0], [1280, 0], [1280, 720], [640, 720]]}],
    }
    res = httpx.post(
        f"{live_server.url}/api/cameras",
        headers=headers,
        json={
            "id": "odd-size",
            "name": "Odd size",
            "source": str(tmp_path),
            "loop": True,
            "density_every_s": 30.0,
            "scene": scene,
        },
        timeout=10,
    )
    assert res.status_code in (200, 201), res.text
    try:
        _, tile = _live_tile(browser, live_server, "odd-size")
        text = _wait_for(
            "the warning", lambda: _q(browser, "camera-warning", tile).text, FIRST_FRAME_WAIT_S
        )
        assert "scene drawn at 1280×720 but frames are 640×480" in text
        assert "redraw the scene" in text  # 16:9 on 4:3: stretched, so it says what to do
        status = httpx.get(
            f"{live_server.url}/api/cameras/odd-size/status", headers=headers, timeout=10
        ).json()
        # The card shows the API's warnings (on a slow machine the size warning may be
        # joined by "running is not judged: …").
        size_warning = status["detail"]["warnings"][0]
        assert size_warning.startswith("scene drawn at 1280×720") and size_warning in text
    finally:
        httpx.delete(f"{live_server.url}/api/cameras/odd-size", headers=headers, timeout=10)
