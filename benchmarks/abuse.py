"""Abuse test of the service on loopback: huge bodies and a sign-in flood with random names.

Starts the app as `crowdsight serve` would (same uvicorn config) in a child process with a
fresh SQLite database, measures ``/api/health`` latency at rest, then, for a bounded time:

1. large bodies: ``--big-clients`` clients each send ``--big-mb`` MB to ``/api/auth/login``
   (chunked, so only the server's streaming limit can stop them) and ``--big-clients``
   more declare that size in ``Content-Length``;
2. a sign-in flood: ``--flood-clients`` clients post random user names and passwords;

while a prober asks ``/api/health`` every 50 ms. It prints the server's peak resident
memory (``VmHWM`` of the child, start-up included) and the health p50/p95 during the abuse.
Goals (issue 18): peak <= 400 MB, health p50 <= 50 ms. Nothing leaves the machine.

    python benchmarks/abuse.py --seconds 20
    python benchmarks/abuse.py --seconds 20 --no-client-limit   # the argon2 gate alone

The last stdout line is the JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from load import free_port, wait_ready  # the sibling load benchmark (same folder)

PASSWORD = "abuse-test-password-1"


def serve(url: str, port: int, overrides: dict[str, Any]) -> None:
    """Child process: the app under uvicorn, configured by `crowdsight.cli.serve`."""
    import uvicorn

    from crowdsight.cli.serve import uvicorn_config
    from crowdsight.config.server import ServerSettings
    from crowdsight.server.app import create_app

    settings = ServerSettings(
        database_url=url,
        admin_password=PASSWORD,
        retention_days=None,
        port=port,
        **overrides,
    )
    uvicorn.Server(uvicorn_config(create_app(settings), settings, "warning")).run()


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (Linux ``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def probe(base: str, stop_at: float) -> list[float]:
    """/api/health latencies (ms), one request every 50 ms until ``stop_at``."""
    out: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            await client.get("/api/health")
            out.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.05)
    return out


async def big_chunked(base: str, mb: int, codes: Counter[str]) -> None:
    """Stream ``mb`` MB of junk as the login body (no Content-Length)."""
    chunk = b"x" * (1 << 20)

    async def body() -> Any:
        for _ in range(mb):
            yield chunk

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        try:
            r = await client.post("/api/auth/login", content=body())
            codes[f"chunked:{r.status_code}"] += 1
        except httpx.HTTPError as exc:  # the server may close mid-upload: that is the point
            codes[f"chunked:{exc.__class__.__name__}"] += 1


async def big_declared(port: int, mb: int, codes: Counter[str]) -> None:
    """Declare ``mb`` MB in Content-Length and send it; read what the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {mb << 20}\r\n\r\n"
    )
    writer.write(head.encode())
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(mb):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    try:
        status = (await asyncio.wait_for(reader.readline(), 30)).decode().split(" ")[1:2]
        codes[f"declared:{status[0] if status else 'closed'}"] += 1
    except (TimeoutError, ConnectionError, OSError, IndexError):
        codes["declared:closed"] += 1
    writer.close()


async def flood(base: str, stop_at: float, codes: Counter[str]) -> None:
    """Sign in with random user names until ``stop_at``."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while time.monotonic() < stop_at:
            body = {"username": secrets.token_hex(6), "password": secrets.token_hex(8)}
            try:
                r = await client.post("/api/auth/login", json=body)
                codes[f"login:{r.status_code}"] += 1
            except httpx.HTTPError as exc:
                codes[f"login:{exc.__class__.__name__}"] += 1


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``samples``, rounded to 0.1 ms."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def abuse(base: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run the baseline probe, then every abuse at once with the probe alongside."""
    rest = await probe(base, time.monotonic() + 3.0)
    codes: Counter[str] = Counter()
    stop_at = time.monotonic() + args.seconds
    tasks = [asyncio.create_task(probe(base, stop_at))]
    tasks += [
        asyncio.create_task(big_chunked(base, args.big_mb, codes)) for _ in range(args.big_clients)
    ]
    tasks += [
        asyncio.create_task(big_declared(port, args.big_mb, codes)) for _ in range(args.big_clients)
    ]
    tasks += [asyncio.create_task(flood(base, stop_at, codes)) for _ in range(args.flood_clients)]
    results = await asyncio.gather(*tasks)
    during: list[float] = results[0]
    return {
        "health_rest_p50_ms": pct(rest, 0.5),
        "health_abuse_p50_ms": pct(during, 0.5),
        "health_abuse_p95_ms": pct(during, 0.95),
        "health_abuse_mean_ms": round(statistics.fmean(during), 1) if during else None,
        "health_probes": len(during),
        "answers": dict(sorted(codes.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="abuse duration (bounded)")
    parser.add_argument("--flood-clients", type=int, default=20, help="sign-in flood clients")
    parser.add_argument("--big-clients", type=int, default=4, help="clients of each big-body kind")
    parser.add_argument("--big-mb", type=int, default=300, help="size of each big body, MB")
    parser.add_argument(
        "--no-client-limit",
        action="store_true",
        help="lift the per-client and global failure limits (shows the argon2 gate alone)",
    )
    parser.add_argument(
        "--login-concurrency", type=int, default=None, help="server.login_concurrency to use"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.login_concurrency is not None:
        overrides["login_concurrency"] = args.login_concurrency
    if args.no_client_limit:
        overrides |= {
            "login_max_failures_per_client": 10**9,
            "login_max_failures_global": 10**9,
        }
    with tempfile.TemporaryDirectory(prefix="crowdsight-abuse-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'abuse.db'}"
        port = free_port()
        server = mp.get_context("spawn").Process(
            target=serve, args=(url, port, overrides), daemon=True
        )
        server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(base))
            assert server.pid is not None
            start_mb = peak_rss_mb(server.pid)
            result = asyncio.run(abuse(base, port, args))
            result["server_start_peak_mb"] = round(start_mb, 1)
            result["server_peak_mb"] = round(peak_rss_mb(server.pid), 1)
        finally:
            server.terminate()
            server.join(10)
    result["settings"] = {
        "no_client_limit": args.no_client_limit,
        "login_concurrency": args.login_concurrency,
        "seconds": args.seconds,
    }
    ok = result["server_peak_mb"] <= 400 and result["health_abuse_p50_ms"] <= 50
    print(
        f"server peak {result['server_peak_mb']} MB (goal <= 400); health p50 during abuse "
        f"{result['health_abuse_p50_ms']} ms (goal <= 50); {'OK' if ok else 'MISSED'}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
