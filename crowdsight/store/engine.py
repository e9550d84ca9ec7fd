"""Engines: SQLite (WAL, foreign keys, busy timeout) by default, PostgreSQL by URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from crowdsight.core.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 10_000


def data_dir() -> Path:
    """``$CROWDSIGHT_DATA``, else the platform's user data dir for crowdsight."""
    env = os.environ.get("CROWDSIGHT_DATA")
    return Path(env) if env else Path(user_data_dir("crowdsight"))


def default_url() -> str:
    """SQLite database ``crowdsight.db`` in `data_dir`."""
    return f"sqlite:///{data_dir() / 'crowdsight.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while the runner writes; foreign keys are off by default in
    # SQLite; the busy timeout makes concurrent writers wait instead of failing at once.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` ready for crowdsight's store.

    Args:
        url: SQLAlchemy URL. ``sqlite:///path.db`` (parent folder is created),
            ``sqlite://`` (in memory, one shared connection; tests only) or
            ``postgresql+psycopg://user:pass@host/db`` (needs the ``postgres`` extra).

    Raises:
        ConfigError: the URL cannot be parsed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if not database or database == ":memory:":
            kwargs["poolclass"] = StaticPool
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "PostgreSQL needs psycopg 3: pip install 'crowdsight[postgres]'"
            ) from exc
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
