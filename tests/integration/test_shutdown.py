"""`crowdsight serve` stops promptly when SIGTERM reaches the whole process group.

`timeout` and systemd signal every process of the group, so the camera workers get SIGTERM
at the same moment as the server. A worker backing off from an offline camera spends most of
its time inside ``multiprocessing.Event.wait``; a handler that called ``Event.set`` there
deadlocked on the event's lock, and the runner hung setting the same event (issue 18).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.api.support import free_port


def _offline_rtsp() -> str:
    """An RTSP URL on a loopback port nobody listens on (connection refused at once)."""
    return f"rtsp://127.0.0.1:{free_port()}/offline"


def _serve_config(tmp_path: Path, port: int, source: str) -> Path:
    config = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "data_dir": str(tmp_path / "data"),
            "admin_password": "shutdown-test-password",
            "retention_days": None,
        },
        "runner": {
            "pipeline_factory": "crowdsight.pipeline.worker:tick_pipeline",
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "cameras": [{"id": "offline", "name": "offline", "source": source}],
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _wait_until_reconnecting(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    token = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited early"
        try:
            if token is None:
                r = httpx.post(
                    f"{base}/api/auth/login",
                    json={"username": "admin", "password": "shutdown-test-password"},
                )
                token = r.json()["token"] if r.status_code == 200 else None
            if token is not None:
                r = httpx.get(
                    f"{base}/api/cameras/offline/status",
                    headers={"Authorization": f"Bearer {token}"},
                )
                detail = r.json().get("detail", {})
                if r.status_code == 200 and detail.get("source_state") == "failed":
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the worker never reached the reconnect back-off")


def test_group_sigterm_with_offline_camera_exits_within_10_s(tmp_path: Path) -> None:
    port = free_port()
    config = _serve_config(tmp_path, port, _offline_rtsp())
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crowdsight", "serve", "--config", str(config)],
        start_new_session=True,  # its own process group, like a systemd unit
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        _wait_until_reconnecting(f"http://127.0.0.1:{port}", proc)
        time.sleep(1.0)  # a few back-off waits in, as in the probe
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("serve did not exit within 10 s of a group SIGTERM") from None
        assert code == 0, (tmp_path / "serve.log").read_text(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
