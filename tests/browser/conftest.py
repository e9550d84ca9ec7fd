"""Fixtures for the browser tests: a real crowdsight server and a headless Chromium.

The server is the real app (`crowdsight.server.app.create_app`) with the real runner
(`LocalRunner`, worker processes running the standard camera pipeline) attached to its
lifespan as ``crowdsight serve`` does, served by uvicorn in a thread on 127.0.0.1 at a free
port, with a fresh data dir. The browser is Debian's
chromium driven by its chromedriver through Selenium 4.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crowdsight.models.install import read_manifest
from tests.api.support import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ADMIN_PASSWORD = "browser-test-password"
PIPELINE_MODELS = ("csrnet", "nanodet", "blazeface")
TICK_PIPELINE = "crowdsight.pipeline.worker:tick_pipeline"
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
    # No outside network: every host but the test server fails to resolve, so a page that
    # needs a CDN (fonts, scripts) breaks here as it would on an offline site.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


@dataclass
class LiveServer:
    """A running crowdsight server.

    Attributes:
        url: Base URL, e.g. ``http://127.0.0.1:40123``.
        app: The FastAPI app (``app.state.store`` is the store the runner writes to).
        data_dir: Its fresh data directory.
    """

    url: str
    app: Any
    data_dir: Path
    pipeline: str

    @property
    def store(self) -> Any:
        return self.app.state.store

    def token(self) -> str:
        """A session token of the admin user (for API calls from the test)."""
        res = httpx.post(
            f"{self.url}/api/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=10,
        )
        res.raise_for_status()
        token: str = res.json()["token"]
        return token


def pipeline_factory() -> str | None:
    """The standard camera pipeline when its models are installed, else the model-free one.

    Without models the runner runs `TickPipeline` (events on a fixed rule, no detector, no
    density heatmap) so the dashboard is still tested end to end; the live frames are still
    redacted by the worker. ``CROWDSIGHT_BROWSER_PIPELINE=tick`` forces the model-free one.
    """
    if os.environ.get("CROWDSIGHT_BROWSER_PIPELINE") == "tick":
        return TICK_PIPELINE
    installed = read_manifest()
    return None if all(m in installed for m in PIPELINE_MODELS) else TICK_PIPELINE


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app and runner behind uvicorn on a free port (stopped after the module)."""
    import uvicorn

    from crowdsight.cli.serve import attach_runner
    from crowdsight.config.runner import RunnerSettings
    from crowdsight.config.server import ServerSettings
    from crowdsight.pipeline.runner import LocalRunner
    from crowdsight.server.app import create_app, open_store

    data_dir = tmp_path_factory.mktemp("crowdsight-data")
    port = free_port()
    settings = ServerSettings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'crowdsight.db'}",
        admin_password=ADMIN_PASSWORD,
        port=port,
        # The tests play frames from pytest's temporary folders and add a loopback camera.
        sources={
            "media_roots": [str(tmp_path_factory.getbasetemp())],
            "allow_hosts": ["127.0.0.1"],
        },
    )
    store = open_store(settings)
    factory = pipeline_factory()
    runner = LocalRunner(
        store,
        RunnerSettings(
            jpeg_every_s=0.3,
            startup_grace_s=300.0,
            pipeline_factory=factory,
            anomaly_dir=data_dir / "anomaly",  # as `crowdsight serve` sets it
        ),
    )
    app = create_app(settings, runner, store=store)
    attach_runner(app, runner, [])  # as `crowdsight serve` does: the runner lives in the lifespan
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            # Open MJPEG streams end only when their client leaves: do not wait for them.
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(url=url, app=app, data_dir=data_dir, pipeline=factory or "standard")
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        runner.stop()  # no-op once the lifespan has stopped it
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (skips when chromium, chromedriver or selenium is missing)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(
            f"browser tests need {' and '.join(missing)}: "
            "apt-get install -y chromium chromium-driver"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="crowdsight-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def add_looping_camera(
    server: LiveServer,
    frames: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
    **camera: Any,
) -> str:
    """Add a camera (``camera``: the API's fields, ``id`` included) looping over ``frames``.

    The frames are linked into a fresh folder so the camera plays exactly these.
    """
    folder = tmp_path_factory.mktemp(f"{camera['id']}-frames")
    for frame in frames:
        (folder / frame.name).symlink_to(frame)
    res = httpx.post(
        f"{server.url}/api/cameras",
        headers={"Authorization": f"Bearer {server.token()}"},
        json={**camera, "source": str(folder), "loop": True},
        timeout=10,
    )
    assert res.status_code in (200, 201), res.text
    return str(camera["id"])
