"""The FastAPI application: REST API, live view, Prometheus metrics and the dashboard.

`create_app` wires the shared objects onto ``app.state`` (``store``, ``runner``,
``settings``) and includes the routers; the outbox dispatcher (MQTT, webhooks) runs for the
app's lifetime. OpenAPI docs are at ``/docs``.

Example:
    >>> from crowdsight.config.server import ServerSettings
from crowdsight.sources.policy import redact_source
    >>> app = create_app(ServerSettings(database_url="sqlite://"))  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from crowdsight import __version__
from crowdsight.config.server import ServerSettings
from crowdsight.core.errors import ConfigError
from crowdsight.outputs import OutboxDispatcher, build_sinks
from crowdsight.server import (
    api_anomaly,
    api_auth,
    api_cameras,
    api_errors,
    api_events,
    api_metrics,
    api_outbox,
    dashboard,
    docs,
    live,
)
from crowdsight.server.api_cameras import RunnerProtocol
from crowdsight.server.api_metrics import Prometheus, PrometheusMiddleware
from crowdsight.server.auth import LoginLimiter
from crowdsight.server.limits import BodyLimitMiddleware, SignInGate
from crowdsight.server.retention import RetentionWorker
from crowdsight.server.schemas import Health
from crowdsight.sources.policy import redact_source
from crowdsight.store import Role, Store
from crowdsight.store.engine import data_dir as default_data_dir
from crowdsight.store.store import CredentialSeal

log = logging.getLogger(__name__)
ADMIN_ENV = "CROWDSIGHT_ADMIN_PASSWORD"

TAGS = [
    {"name": "health", "description": "Liveness (no sign-in needed)."},
    {"name": "auth", "description": "Sign-in, users, API tokens, audit log."},
    {"name": "cameras", "description": "Camera settings and live status."},
    {"name": "live", "description": "Redacted live frames (audited)."},
    {"name": "events", "description": "Stored events, snapshots and flows."},
    {"name": "metrics", "description": "Time series and Prometheus metrics."},
    {"name": "outputs", "description": "MQTT/webhook delivery status (outbox)."},
]


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (0700) or check an existing one is a writable folder.

    Raises:
        ConfigError: one line naming the folder and what is wrong with it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"data dir {folder}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"data dir {folder}: not writable by this user")
    return folder


def secret_key(settings: ServerSettings, folder: Path) -> bytes:
    """The key that encrypts stream credentials at rest.

    ``server.secret_key`` when set (several servers sharing one PostgreSQL need the same
    one), else ``secret.key`` in the data dir, created once with mode 0600.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = folder / "secret.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
    return path.read_bytes().strip()


def open_store(settings: ServerSettings) -> Store:
    """The store the settings describe, migrated to the latest schema.

    The data dir and snapshot folder are created private (0700) and a SQLite database file
    made 0600: they hold password hashes, the audit log and event snapshots.

    Raises:
        ConfigError: the data dir cannot be used, or the database is not one.
    """
    folder = private_dir(settings.data_dir or default_data_dir())
    url = settings.database_url or f"sqlite:///{folder / 'crowdsight.db'}"
    snapshots = None if settings.snapshots_in_database else private_dir(folder / "snapshots")
    store = Store(
        url,
        snapshot_dir=snapshots,
        metrics_bucket_s=settings.metrics_bucket_s,
        seal=CredentialSeal(secret_key(settings, folder)),
    )
    try:
        store.migrate()
    except SQLAlchemyError as exc:
        store.close()
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        shown = redact_source(make_url(url).render_as_string(hide_password=True))
        raise ConfigError(f"{shown}: not a usable database ({reason})") from None
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        with contextlib.suppress(OSError):
            Path(database).chmod(0o600)
    return store


