"""Joining a Ray cluster with a clear error instead of a hang.

``ray.init(address="host:port")`` on an address where no cluster answers does not fail: it
retries for minutes (measured here: still waiting after 5 min 27 s). And ``ray.init()`` with no
address picks up the address a previous ``ray start`` left behind, so after a crash it fails
with Ray's own "Failed to connect to the default Ray cluster address". `init_ray` checks that
a given ``host:port`` accepts a TCP connection first (a few seconds) and turns both failures
into one `ConfigError` that says what to do.
"""

from __future__ import annotations

import socket
from typing import Any

from crowdsight.core.errors import ConfigError

#: Seconds to wait for the cluster's GCS port to accept a connection.
CONNECT_TIMEOUT_S = 5.0

_HINT = (
    "start one with `ray start --head --port PORT` and pass its address (--ray-address "
    "HOST:PORT), or leave the address out to run on a private local cluster"
)


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a plain ``host:port`` address; None for ``auto``, ``local``, ``ray://``.

    Example:
        >>> _host_port("127.0.0.1:6380"), _host_port("auto"), _host_port("ray://head:10001")
        (('127.0.0.1', 6380), None, None)
    """
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT; {_HINT}")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise `ConfigError` when a ``host:port`` Ray address accepts no TCP connection."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc.__class__.__name__}: {exc}); {_HINT}"
        ) from exc


def init_ray(address: str | None, **kwargs: Any) -> None:
    """``ray.init`` (no dashboard, no driver logs) unless Ray is already initialised.

    Raises:
        ConfigError: Ray is not installed, the address is unreachable or malformed, or the
            cluster a previous ``ray start`` recorded is gone.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("Ray is not installed: pip install 'crowdsight[ray]'") from exc
    if ray.is_initialized():
        return
    if address is not None:
        check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **kwargs)
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot join the Ray cluster{f' at {address}' if address else ''}: "
            f"{str(exc).splitlines()[0]} If that cluster is gone, `ray stop` forgets it; {_HINT}"
        ) from exc
