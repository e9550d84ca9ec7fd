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


def test_overcrowding_from_scene_analytics_gets_its_end_ts_through_the_store_and_api(
    client: TestClient, tokens: dict[str, str], store: Store
) -> None:
    import numpy as np

    from crowdsight.analytics import SceneAnalytics
    from crowdsight.config.scene import parse_scene
    from crowdsight.core.types import Detections, Frame

    scene = parse_scene(
        {
            "zones": [{"id": "hall", "polygon": [[0, 0], [200, 0], [200, 400], [0, 400]]}],
            "rules": {
                "overcrowding": {"warn_per_mpx": 60, "critical_per_mpx": 90, "min_duration_s": 1}
            },
        }
    )
    analytics, image = SceneAnalytics(scene, "cam-1"), np.zeros((400, 400, 3), np.uint8)
    for i in range(60):  # 6 people in the hall (limit 4.8) from 1 s to 4 s, then 2
        n = 6 if 10 <= i < 40 else 2
        xyxy = np.array([[10 + 20 * k, 190, 30 + 20 * k, 250] for k in range(n)], np.float32)
        dets = Detections(
            xyxy=xyxy,
            confidence=np.ones(n, np.float32),
            class_id=np.zeros(n, int),
            tracker_id=np.arange(n),
        )
        frame = Frame("cam-1", i, 1000.0 + i / 10, image)
        store.record_events(analytics.update(frame, dets, None, False).events)
    viewer = bearer(tokens["viewer"])
    rows = client.get("/api/events?type=overcrowding", headers=viewer).json()
    assert len(rows) == 1
    assert rows[0]["end_ts_s"] == pytest.approx(1004.0)
    assert rows[0]["payload"]["reason"] == "6 people in hall for 3 s, limit 5"
    assert "Mpx" not in str(rows[0]["payload"]["reason"])
    assert client.get("/api/events?type=zone_entered", headers=viewer).json() == []
