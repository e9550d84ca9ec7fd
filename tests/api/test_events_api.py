"""Event search (incl. description text), metrics series, flows and Prometheus through the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crowdsight.core.events import LineCrossed, Overcrowding, ZoneEntered
from crowdsight.store import Store
from tests.api.conftest import bearer


@pytest.fixture
def seeded(store: Store) -> dict[str, str]:
    events = {
        "a": ZoneEntered(camera_id="cam-1", start_ts_s=100.0, zone_id="gate", track_ids=(1,)),
        "b": ZoneEntered(camera_id="cam-1", start_ts_s=200.0, zone_id="hall", track_ids=(1,)),
        "c": ZoneEntered(camera_id="cam-1", start_ts_s=250.0, zone_id="hall", track_ids=(2,)),
        "d": Overcrowding(camera_id="cam-2", start_ts_s=300.0, zone_id="hall", count=9.0),
        "e": LineCrossed(camera_id="cam-2", start_ts_s=400.0, end_ts_s=400.0, track_ids=(5,)),
    }
    store.record_events(list(events.values()))
    store.record_descriptions(
        "cam-1",
        [
            {"track_id": 1, "text": "red top, blue jeans", "ts_s": 100.0},
            {"track_id": 2, "text": "black top, carrying a bag", "ts_s": 250.0},
        ],
    )
    return {k: e.event_id for k, e in events.items()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "edcba"),
        ("?camera_id=cam-2", "ed"),
        ("?type=zone_entered&zone_id=hall", "cb"),
        ("?since=150&until=300", "dcb"),
        ("?q=red+top", "ba"),
        ("?q=bag&camera_id=cam-1", "c"),
        ("?q=purple", ""),
        ("?limit=1&offset=1", "d"),
    ],
)
def test_event_filters(
    client: TestClient,
    tokens: dict[str, str],
    seeded: dict[str, str],
    query: str,
    expected: str,
) -> None:
    r = client.get(f"/api/events{query}", headers=bearer(tokens["viewer"]))
    assert r.status_code == 200
    assert [e["event_id"] for e in r.json()] == [seeded[k] for k in expected]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("?limit=0", "limit"),
        ("?limit=abc", "limit"),
        ("?since=nan", "since"),
        ("?since=-5", "since"),
        ("?q=" + "x" * 201, "q"),
    ],
)
def test_bad_event_queries_are_422(
    client: TestClient, tokens: dict[str, str], query: str, fragment: str
) -> None:
    r = client.get(f"/api/events{query}", headers=bearer(tokens["viewer"]))
    assert r.status_code == 422 and r.json()["message"].startswith(f"query.{fragment}")


def test_event_detail_and_upsert_through_the_api(
    client: TestClient, tokens: dict[str, str], store: Store
) -> None:
    opened = Overcrowding(camera_id="cam-1", start_ts_s=10.0, count=30.0)
    store.record_events([opened])
    store.record_events([opened.closed(20.0)])
    store.record_events([opened.closed(20.0)])
    viewer = bearer(tokens["viewer"])
    r = client.get(f"/api/events/{opened.event_id}", headers=viewer)
    assert r.status_code == 200
    assert (r.json()["end_ts_s"], r.json()["revision"]) == (20.0, 2)
    assert len(client.get("/api/events", headers=viewer).json()) == 1
    assert client.get("/api/events/unknown", headers=viewer).status_code == 404
    assert client.get(f"/api/events/{opened.event_id}/snapshot", headers=viewer).status_code == 404


def test_metric_series_and_names(client: TestClient, tokens: dict[str, str], store: Store) -> None:
    for ts, value in [(1000.0, 2.0), (1010.0, 4.0), (1070.0, 9.0)]:
        store.record_metrics("cam-1", ts, {"count_density": value, "zone:a:occupancy": 1.0})
    viewer = bearer(tokens["viewer"])
    r = client.get(
        "/api/metrics?camera_id=cam-1&name=count_density&bucket_s=60&since=960", headers=viewer
    )
    assert r.status_code == 200
    points = [(p["ts_s"], p["mean"], p["max"], p["count"]) for p in r.json()["points"]]
    assert points == [(960.0, 3.0, 4.0, 2), (1020.0, 9.0, 9.0, 1)]
    names = client.get("/api/metrics/names?camera_id=cam-1", headers=viewer).json()
    assert names == ["count_density", "zone:a:occupancy"]
    r = client.get(
        "/api/metrics?camera_id=cam-1&name=count_density&bucket_s=1&since=0&until=99999",
        headers=viewer,
    )
    assert r.status_code == 422 and r.json()["message"].startswith("query.bucket_s:")
    r = client.get("/api/metrics?camera_id=cam-1", headers=viewer)
    assert r.status_code == 422 and "name" in r.json()["message"]


def test_flows_and_descriptions(
    client: TestClient, tokens: dict[str, str], seeded: dict[str, str]
) -> None:
    viewer = bearer(tokens["viewer"])
    flows = client.get("/api/flows?camera_id=cam-1", headers=viewer).json()
    assert flows == [{"camera_id": "cam-1", "from_zone": "gate", "to_zone": "hall", "count": 1}]
    texts = [d["text"] for d in client.get("/api/descriptions", headers=viewer).json()]
    assert texts == ["black top, carrying a bag", "red top, blue jeans"]


def test_prometheus_metrics(client: TestClient, tokens: dict[str, str], store: Store) -> None:
    viewer = bearer(tokens["viewer"])
    client.get("/api/events", headers=viewer)
    client.post(
        "/api/cameras",
        json={"id": "cam-1", "name": "C", "source": "0"},
        headers=bearer(tokens["operator"]),
    )
    text = client.get("/metrics", headers=viewer).text
    assert 'crowdsight_http_requests_total{method="GET",route="/api/events",status="200"}' in text
    assert "crowdsight_outbox_pending 0.0" in text
    assert 'crowdsight_camera_fps{camera="cam-1"} 9.5' in text
    assert 'crowdsight_camera_value{camera="cam-1",name="count_tracked"} 3.0' in text
