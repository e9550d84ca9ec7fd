"""`crowdsight analyze` on a live network stream (a loopback MJPEG-over-HTTP camera).

A stream has no end: the analysis runs until --max-frames or Ctrl-C, fails at once on a
stream it cannot read, and ends with its partial results when the stream drops for good.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from tests.integration.test_reliability import MjpegServer

MODEL_FREE = ("--no-density", "--no-detect", "--no-redact")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "crowdsight", "analyze", *args]


def _video_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture
def camera() -> Iterator[MjpegServer]:
    server = MjpegServer(fps=20).start()
    yield server
    server.stop()


def test_a_stream_is_analysed_until_max_frames(camera: MjpegServer, tmp_path: Path) -> None:
    out = tmp_path / "o"
    url = camera.url.replace("http://", "http://viewer:s3cret@")  # credentials in the URL
    proc = subprocess.run(
        _cli(url, "--out", str(out), "--max-frames", "30", *MODEL_FREE),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "stream" and summary["frames"] == 30
    assert summary["stopped_by_user"] is False and summary["error"] is None
    assert summary["skipped_frames"] >= 0
    assert len((out / "counts.csv").read_text().strip().splitlines()) == 31
    assert _video_frames(out / "annotated.mp4") == 30
    # The password never reaches the outputs or the terminal.
    assert "s3cret" not in (out / "summary.json").read_text() + proc.stderr
    assert summary["input"].startswith("http://") and "127.0.0.1" in summary["input"]


def test_a_stream_that_cannot_be_read_fails_at_once(tmp_path: Path) -> None:
    proc = subprocess.run(
        _cli("http://127.0.0.1:1/none.mjpg", "--out", str(tmp_path / "o"), *MODEL_FREE),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cannot read the stream http://127.0.0.1:1/none.mjpg" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_a_stream_that_drops_for_good_keeps_its_partial_results(
    camera: MjpegServer, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    proc = subprocess.Popen(
        _cli(camera.url, "--out", str(out), *MODEL_FREE),
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_frames(out, proc)
    camera.stop()  # the camera goes away and does not come back
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert "gave up after 3 retries" in errors[0] and "partial results for" in errors[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] > 0 and "gave up" in summary["error"]
    assert _video_frames(out / "annotated.mp4") == summary["frames"]


def test_ctrl_c_stops_the_analysis_and_writes_what_there_is(
    camera: MjpegServer, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    proc = subprocess.Popen(
        _cli(camera.url, "--out", str(out), *MODEL_FREE), stderr=subprocess.PIPE, text=True
    )
    _wait_for_frames(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped with Ctrl-C" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by_user"] is True and summary["frames"] > 0
    assert _video_frames(out / "annotated.mp4") == summary["frames"]
    rows = (out / "counts.csv").read_text().strip().splitlines()
    assert len(rows) == summary["frames"] + 1


def _wait_for_frames(out: Path, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    """Until the analysis has written a few frames' rows (the models-free CLI starts in ~3 s)."""
    deadline = time.monotonic() + timeout_s
    counts = out / "counts.csv"
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the analysis ended early"
        if counts.exists() and len(counts.read_text().splitlines()) > 5:
            return
        time.sleep(0.2)
    pytest.fail("the analysis wrote no frames")
