"""Helpers shared by the store, API, MQTT and webhook tests (S1's tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from crowdsight.store import Store

PG_ENV = "CROWDSIGHT_TEST_PG_URL"
MQTT_ENV = "CROWDSIGHT_TEST_MQTT"

#: argon2 with tiny cost: the tests exercise hashing logic, not its resistance to guessing.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def reset_postgres(url: str) -> None:
    """Drop every table in the test database (a fresh schema per test)."""
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        store.close()


def store_url(backend: str, tmp_path: Path) -> str:
    """A URL to a fresh, empty database for ``backend`` (skips when PostgreSQL is absent)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'crowdsight.db'}"
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} not set: no PostgreSQL server for the store tests")
    reset_postgres(url)
    return url


@contextmanager
def open_store(url: str, **kwargs: object) -> Iterator[Store]:
    """A migrated store that is closed afterwards."""
    store = Store(url, hasher=CHEAP_HASHER, **kwargs)  # type: ignore[arg-type]
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def mqtt_address() -> tuple[str, int]:
    """host, port of the test broker; skips when CROWDSIGHT_TEST_MQTT is unset."""
    value = os.environ.get(MQTT_ENV)
    if not value:
        pytest.skip(f"{MQTT_ENV} not set (host:port of an MQTT broker, e.g. mosquitto)")
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)
