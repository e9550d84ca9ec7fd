"""`RayRunner`: the same supervision with camera workers as Ray actors (skips without Ray).

Ray is an optional extra (``crowdsight[ray]``); CI does not install it, so this runs where
Ray is installed. One local Ray instance with two CPUs is started for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crowdsight.pipeline.runner import RayRunner
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

ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'crowdsight[ray]'")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


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
