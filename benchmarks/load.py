"""Load test of the REST API on loopback: latency percentiles and throughput as JSON.

Starts the app with uvicorn on 127.0.0.1 (a free port) in a child process, with a fresh
SQLite database seeded with events, descriptions and metrics, then runs a fixed number of
concurrent clients for a bounded time, each cycling through health, event search and a metric
series. Nothing leaves the machine.

    python benchmarks/load.py --seconds 60 --clients 20

The last stdout line is the JSON result:
``{"requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "per_endpoint": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from crowdsight.core.events import Event, LineCrossed, Overcrowding, ZoneEntered
from crowdsight.store import Store
from crowdsight.store.metrics import record_metrics

PASSWORD = "load-test-password"
ENDPOINTS = {
    "health": "/api/health",
    "events": "/api/events?limit=50&camera_id=cam-{cam}",
    "events_text": "/api/events?limit=50&q=red+top",
    "metrics": "/api/metrics?camera_id=cam-{cam}&name=count_density&bucket_s=60",
}


def free_port() -> int:
    """A currently free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def seed(url: str, n_events: int, cameras: int, t0: float) -> str:
    """Fill a fresh database; returns an admin API token."""
    store = Store(url)
    store.migrate()
    admin = store.create_user("admin", PASSWORD, "admin")
    rng = random.Random(0)
    batch: list[Event] = []
    for i in range(n_events):
        cam = f"cam-{i % cameras}"
        ts = t0 + i * 3600.0 / n_events
        kind = i % 3
        if kind == 0:
            batch.append(ZoneEntered(camera_id=cam, start_ts_s=ts, zone_id="hall", track_ids=(i,)))
        elif kind == 1:
            batch.append(LineCrossed(camera_id=cam, start_ts_s=ts, end_ts_s=ts, track_ids=(i,)))
        else:
            batch.append(Overcrowding(camera_id=cam, start_ts_s=ts, end_ts_s=ts + 30, count=40.0))
        if len(batch) == 500:
            store.record_events(batch)
            batch = []
    store.record_events(batch)
    for c in range(cameras):
        colours = ["red top", "black top", "grey coat", "white van"]
        store.record_descriptions(
            f"cam-{c}",
            [
                {"track_id": i, "text": rng.choice(colours), "ts_s": t0}
                for i in range(c, n_events, cameras)
                if i % 3 != 2
            ],
        )
        with store.session() as session:  # one transaction for the whole series
            for s in range(0, 3600, 5):
                value = {"count_density": rng.uniform(0, 50)}
                record_metrics(session, f"cam-{c}", t0 + s, value, store.metrics_bucket_s)
    secret, _ = store.issue_token(admin.id, "load")
    store.close()
    return secret


def serve(url: str, port: int) -> None:
    """Child process: run the app under uvicorn on loopback."""
    import uvicorn

    from crowdsight.config.server import ServerSettings
    from crowdsight.server.app import create_app

    app = create_app(ServerSettings(database_url=url, snapshots_in_database=True))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def wait_ready(base: str, timeout_s: float = 60.0) -> None:
    """Poll /api/health until it answers."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server at {base} did not become ready")


async def client_loop(
    client: httpx.AsyncClient,
    stop_at: float,
    cameras: int,
    seed_: int,
    out: dict[str, list[float]],
    errors: list[str],
) -> None:
    """One client: request endpoints in turn until ``stop_at``, recording latencies (s)."""
    rng = random.Random(seed_)
    names = list(ENDPOINTS)
    i = seed_
    while time.monotonic() < stop_at:
        name = names[i % len(names)]
        i += 1
        path = ENDPOINTS[name].format(cam=rng.randrange(cameras))
        start = time.perf_counter()
        try:
            response = await client.get(path)
            ok = response.status_code == 200
        except httpx.HTTPError as exc:
            ok, response = False, None
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
        out[name].append(time.perf_counter() - start)
        if not ok and response is not None:
            errors.append(f"{name}: HTTP {response.status_code}")


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    p = np.percentile(np.asarray(samples) * 1000.0, [50, 95, 99])
    return {
        "p50_ms": round(float(p[0]), 2),
        "p95_ms": round(float(p[1]), 2),
        "p99_ms": round(float(p[2]), 2),
    }


async def run_load(
    base: str, token: str, seconds: float, clients: int, cameras: int
) -> dict[str, Any]:
    """Run ``clients`` concurrent clients for ``seconds``; summarize."""
    out: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:
        start = time.monotonic()
        stop_at = start + seconds
        await asyncio.gather(
            *(client_loop(c, stop_at, cameras, k, out, errors) for k in range(clients))
        )
        elapsed = time.monotonic() - start
    everything = [s for samples in out.values() for s in samples]
    return {
        "seconds": round(elapsed, 1),
        "clients": clients,
        "requests": len(everything),
        "errors": len(errors),
        "first_errors": errors[:5],
        "rps": round(len(everything) / elapsed, 1),
        **percentiles_ms(everything),
        "per_endpoint": {
            name: {"requests": len(samples), **percentiles_ms(samples)}
            for name, samples in out.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--events", type=int, default=10_000, help="events to seed")
    parser.add_argument("--cameras", type=int, default=4, help="cameras to seed")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="crowdsight-load-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'load.db'}"
        t_seed = time.perf_counter()
        token = seed(url, args.events, args.cameras, t0=1_700_000_000.0)
        print(
            f"seeded {args.events} events in {time.perf_counter() - t_seed:.1f} s", file=sys.stderr
        )
        port = free_port()
        server = mp.get_context("spawn").Process(target=serve, args=(url, port), daemon=True)
        server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(base))
            result = asyncio.run(run_load(base, token, args.seconds, args.clients, args.cameras))
        finally:
            server.terminate()
            server.join(10)
    result["seeded_events"] = args.events
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
