"""/docs and /redoc render the API with no outside network (assets come from the package)."""

from __future__ import annotations

import time
from typing import Any

from tests.browser.conftest import LiveServer


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_swagger_ui_lists_operations_offline(live_server: LiveServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/docs")
    ops = _wait(
        lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"),
        30,
        "Swagger UI's operations list",
    )
    paths = {op.text.replace("\u200b", "") for op in ops}
    assert "/api/health" in paths
    assert "/api/cameras" in paths
    assert len(paths) >= 10


def test_redoc_renders_offline(live_server: LiveServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/redoc")
    menu = _wait(
        lambda: browser.find_elements(By.CSS_SELECTOR, "li[data-item-id] label"),
        30,
        "ReDoc's menu",
    )
    assert len(menu) >= 10