def bootstrap_admin(store: Store, settings: ServerSettings) -> str | None:
    """Create user 'admin' when there is no user at all.

    The password comes from the settings, else $CROWDSIGHT_ADMIN_PASSWORD, else it is
    generated and printed once to stderr.

    Returns:
        The generated password, or None when none was generated.
    """
    if store.count_users() > 0:
        return None
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = given or os.environ.get(ADMIN_ENV)
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    store.create_user("admin", password, Role.ADMIN)
    if generated:
        print(
            f"crowdsight: created user 'admin' with password {generated} (shown once; "
            f"set {ADMIN_ENV} to choose it)",
            file=sys.stderr,
        )
    return generated


def create_app(
    settings: ServerSettings | None = None,
    runner: RunnerProtocol | None = None,
    *,
    store: Store | None = None,
) -> FastAPI:
    """Build the app.

    Args:
        settings: server settings (defaults: SQLite in the data dir, no outputs).
        runner: the camera runner; camera CRUD calls its ``add_camera``/``remove_camera``.
        store: an already open store (e.g. the one the runner writes to); when None, the
            runner's ``store`` is used if it has one, else one is opened from the settings.
            The store is migrated either way.
    """
    settings = settings or ServerSettings()
    if store is None:
        candidate = getattr(runner, "store", None)
        store = candidate if isinstance(candidate, Store) else open_store(settings)
    store.migrate()
    db_problem = store.integrity_problem()
    if db_problem is not None:
        log.error("crowdsight: %s; serving degraded (restore a backup)", db_problem)
    bootstrap_admin(store, settings)
    sinks = build_sinks(settings.mqtt, settings.webhooks)
    dispatcher = OutboxDispatcher(store, sinks, settings.delivery) if sinks else None
    retention = (
        RetentionWorker(store, settings.retention_days, settings.retention_check_s)
        if settings.retention_days is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if dispatcher is not None:
            dispatcher.start()
        if retention is not None:
            retention.start()
        try:
            yield
        finally:
            if retention is not None:
                retention.stop()
            if dispatcher is not None:
                dispatcher.stop()

    app = FastAPI(
        title="crowdsight",
        version=__version__,
        description="Privacy-first video analytics for public spaces: cameras, events, "
        "metrics and live view. Sign in at POST /api/auth/login or send an API token as "
        "'Authorization: Bearer <token>'.",
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(api_errors.reject_nul)],
        docs_url=None,  # served by `docs.mount` from packaged assets, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.runner = runner
    app.state.dispatcher = dispatcher
    app.state.retention = retention
    app.state.db_problem = db_problem
    app.state.login_limiter = LoginLimiter(
        settings.login_max_failures,
        settings.login_window_s,
        max_failures_per_client=settings.login_max_failures_per_client,
        max_failures_global=settings.login_max_failures_global,
    )
    app.state.sign_in_gate = SignInGate(settings.login_concurrency)
    app.state.prometheus = prometheus = Prometheus(store, runner)
    app.add_middleware(PrometheusMiddleware, prometheus=prometheus)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)  # outermost
    api_errors.install(app)

    @app.get("/api/health", tags=["health"], summary="Liveness (public)")
    def health(request: Request) -> Health:
        """'ok' when the database answers a real read, passed its start-up check, and no
        store write is failing (for good, or for now: a full disk); else 'degraded' with the
        problem."""
        state = request.app.state
        problem: str | None = state.db_problem or getattr(state.runner, "store_error", None)
        db = state.store.ping()
        if not db and problem is None:
            problem = "the database does not answer"
        return Health(
            status="ok" if problem is None else "degraded",
            version=__version__,
            database=db and state.db_problem is None,
            runner=state.runner is not None,
            problem=problem,
        )

    for module in (api_auth, api_cameras, api_anomaly, api_events, api_metrics, api_outbox, live):
        app.include_router(module.router)
    docs.mount(app)
    dashboard.mount(app)  # last: the static mount at "/" matches every path
    return app


def app_factory() -> Any:
    """``uvicorn --factory crowdsight.server.app:app_factory`` entry (default settings)."""
    return create_app(ServerSettings())
