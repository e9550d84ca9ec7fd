"""`RayRunner`: the same supervision with camera workers as Ray actors (skips without Ray).

Ray is an optional extra (``crowdsight[ray]``). CI installs it and starts a real local cluster
on loopback (`ray start --head`, see scripts/ci_services.sh), then points these tests at it with
``CROWDSIGHT_TEST_RAY_ADDRESS``; there a missing Ray is an error, not a skip. Elsewhere the
tests skip without Ray, or start a private local Ray instance with two CPUs for the module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crowdsight.pipeline.ray_runner import RayRunner
from crowdsight.store import Store
from crowdsight.store.records import Camera
from tests.integration.test_reliability import (
    LINE_EVERY,
    line_frames,
    status,
    tick_settings,
    wait_for,
    write_video,
)

RAY_ADDRESS = os.environ.get("CROWDSIGHT_TEST_RAY_ADDRESS")
if RAY_ADDRESS:
    import ray  # a cluster was started for these tests: Ray must be there
else:
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'crowdsight[ray]'")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """The CI cluster when ``CROWDSIGHT_TEST_RAY_ADDRESS`` names one, else a private local Ray."""
    if RAY_ADDRESS:
        ray.init(address=RAY_ADDRESS, log_to_driver=False)
        assert ray.cluster_resources().get("CPU", 0) >= 1, "the Ray cluster offers no CPU"
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ray_cameras_spread_over_actors_and_stop_cleanly(tmp_path: Path, ray_local: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'crowdsight.db'}")
    store.migrate()
    n = 120
    videos = [write_video(tmp_path / f"cam{i}.mp4", n, fps=100) for i in range(2)]
    runner = RayRunner(store, tick_settings(realtime=True), num_cpus=0.5)
    runner.start()
    try:
        for i, video in enumerate(videos):
            runner.add_camera(Camera(id=f"cam{i}", name=f"cam{i}", source=str(video), loop=True))
        for i in range(2):
            wait_for(
                lambda i=i: (status(runner, f"cam{i}").get("last_frame_index") or 0) >= 20,
                90,
                f"frames of cam{i}",
            )
        pids = [runner.worker_pid(f"cam{i}") for i in range(2)]
    finally:
        runner.stop()
    # One actor process per camera, neither of them the driver.
    assert None not in pids
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    # A clean stop leaves no camera actor process behind.
    wait_for(lambda: not any(_alive(p) for p in pids if p is not None), 30, "actors to exit")
    for i in range(2):
        assert line_frames(store, f"cam{i}")[:3] == list(range(0, 3 * LINE_EVERY, LINE_EVERY))
    store.close()


def test_ray_actor_killed_mid_stream_is_replaced_without_losing_events(
    tmp_path: Path, ray_local: Any
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'crowdsight.db'}")
    store.migrate()
    n = 300
    video = write_video(tmp_path / "cam.mp4", n, fps=100)
    runner = RayRunner(store, tick_settings(realtime=True), num_cpus=0.5)
    runner.start()
    try:
        runner.add_camera(Camera(id="cam", name="cam", source=str(video), loop=False))
        wait_for(lambda: (status(runner, "cam").get("last_frame_index") or 0) >= 80, 90, "frames")
        assert runner.kill_worker("cam") is not None
        wait_for(lambda: status(runner, "cam").get("state") == "finished", 90, "finish")
        st = status(runner, "cam")
    finally:
        runner.stop()
    assert st["restarts"] == 1
    assert line_frames(store, "cam") == list(range(0, n, LINE_EVERY))
    events = store.query_events(camera_id="cam", limit=10_000)
    assert all(e.end_ts_s is not None for e in events)
    store.close()
