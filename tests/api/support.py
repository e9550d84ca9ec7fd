"""Helpers shared by the store, API, MQTT and webhook tests (S1's tests)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crowdsight.store import Store

PG_ENV = "CROWDSIGHT_TEST_PG_URL"
MQTT_ENV = "CROWDSIGHT_TEST_MQTT"

#: argon2 with tiny cost: the tests exercise hashing logic, not its resistance to guessing.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@contextmanager
def private_schema(url: str) -> Iterator[str]:
    """``url`` with its own fresh PostgreSQL schema (dropped afterwards).

    Each test gets a schema of its own through ``search_path``, so parallel test runs
    against one database (several engineers, CI retries) never see each other's tables.
    """
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
        parsed = make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
        yield parsed.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()


@contextmanager
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database for ``backend`` (skips when PostgreSQL is absent)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'crowdsight.db'}"
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} not set: no PostgreSQL server for the store tests")
    with private_schema(url) as scoped:
        yield scoped


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


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1 (PEM files in ``folder``)."""
    pytest.importorskip("cryptography", reason="cryptography makes the test certificate")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def free_port() -> int:
    """A TCP port on loopback that is free now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
