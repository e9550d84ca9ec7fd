"""Metric time series (JSON) and Prometheus metrics of the service itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crowdsight.core.errors import InputError
from crowdsight.core.metrics import SceneMetrics
from crowdsight.server.api_errors import unprocessable
from crowdsight.server.auth import get_store, require_role
from crowdsight.server.schemas import ErrorBody, MetricSeries, User
from crowdsight.store import Store

router = APIRouter(tags=["metrics"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Role too low."},
}


@router.get("/api/metrics", responses=_ERRORS, summary="A metric time series, bucketed")
def metric_series(
    request: Request,
    camera_id: str = Query(max_length=64, description="Camera."),
    name: str = Query(
        max_length=200, description="Series, e.g. 'count_density', 'zone:<id>:occupancy'."
    ),
    since: float | None = Query(
        None, ge=0, le=1e11, allow_inf_nan=False, description="From (epoch seconds)."
    ),
    until: float | None = Query(
        None, ge=0, le=1e11, allow_inf_nan=False, description="To (epoch seconds)."
    ),
    bucket_s: float = Query(
        60.0, ge=1.0, le=86400.0, allow_inf_nan=False, description="Bucket width in seconds."
    ),
    _: User = Depends(require_role("viewer")),
) -> MetricSeries:
    """Mean/min/max/last per bucket (finest resolution: the store's bucket, 5 s default)."""
    try:
        points = get_store(request).query_metrics(camera_id, name, since, until, bucket_s)
    except InputError as exc:
        raise unprocessable(str(exc), ("query", "bucket_s")) from exc
    return MetricSeries(camera_id=camera_id, name=name, bucket_s=bucket_s, points=points)


@router.get("/api/metrics/names", responses=_ERRORS, summary="Metric names stored")
def metric_names(
    request: Request,
    camera_id: str | None = Query(None, max_length=64, description="Only this camera."),
    _: User = Depends(require_role("viewer")),
) -> list[str]:
    """Distinct metric names, for pickers."""
    return get_store(request).metric_names(camera_id)


@router.get(
    "/metrics",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Prometheus."}},
    summary="Prometheus metrics of the service (needs auth)",
    tags=["metrics"],
)
def prometheus(request: Request, _: User = Depends(require_role("viewer"))) -> Response:
    """Request counts and latencies, outbox backlog, camera fps and counts."""
    registry: CollectorRegistry = request.app.state.prometheus.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class ServiceCollector(Collector):
    """Gauges read at scrape time: outbox backlog and per-camera runner status."""

    def __init__(self, store: Store, runner: Any | None) -> None:
        self.store = store
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges (skipping any source that fails, so a scrape never errors)."""
        pending = GaugeMetricFamily(
            "crowdsight_outbox_pending", "Event deliveries waiting in the outbox."
        )
        try:
            pending.add_metric([], float(self.store.outbox_pending()))
        except Exception:
            return
        yield pending
        if self.runner is None:
            return
        fps = GaugeMetricFamily("crowdsight_camera_fps", "Frames per second.", labels=["camera"])
        counts = GaugeMetricFamily(
            "crowdsight_camera_value", "Live numeric status values.", labels=["camera", "name"]
        )
        for cam, status_ in self.runner.cameras_status().items():
            fps.add_metric([cam], float(status_.get("fps") or 0.0))
            try:
                live = SceneMetrics.model_validate(status_.get("metrics") or {})
            except ValueError:  # pydantic's ValidationError: skip, a scrape never errors
                continue
            for name, value in live.to_rows().items():  # the stored series' names
                counts.add_metric([cam, name], value)
        yield fps
        yield counts


class Prometheus:
    """Per-app registry and request instruments (no global state: one per app)."""

    def __init__(self, store: Store, runner: Any | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "crowdsight_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "crowdsight_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            registry=self.registry,
        )
        self.registry.register(ServiceCollector(store, runner))


class PrometheusMiddleware:
    """Pure ASGI middleware timing each request (safe for streaming responses)."""

    def __init__(self, app: ASGIApp, prometheus: Prometheus) -> None:
        self.app = app
        self.prometheus = prometheus

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.prometheus.requests.labels(scope["method"], route, str(status_code)).inc()
            self.prometheus.latency.labels(route).observe(time.perf_counter() - start)
