"""Joining a Ray cluster: an unreachable or stale address is one clear error, not a hang."""

from __future__ import annotations

import socket
import time

import pytest

from crowdsight.core.errors import ConfigError
from crowdsight.pipeline.ray_connect import check_reachable, init_ray


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_address_where_nothing_listens_is_refused_quickly() -> None:
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"no Ray cluster answers at 127\.0\.0\.1:\d+.*ray start"):
        check_reachable(f"127.0.0.1:{_closed_port()}")
    assert time.monotonic() - t0 < 10  # ray.init itself was still waiting after 5 minutes


def test_a_listening_address_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_reachable(f"127.0.0.1:{s.getsockname()[1]}")


def test_a_malformed_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="not HOST:PORT"):
        check_reachable("head:port")


@pytest.mark.parametrize("address", ["auto", "local", "ray://head:10001"])
def test_symbolic_and_client_addresses_are_left_to_ray(address: str) -> None:
    check_reachable(address)  # nothing to check here: no error, no connection attempt


def test_init_ray_never_calls_ray_on_an_unreachable_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'crowdsight[ray]'")
    if ray.is_initialized():
        pytest.skip("Ray already initialised in this process")

    def hang(**kwargs: object) -> None:
        raise AssertionError("ray.init must not be reached")

    monkeypatch.setattr(ray, "init", hang)
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        init_ray(f"127.0.0.1:{_closed_port()}")


def test_a_stale_default_cluster_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'crowdsight[ray]'")
    if ray.is_initialized():
        pytest.skip("Ray already initialised in this process")

    def stale(**kwargs: object) -> None:  # what ray.init() says after a crashed `ray start`
        raise ConnectionError(
            "Failed to connect to the default Ray cluster address at 192.0.2.2:6380.\n"
            "This is most likely due to a previous Ray instance that has since crashed."
        )

    monkeypatch.setattr(ray, "init", stale)
    with pytest.raises(ConfigError, match=r"default Ray cluster address.*`ray stop`"):
        init_ray(None)
