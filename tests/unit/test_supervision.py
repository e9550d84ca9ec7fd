"""Supervision policies, the shared back-off and report persistence, without processes."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Any

import pytest

from crowdsight.config.runner import RunnerSettings
from crowdsight.core.backoff import Backoff
from crowdsight.core.errors import InputError
from crowdsight.core.events import Event, Fall, OpenEvents, Overcrowding
from crowdsight.pipeline.persistence import ReportWriter
from crowdsight.pipeline.supervision import CameraState, after_exit, resume_spec, with_stable_ids
from crowdsight.pipeline.worker import WorkerReport, WorkerSpec


@pytest.mark.parametrize(
    ("backoff", "attempt", "expected"),
    [
        (Backoff(initial_s=1, max_s=60, jitter=0), 0, 1.0),
        (Backoff(initial_s=1, max_s=60, jitter=0), 3, 8.0),
        (Backoff(initial_s=1, max_s=60, jitter=0), 6, 60.0),
        (Backoff(initial_s=0.2, max_s=30, jitter=0), -1, 0.2),
        (Backoff(initial_s=0.5, max_s=30, factor=3, jitter=0), 2, 4.5),
        (Backoff(initial_s=1, max_s=60, jitter=0), 10_000, 60.0),  # no float overflow
        (Backoff(initial_s=0, max_s=60, jitter=0.2), 5, 0.0),
    ],
)
def test_backoff_curve(backoff: Backoff, attempt: int, expected: float) -> None:
    assert backoff.delay_s(attempt, random.Random(0)) == pytest.approx(expected)


def test_backoff_jitter_stays_within_its_band() -> None:
    b = Backoff(initial_s=1, max_s=10, jitter=0.2)
    rng = random.Random(1)
    delays = [b.delay_s(2, rng) for _ in range(500)]
    assert 3.2 <= min(delays) < 3.4 and 4.6 < max(delays) <= 4.8
    assert max(b.delay_s(50, rng) for _ in range(500)) <= 12.0


def _cam(replayable: bool = True, **state: Any) -> CameraState:
    cam = CameraState(WorkerSpec(camera_id="c", source="x.mp4"), replayable)
    for k, v in state.items():
        setattr(cam, k, v)
    return cam


SETTINGS = RunnerSettings(restart_initial_s=1.0, restart_max_s=8.0, stable_after_s=60.0)


def test_crashes_restart_with_doubling_jittered_delays_then_read_failed() -> None:
    cam, rng, delays = _cam(started_at=0.0), random.Random(0), []
    for k in range(6):
        now = 10.0 * (k + 1)
        after_exit(cam, -9, now, SETTINGS, stopping=False, rng=rng)
        delays.append(cam.next_start - now)
        assert cam.state == ("failed" if k >= 4 else "restarting")
    bases = [1, 2, 4, 8, 8, 8]
    assert all(0.8 * b <= d <= 1.2 * b for d, b in zip(delays, bases, strict=True))
    assert cam.restarts == 6 and cam.error == "worker exited with code -9"


def test_a_stable_run_resets_the_crash_streak() -> None:
    cam = _cam(started_at=0.0, crash_streak=4)
    after_exit(cam, 1, 61.0, SETTINGS, stopping=False, rng=random.Random(0))
    assert cam.crash_streak == 1 and cam.state == "restarting"
    assert cam.next_start - 61.0 <= 1.2


@pytest.mark.parametrize(
    ("state", "code", "stopping", "expected"),
    [
        ({"done": True}, 0, False, "finished"),
        ({"done": True}, 1, False, "restarting"),
        ({"removing": True}, -9, False, "stopped"),
        ({}, -9, True, "stopped"),
        ({"restart_requested": True}, 0, False, "restarting"),
    ],
)
def test_exit_outcomes(state: dict[str, Any], code: int, stopping: bool, expected: str) -> None:
    cam = _cam(**state)
    after_exit(cam, code, 5.0, SETTINGS, stopping=stopping, rng=random.Random(0))
    assert cam.state == expected
    if state.get("restart_requested"):
        assert cam.next_start == 5.0 and not cam.restart_requested and cam.crash_streak == 0


@pytest.mark.parametrize(
    ("replayable", "checkpoint", "start_index", "skip_to"),
    [(True, None, 0, None), (True, 41, 0, 42), (False, None, 0, None), (False, 41, 42, None)],
)
def test_resume_replays_files_and_continues_live_numbering(
    replayable: bool, checkpoint: int | None, start_index: int, skip_to: int | None
) -> None:
    spec = resume_spec(_cam(replayable, checkpoint=checkpoint))
    assert (spec.start_index, spec.skip_to) == (start_index, skip_to)


class _FlakyStore:
    def __init__(self, failures: int, exc: Exception) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0
        self.events: list[Any] = []

    def record_events(self, events: list[Any], snapshots: Any = None) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        self.events.extend(events)

    def record_metrics(self, camera_id: str, ts_s: float, metrics: dict[str, float]) -> None:
        raise AssertionError("not used")


def _writer(store: _FlakyStore, stopping: bool = False) -> tuple[ReportWriter, list[float]]:
    slept: list[float] = []
    flag = threading.Event()
    if stopping:
        flag.set()
    return ReportWriter(store, retry_max_s=0.5, stopping=flag, sleep=slept.append), slept


def test_store_writes_retry_with_the_shared_backoff() -> None:
    store = _FlakyStore(4, ConnectionError("db down"))
    writer, slept = _writer(store)
    writer.retry(lambda: store.record_events([1]))
    assert store.events == [1] and slept == [0.2, 0.4, 0.5, 0.5]


def test_refused_data_is_not_retried_and_shutdown_gives_up() -> None:
    store = _FlakyStore(1, InputError("bad row"))
    writer, slept = _writer(store)
    with pytest.raises(InputError):
        writer.retry(lambda: store.record_events([1]))
    assert slept == []
    store = _FlakyStore(100, ConnectionError("db down"))
    writer, slept = _writer(store, stopping=True)
    writer.retry(lambda: store.record_events([1]))
    assert store.calls == 3 and store.events == []


def test_open_events_are_closed_at_the_last_committed_frame() -> None:
    store = _FlakyStore(0, ConnectionError())
    writer, _ = _writer(store)
    ledger = OpenEvents("c", "salt")
    [opened] = ledger.assign([Overcrowding(camera_id="c", start_ts_s=1.0, count=9.0)], 3)
    writer.close_events(ledger, 7.5)
    [closed] = store.events
    assert (closed.event_id, closed.end_ts_s, closed.count) == (opened.event_id, 7.5, 9.0)
    assert len(ledger) == 0
    writer.close_events(ledger, 8.0)  # nothing left open: nothing written
    assert len(store.events) == 1


def _report(events: list[Event], frame: int, snapshots: dict[str, bytes] | None = None) -> Any:
    return WorkerReport(
        "c", last_index=frame, ts_s=frame / 10, events=events, snapshots=snapshots or {}
    )


def test_the_ledger_gives_stable_ids_and_rekeys_snapshots() -> None:
    cam = _cam()
    crowd = Overcrowding(camera_id="c", start_ts_s=1.0, frame_index=10)
    fall = Fall(camera_id="c", start_ts_s=1.0, end_ts_s=1.0, frame_index=10)
    first = with_stable_ids(cam, _report([crowd, fall], 10, {crowd.event_id: b"jpg"}))
    sid_crowd, sid_fall = (e.event_id for e in first.events)
    # Ids come from where events were raised, not from the analytics' random ids.
    assert sid_crowd != crowd.event_id and sid_crowd != sid_fall
    assert first.snapshots == {sid_crowd: b"jpg"}
    assert len(cam.ledger) == 1  # the instant fall is not kept
    # The same frame raised again (a replay after a restart) gets the same ids.
    twin = OpenEvents("c", cam.spec.id_salt)
    replay = twin.assign([replace(crowd, event_id="x"), replace(fall, event_id="y")], 10)
    assert [e.event_id for e in replay] == [sid_crowd, sid_fall]
    # An update and the closing copy keep the open event's id, then it leaves the ledger.
    later = with_stable_ids(cam, _report([replace(crowd, peak=5.0)], 11))
    assert later.events[0].event_id == sid_crowd and len(cam.ledger) == 1
    closing = with_stable_ids(cam, _report([crowd.closed(2.0)], 20))
    assert closing.events[0].event_id == sid_crowd and len(cam.ledger) == 0
    # Another salt (a re-added camera) never reuses an id.
    other = OpenEvents("c", "another-salt").assign([crowd], 10)
    assert other[0].event_id != sid_crowd


def test_a_missing_source_reads_error_with_its_reason_and_retries_with_backoff(
    tmp_path: Any,
) -> None:
    from crowdsight.sources.stream import LiveSource

    missing = tmp_path / "gone.mp4"
    cam, seen, stop = _cam(), [], threading.Event()

    def on_status(status: Any) -> None:
        cam.source = status.as_dict()  # what the worker's "status" report carries
        seen.append(cam.status())
        if len(seen) >= 3:
            stop.set()

    source = LiveSource(
        "c",
        str(missing),
        loop=True,
        realtime=False,
        stop=stop,
        on_status=on_status,
        backoff=Backoff(initial_s=0.05, max_s=0.2, jitter=0),
    )
    assert list(source) == []
    assert [s["state"] for s in seen] == ["error"] * len(seen)
    assert seen[-1]["error"].startswith(f"{missing}: no such file or folder; retrying")
    assert seen[-1]["source_state"] == "reconnecting"
    attempts = [int(s["error"].rsplit(" ", 1)[-1].rstrip(")")) for s in seen]
    assert attempts == sorted(attempts) and attempts[-1] >= 2  # it keeps retrying
    cam.source = {"state": "connected", "last_error": str(missing) + ": gone"}
    assert cam.status()["state"] == "starting"  # frames flow again: no longer an error


def test_a_source_that_gave_up_reads_error_and_says_so() -> None:
    cam = _cam(source={"state": "failed", "last_error": "rtsp://cam: refused"})
    assert (cam.status()["state"], cam.status()["error"]) == (
        "error",
        "rtsp://cam: refused; gave up retrying",
    )
    stopped = _cam(state="stopped", source={"state": "failed", "last_error": "x"})
    assert stopped.status()["state"] == "stopped"


def test_a_typed_scene_reaches_the_worker_unchanged_through_pickle_and_ray() -> None:
    """The runner hands a validated `SceneConfig` to the worker; it is never re-validated."""
    import pickle

    from crowdsight.config.scene import parse_scene
    from crowdsight.pipeline.specs import spec_for
    from crowdsight.store.records import Camera

    zone = {"id": "hall", "polygon": [[0, 0], [10, 0], [10, 10]], "kind": "restricted"}
    camera = Camera(id="c", name="C", source="x.mp4", scene={"zones": [zone]})
    spec = spec_for(camera, RunnerSettings(), "salt")
    assert spec.scene is camera.scene and spec.scene == parse_scene({"zones": [zone]})
    assert pickle.loads(pickle.dumps(spec)) == spec  # spawned worker processes
    cloudpickle = pytest.importorskip("cloudpickle", reason="Ray's serializer (crowdsight[ray])")
    assert cloudpickle.loads(cloudpickle.dumps(spec)) == spec  # Ray actors
    # An empty scene means counts and density only; naming any key runs the analytics.
    assert spec_for(Camera(id="c", name="C", source="x.mp4"), RunnerSettings(), "s").scene is None
    named = Camera(id="c", name="C", source="x.mp4", scene={"rules": {}})
    assert spec_for(named, RunnerSettings(), "s").scene is not None


def test_events_and_metrics_cross_the_pipe_as_typed_objects() -> None:
    import pickle

    from crowdsight.core.metrics import LineCounts, SceneMetrics, ZoneMetrics

    report = WorkerReport(
        "c",
        last_index=4,
        events=[Overcrowding(camera_id="c", start_ts_s=1.0, count=12.0)],
        metrics=SceneMetrics(
            zones={"hall": ZoneMetrics(occupancy=12.0, density_per_m2=2.5, los_index=3)},
            lines={"gate": LineCounts(count_in=3.0)},
        ),
    )
    back = pickle.loads(pickle.dumps(report))
    assert back == report and isinstance(back.events[0], Overcrowding)
