"""Property-based API test from the OpenAPI spec (schemathesis): no request yields a 5xx.

Every operation gets generated valid and invalid requests, signed in as admin, against a
fresh SQLite database (swapped into the app before each operation's test) with a fake
runner. Examples per operation are bounded so the module runs in well under a minute.
The MJPEG stream is excluded: it never ends by design.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crowdsight.config.server import ServerSettings
from crowdsight.core.events import Overcrowding
from crowdsight.server.app import create_app
from crowdsight.store import Store
from tests.api.conftest import ADMIN_PASSWORD, FakeRunner
from tests.api.support import CHEAP_HASHER, store_url

MAX_EXAMPLES = 10

# The schema is read from an app at import time (schemathesis parametrizes at collection);
# the fixture below gives that app a fresh database for each operation.
_BOOT_STORE = Store("sqlite://", hasher=CHEAP_HASHER)
APP = create_app(
    ServerSettings(admin_password=ADMIN_PASSWORD, login_max_failures=10_000),
    FakeRunner(),
    store=_BOOT_STORE,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex=r"live\.mjpeg$")


#: Set to "postgresql" (with CROWDSIGHT_TEST_PG_URL) to fuzz against PostgreSQL instead;
#: off by default because it doubles the run time.
BACKEND_ENV = "CROWDSIGHT_SCHEMATHESIS_BACKEND"


@pytest.fixture
def auth_headers(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh store in the app, seeded with an event and a metric; an admin token."""
    with store_url(os.environ.get(BACKEND_ENV, "sqlite"), tmp_path) as url:
        yield from _serve_store(url)


def _serve_store(url: str) -> Iterator[dict[str, str]]:
    store = Store(url, hasher=CHEAP_HASHER)
    store.migrate()
    admin = store.create_user("admin", ADMIN_PASSWORD, "admin")
    store.record_events([Overcrowding(camera_id="cam-1", start_ts_s=1.0, count=3.0)])
    store.record_metrics("cam-1", 1.0, {"count_density": 3.0})
    secret, _ = store.issue_token(admin.id, "schemathesis")
    previous = APP.state.store
    APP.state.store = store
    APP.state.runner = FakeRunner()
    try:
        yield {"Authorization": f"Bearer {secret}"}
    finally:
        APP.state.store = previous
        store.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_answers_5xx(case: schemathesis.Case, auth_headers: dict[str, str]) -> None:
    response = case.call(headers=auth_headers)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
