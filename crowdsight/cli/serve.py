"""`crowdsight serve [--config FILE] [--host H] [--port P] [--data-dir DIR]`: the live service.

Wires the parts together: the store (S1), the camera runner, the HTTP app (API, live view,
dashboard, outbox dispatcher) and uvicorn. Cameras listed in the config file are written to
the store at start (same id: the file wins); the store is then the source of truth, and the
dashboard/API can add, change or remove cameras while the service runs.

Shutdown (SIGTERM or Ctrl-C): uvicorn stops accepting requests, then — inside the app's
lifespan, so the outbox dispatcher still runs — the runner stops every worker, drains their
last reports into the store, and only then is the dispatcher stopped. Undelivered outbox rows
are sent on the next start.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from crowdsight.cli.apps import app
from crowdsight.cli.options import setting_option
from crowdsight.config.runner import RunnerSettings
from crowdsight.config.serve import load_serve_config
from crowdsight.config.server import ServerSettings
from crowdsight.core.errors import ConfigError
from crowdsight.pipeline.ray_runner import RayRunner
from crowdsight.pipeline.runner import LocalRunner
from crowdsight.store.records import Camera

if TYPE_CHECKING:
    from fastapi import FastAPI

    from crowdsight.store import Store

console = Console(stderr=True)
S = ServerSettings


def sync_cameras(store: Store, cameras: list[Camera]) -> None:
    """Write the config's cameras to the store (create, or update the same id)."""
    for cam in cameras:
        if store.get_camera(cam.id) is None:
            store.create_camera(cam)
        else:
            store.update_camera(cam)


def with_anomaly_dir(runner: RunnerSettings, server: ServerSettings) -> RunnerSettings:
    """``runner`` with the cameras' anomaly models in ``<data dir>/anomaly`` unless it says."""
    if runner.anomaly_dir is not None:
        return runner
    from crowdsight.store.engine import data_dir

    folder = Path(server.data_dir or data_dir()) / "anomaly"
    return runner.model_copy(update={"anomaly_dir": folder})


def attach_runner(app_: FastAPI, runner: LocalRunner, cameras: list[Camera]) -> None:
    """Run ``runner`` for the app's lifetime, inside the existing lifespan.

    Started after the app's own start-up (dispatcher running) and stopped before its
    shutdown, so the events drained from the workers are still dispatched.
    """
    inner = app_.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        from starlette.concurrency import run_in_threadpool

        async with inner(a) as state:
            runner.start()
            for cam in cameras:
                if cam.enabled:
                    runner.add_camera(cam)
            try:
                yield state
            finally:
                await run_in_threadpool(runner.stop)

    app_.router.lifespan_context = lifespan


def check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, so a taken port or a wrong host is one clear line
    before anything starts (uvicorn would say so only after the service had started, the
    admin user been created and "serving on …" been printed).

    Raises:
        ConfigError: the address cannot be listened on, with what to change.
    """
    where = f"cannot listen on {host}:{port}"
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"{where}: {exc.strerror}; check --host (or server.host)") from exc
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as exc:
            fix = {
                errno.EADDRINUSE: "another program (or another crowdsight) listens there; "
                "choose another --port",
                errno.EACCES: "ports below 1024 need privileges; choose a port from 1024",
                errno.EADDRNOTAVAIL: "this machine has no such address; check --host",
            }.get(exc.errno or 0, "check --host and --port")
            raise ConfigError(f"{where}: {exc.strerror}; {fix}") from exc


def uvicorn_config(http: Any, settings: ServerSettings, log_level: str = "info") -> Any:
    """The uvicorn config for ``http``: bind address, TLS, and whom to believe about clients.

    ``X-Forwarded-For``/``-Proto`` are honoured only from ``settings.trusted_proxies``
    (uvicorn's own default trusts them from 127.0.0.1, which let any local process, or a
    proxy that passes the header through, forge the client address the sign-in throttle and
    the audit log use).
    """
    import uvicorn

    trusted = settings.trusted_proxies
    tls = settings.tls
    return uvicorn.Config(
        http,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=",".join(trusted) if trusted else "",
        ssl_certfile=str(tls.certfile) if tls is not None else None,
        ssl_keyfile=str(tls.keyfile) if tls is not None else None,
    )


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Serve config YAML (server, cameras).")
    ] = None,
    host: Annotated[
        str | None, setting_option(S, "host", help="(Default 127.0.0.1 or the config's.)")
    ] = None,
    port: Annotated[
        int | None, setting_option(S, "port", help="(Default 8080 or the config's.)")
    ] = None,
    data_dir: Annotated[Path | None, setting_option(S, "data_dir")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the live service: cameras, REST API, dashboard, MQTT/webhooks."""
    import uvicorn

    from crowdsight.server.app import create_app, open_store

    cfg = load_serve_config(config)
    updates: dict[str, Any] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if data_dir is not None:
        updates["data_dir"] = data_dir.expanduser().resolve()
    settings = cfg.server.model_copy(update=updates)
    check_listen(settings.host, settings.port)
    # Everything this service creates (database, WAL, snapshots, folders) is private to its
    # user: 0600 files, 0700 folders.
    os.umask(0o077)
    store = open_store(settings)
    sync_cameras(store, cfg.cameras)
    runner_settings = with_anomaly_dir(cfg.runner, settings)
    runner = (
        LocalRunner(store, runner_settings)
        if cfg.ray is None
        else RayRunner(
            store, runner_settings, address=cfg.ray.address, num_cpus=cfg.ray.num_cpus_per_camera
        )
    )
    http = create_app(settings, runner, store=store)  # also creates the admin user once
    attach_runner(http, runner, store.list_cameras())

    # uvicorn re-raises the signal it stopped on once it has shut down; keep that from
    # killing the process (exit code 0 after a requested, clean shutdown).
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    scheme = "https" if settings.tls is not None else "http"
    console.print(
        f"crowdsight: serving on {scheme}://{settings.host}:{settings.port} "
        f"({len(store.list_cameras())} camera(s); pid {os.getpid()})",
        highlight=False,
    )
    server = uvicorn.Server(uvicorn_config(http, settings, log_level))
    try:
        server.run()
    finally:
        runner.stop()  # no-op when the lifespan already stopped it
        store.close()
    if not server.started:
        console.print(f"crowdsight: could not serve on {settings.host}:{settings.port}")
        sys.exit(1)
