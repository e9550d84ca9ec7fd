"""Store behaviour on SQLite and (when CROWDSIGHT_TEST_PG_URL is set) real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from crowdsight.core.errors import InputError
from crowdsight.core.events import LineCrossed, Overcrowding, ZoneEntered
from crowdsight.privacy.retention import purge_rows
from crowdsight.store import Camera, EventFilter, Store
from crowdsight.store import migrate as store_migrate
from crowdsight.store.tables import Base
from tests.api.support import BACKENDS, open_store, store_url


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as u:
        yield u


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url, sinks=["mqtt", "webhook:ops"]) as s:
        yield s


def test_migrations_match_the_orm_and_are_rerunnable(url: str) -> None:
    with open_store(url) as s:
        s.migrate()  # a second upgrade is a no-op
        with s.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        store_migrate.downgrade(s.engine)
        assert "events" not in inspect(s.engine).get_table_names()
        s.migrate()
        assert "events" in inspect(s.engine).get_table_names()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as s, s.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0


def test_replaying_an_event_never_duplicates(store: Store) -> None:
    event = Overcrowding(camera_id="cam-1", start_ts_s=100.0, count=42.0)
    assert store.record_events([event]) == [event.event_id]
    assert store.record_events([event]) == []
    assert len(store.query_events()) == 1
    # One outbox row per sink for the single state.
    assert sorted(o.sink for o in store.list_outbox()) == ["mqtt", "webhook:ops"]


def test_open_then_closed_event_updates_the_row_and_queues_each_state(store: Store) -> None:
    opened = Overcrowding(camera_id="cam-1", start_ts_s=100.0, count=42.0)
    closed = opened.closed(130.0, peak=55.0)
    store.record_events([opened])
    store.record_events([closed], snapshots={opened.event_id: b"\xff\xd8jpeg"})
    store.record_events([closed])  # replay of the closed state

    rows = store.query_events()
    assert len(rows) == 1
    assert rows[0].end_ts_s == 130.0 and rows[0].revision == 2 and rows[0].has_snapshot
    assert rows[0].payload["peak"] == 55.0
    outbox = store.list_outbox(event_id=opened.event_id)
    assert sorted((o.sink, o.revision) for o in outbox) == [
        ("mqtt", 1),
        ("mqtt", 2),
        ("webhook:ops", 1),
        ("webhook:ops", 2),
    ]
    assert [o.payload["end_ts_s"] for o in outbox if o.sink == "mqtt"] == [None, 130.0]
    assert store.get_snapshot(opened.event_id) == b"\xff\xd8jpeg"


def test_snapshots_go_to_files_when_a_folder_is_given(url: str, tmp_path: Path) -> None:
    with open_store(url, snapshot_dir=tmp_path / "snaps") as s:
        event = LineCrossed(camera_id="cam-1", start_ts_s=5.0, end_ts_s=5.0, line_id="door")
        s.record_events([event], snapshots={event.event_id: b"jpeg-bytes"})
        assert (tmp_path / "snaps" / "cam-1" / f"{event.event_id}.jpg").read_bytes() == (
            b"jpeg-bytes"
        )
        assert s.get_snapshot(event.event_id) == b"jpeg-bytes"


def _seed_events(store: Store) -> dict[str, str]:
    events = {
        "a": ZoneEntered(camera_id="cam-1", start_ts_s=10.0, zone_id="gate", track_ids=(1,)),
        "b": ZoneEntered(camera_id="cam-1", start_ts_s=20.0, zone_id="hall", track_ids=(1,)),
        "c": ZoneEntered(camera_id="cam-1", start_ts_s=25.0, zone_id="hall", track_ids=(2,)),
        "d": Overcrowding(camera_id="cam-2", start_ts_s=30.0, zone_id="hall", count=9.0),
        "e": LineCrossed(camera_id="cam-2", start_ts_s=40.0, end_ts_s=40.0, track_ids=(1,)),
    }
    store.record_events(list(events.values()))
    store.record_descriptions(
        "cam-1",
        [
            {"track_id": 1, "text": "red top, blue jeans", "ts_s": 10.0},
            {"track_id": 2, "text": "black top, carrying a bag", "ts_s": 25.0},
        ],
    )
    store.record_descriptions("cam-2", [{"track_id": 1, "text": "white van", "ts_s": 40.0}])
    return {k: e.event_id for k, e in events.items()}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, "edcba"),
        ({"camera_id": "cam-1"}, "cba"),
        ({"type": "zone_entered"}, "cba"),
        ({"zone_id": "hall"}, "dcb"),
        ({"since": 21.0}, "edc"),
        ({"until": 20.0}, "ba"),
        ({"since": 15.0, "until": 35.0, "camera_id": "cam-1"}, "cb"),
        ({"q": "red top"}, "ba"),
        ({"q": "TOP"}, "cba"),
        ({"q": "bag black"}, "c"),
        ({"q": "white van"}, "e"),
        ({"q": "red van"}, ""),
        ({"q": "100%_"}, ""),
        ({"limit": 2}, "ed"),
        ({"limit": 2, "offset": 2}, "cb"),
    ],
)
def test_event_query_filters(store: Store, filters: dict[str, object], expected: str) -> None:
    ids = _seed_events(store)
    got = [e.event_id for e in store.query_events(EventFilter(**filters))]  # type: ignore[arg-type]
    assert got == [ids[k] for k in expected]


def test_flows_count_zone_to_zone_moves(store: Store) -> None:
    _seed_events(store)
    flows = store.flows(camera_id="cam-1")
    assert [(f.from_zone, f.to_zone, f.count) for f in flows] == [("gate", "hall", 1)]


def test_flows_from_counters_sum_their_rises_across_restarts(store: Store) -> None:
    """Cameras report flows as cumulative ``flow:a>b`` counters (sampled once a second)."""
    samples = [(10.0, 1.0), (70.0, 3.0), (130.0, 3.0), (190.0, 1.0), (250.0, 2.0)]
    for ts, value in samples:  # the drop at 190 s is a restart: its 1 counts
        store.record_metrics("cam-9", ts, {"flow:gate>hall": value, "count": 5.0})
    store.record_metrics("cam-9", 250.0, {"flow:hall>gate": 4.0})
    flows = store.flows(camera_id="cam-9")
    assert [(f.from_zone, f.to_zone, f.count) for f in flows] == [
        ("gate", "hall", 5),
        ("hall", "gate", 4),
    ]
    window = store.flows(camera_id="cam-9", since=60.0, until=200.0)
    assert [(f.from_zone, f.to_zone, f.count) for f in window] == [("gate", "hall", 3)]


def test_metrics_are_bucketed(store: Store) -> None:
    for ts, value in [(0.0, 1.0), (1.0, 3.0), (61.0, 10.0), (62.0, float("nan")), (125.0, 4.0)]:
        store.record_metrics("cam-1", ts, {"count": value})
    points = store.query_metrics("cam-1", "count", bucket_s=60.0)
    assert [(p.ts_s, p.mean, p.min, p.max, p.count) for p in points] == [
        (0.0, 2.0, 1.0, 3.0, 2),
        (60.0, 10.0, 10.0, 10.0, 1),
        (120.0, 4.0, 4.0, 4.0, 1),
    ]
    fine = store.query_metrics("cam-1", "count", since=0.0, until=10.0, bucket_s=5.0)
    assert [(p.ts_s, p.mean) for p in fine] == [(0.0, 2.0)]
    assert store.metric_names("cam-1") == ["count"]
    with pytest.raises(InputError, match="bucket_s"):
        store.query_metrics("cam-1", "count", since=0.0, until=1e9, bucket_s=1.0)


@pytest.mark.parametrize(
    "item",
    [
        {"track_id": 1, "text": "woman in red top"},
        {"track_id": 1, "text": "red top", "fields": {"gender": "x"}},
        {"track_id": 1, "text": "red top", "fields": {"age_group": "adult"}},
        {"track_id": 1, "text": "red top", "fields": {"note": "ethnicity unknown"}},
        {"text": "no track id"},
    ],
)
def test_descriptions_refuse_personal_traits(store: Store, item: dict[str, object]) -> None:
    with pytest.raises(InputError):
        store.record_descriptions("cam-1", [item], strict=True)
    assert store.query_descriptions() == []
    # Live path: the refused item is skipped, the good one in the same batch is kept.
    good = {"track_id": 2, "text": "grey coat"}
    assert store.record_descriptions("cam-1", [item, good]) == 1
    assert [d.text for d in store.query_descriptions()] == ["grey coat"]


def test_description_update_keeps_first_seen(store: Store) -> None:
    store.record_descriptions("c", [{"track_id": 7, "text": "grey coat", "ts_s": 5.0}])
    store.record_descriptions("c", [{"track_id": 7, "text": "grey coat, bag", "ts_s": 9.0}])
    [d] = store.query_descriptions("c")
    assert (d.text, d.first_seen_ts_s, d.last_seen_ts_s) == ("grey coat, bag", 5.0, 9.0)


def test_camera_crud(store: Store) -> None:
    cam = Camera(id="entrance", name="Entrance", source="rtsp://x/1", scene={"zones": []})
    store.create_camera(cam)
    with pytest.raises(InputError):
        store.create_camera(cam)
    zone = {"id": "a", "polygon": [[0, 0], [10, 0], [10, 10]]}
    changed = Camera.model_validate(
        cam.model_dump() | {"name": "Main entrance", "scene": {"zones": [zone]}}
    )
    assert store.update_camera(changed) == changed
    loaded = store.get_camera("entrance")
    assert loaded == changed and loaded is not None
    # The scene is typed when it enters, and stored as given (defaults left out).
    assert loaded.scene.zones[0].polygon == [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)]
    assert loaded.scene.model_dump(mode="json", exclude_unset=True) == {"zones": [zone]}
    assert [c.id for c in store.list_cameras()] == ["entrance"]
    assert store.delete_camera("entrance") and not store.delete_camera("entrance")
    assert store.update_camera(cam) is None


def test_users_tokens_and_audit(store: Store) -> None:
    user = store.create_user("ann", "s3cret-pass", "operator")
    assert store.verify_password("ann", "s3cret-pass") == user
    assert store.verify_password("ann", "wrong") is None
    assert store.verify_password("bob", "s3cret-pass") is None
    secret, token = store.issue_token(user.id, "ci")
    auth = store.resolve_token(secret)
    assert auth is not None and auth.user.username == "ann" and auth.token_id == token.id
    assert store.resolve_token(secret + "x") is None
    with store.engine.connect() as conn:  # only the hash is stored
        stored = conn.execute(text("SELECT token_hash FROM api_tokens")).scalar()
    assert stored is not None and secret not in stored
    assert store.revoke_token(user.id, token.id)
    assert store.resolve_token(secret) is None

    session, _ = store.issue_token(user.id, "login", kind="session", ttl_s=-1.0)
    assert store.resolve_token(session) is None  # expired

    store.audit("ann", "snapshot.export", "event x", "127.0.0.1")
    [entry] = store.query_audit(action="snapshot.export")
    assert (entry.username, entry.detail) == ("ann", "event x")
    assert store.delete_user("ann") and store.list_users() == []


def test_retention_deletes_old_rows_and_snapshot_files(url: str, tmp_path: Path) -> None:
    with open_store(url, sinks=["mqtt"], snapshot_dir=tmp_path / "snaps") as s:
        old = Overcrowding(camera_id="c", start_ts_s=100.0, end_ts_s=200.0, track_ids=(1,))
        stuck_open = Overcrowding(camera_id="c", start_ts_s=150.0)
        recent = ZoneEntered(camera_id="c", start_ts_s=5_000.0, zone_id="a", track_ids=(2,))
        s.record_events([old, stuck_open, recent], snapshots={old.event_id: b"jpg"})
        s.record_metrics("c", 100.0, {"n": 1.0})
        s.record_metrics("c", 5_000.0, {"n": 2.0})
        s.record_descriptions(
            "c",
            [{"track_id": 1, "text": "red top", "ts_s": 100.0}, {"track_id": 2, "text": "bag"}],
        )
        s.record_descriptions("c", [{"track_id": 2, "text": "bag", "ts_s": 5_000.0}])
        snapshot = tmp_path / "snaps" / "c" / f"{old.event_id}.jpg"
        assert snapshot.is_file()

        report = purge_rows(1.0, s.delete_before, now_s=5_000.0 + 86_400.0 - 1.0)
        assert report.deleted == 2
        assert [e.event_id for e in s.query_events()] == [recent.event_id]
        assert {o.event_id for o in s.list_outbox()} == {recent.event_id}
        assert not snapshot.exists()
        assert [p.ts_s for p in s.query_metrics("c", "n", bucket_s=5.0)] == [5_000.0]
        assert [d.track_id for d in s.query_descriptions()] == [2]


_CAMERA_ROW = {
    "id": "cam",
    "name": "Cam",
    "source": "0",
    "loop": False,
    "enabled": True,
    "detect_every": 1,
    "density_every_s": 1.0,
    "scene": {},
    "created_at": 0.0,
    "updated_at": 0.0,
}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("detect_every", 0),
        ("detect_every", 1001),
        ("density_every_s", -0.5),
        ("density_every_s", 3601.0),
    ],
)
def test_database_refuses_cadences_outside_the_config_bounds(
    url: str, column: str, value: float
) -> None:
    """The CHECK constraints hold the bounds of `crowdsight.config.camera`, past pydantic."""
    from sqlalchemy.exc import IntegrityError

    from crowdsight.store.tables import CameraRow

    with open_store(url) as s:
        with pytest.raises(IntegrityError), s.engine.begin() as conn:
            conn.execute(CameraRow.__table__.insert().values(**{**_CAMERA_ROW, column: value}))
        with s.engine.begin() as conn:  # the bounds themselves are allowed
            conn.execute(
                CameraRow.__table__.insert().values(
                    **{**_CAMERA_ROW, "detect_every": 1000, "density_every_s": 0.0}
                )
            )
        assert s.get_camera("cam") is not None


def test_cadence_checks_migrate_an_existing_database(url: str) -> None:
    from crowdsight.store.tables import CameraRow

    with open_store(url) as s:
        store_migrate.downgrade(s.engine, "0002")
        with s.engine.begin() as conn:
            conn.execute(CameraRow.__table__.insert().values(**_CAMERA_ROW))
        s.migrate()
        camera = s.get_camera("cam")
        assert camera is not None and camera.detect_every == 1
