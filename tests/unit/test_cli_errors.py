"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing half-written lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crowdsight.sources.writer import VideoWriter
from tests.api.support import free_port


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crowdsight", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def make_video(path: Path, n: int = 60) -> None:
    rng = np.random.default_rng(1)
    with VideoWriter(path, fps=25) as w:
        for i in range(n):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            img[:, (i % 64)] = 255
            w.write(img)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]


NO_MODELS = ("--no-density", "--no-detect")


def test_missing_input(tmp_path: Path) -> None:
    proc = run_cli("analyze", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "no such file")


def test_not_an_image_or_video(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    assert_one_line_error(
        run_cli("analyze", str(f), "--out", str(tmp_path / "o")), "neither an image"
    )


def test_broken_image(tmp_path: Path) -> None:
    f = tmp_path / "frame.jpg"
    f.write_bytes(b"\xff\xd8 not really a jpeg")
    assert_one_line_error(
        run_cli("analyze", str(f), "--out", str(tmp_path / "o")), "not a readable image"
    )


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    assert_one_line_error(
        run_cli("analyze", str(tmp_path / "frames"), "--out", str(tmp_path / "o")), "no image files"
    )


def test_corrupt_video(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    f.write_bytes(np.random.default_rng(0).bytes(20_000))
    assert_one_line_error(
        run_cli("analyze", str(f), "--out", str(tmp_path / "o")), "not a readable video"
    )


def test_video_decodes_fully(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    make_video(f)
    proc = run_cli("analyze", str(f), "--out", str(tmp_path / "o"), *NO_MODELS, "--no-redact")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "o/summary.json").read_text())
    assert summary["frames"] == 60
    assert summary["error"] is None
    assert (tmp_path / "o/annotated.mp4").stat().st_size > 0


def test_truncated_video_keeps_partial_results(tmp_path: Path) -> None:
    f = tmp_path / "clip.mkv"  # Matroska: headers first, so a cut file still opens
    make_video(f, n=120)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    proc = run_cli("analyze", str(f), "--out", str(tmp_path / "o"), *NO_MODELS, "--no-redact")
    assert_one_line_error(proc, "partial results")
    summary = json.loads((tmp_path / "o/summary.json").read_text())
    assert 0 < summary["frames"] < 120
    assert summary["error"]
    rows = (tmp_path / "o/counts.csv").read_text().strip().splitlines()
    assert len(rows) == summary["frames"] + 1


needs_dev_full = pytest.mark.skipif(
    not Path("/dev/full").exists(), reason="needs /dev/full (writes to it fail with ENOSPC)"
)


@needs_dev_full
@pytest.mark.parametrize("output", ["annotated.mp4", "counts.csv", "summary.json"])
def test_full_disk_while_writing_results(tmp_path: Path, output: str) -> None:
    """Each output in turn lands on a full disk: /dev/full answers every write with ENOSPC."""
    f = tmp_path / "clip.mp4"
    make_video(f)
    before = f.read_bytes()
    out = tmp_path / "o"
    out.mkdir()
    (out / output).symlink_to("/dev/full")
    proc = run_cli("analyze", str(f), "--out", str(out), *NO_MODELS, "--no-redact")
    assert_one_line_error(proc, f"no space left on the disk holding {out}")
    assert "free space there or write elsewhere with --out" in proc.stderr
    assert f.read_bytes() == before  # the input is untouched


@needs_dev_full
def test_full_disk_on_a_single_image(tmp_path: Path) -> None:
    """A single image's annotated PNG on a full disk: one clear line too."""
    img = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((48, 64, 3), np.uint8))
    out = tmp_path / "o"
    out.mkdir()
    (out / "annotated.png").symlink_to("/dev/full")
    proc = run_cli("analyze", str(img), "--out", str(out), *NO_MODELS, "--no-redact")
    assert_one_line_error(proc, f"no space left on the disk holding {out}")


def test_output_folder_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    make_video(f, n=5)
    out = tmp_path / "o"
    out.mkdir()
    (out / "counts.csv").mkdir()  # a folder where a results file goes
    proc = run_cli("analyze", str(f), "--out", str(out), *NO_MODELS, "--no-redact")
    assert_one_line_error(proc, f"cannot write the results to {out}")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--images", "/nonexistent", "--points", "/nonexistent", "--format", "shanghaitech"],
            "no such file",
        ),
        (["--images", ".", "--points", ".", "--format", "mall"], "not a readable .mat"),
    ],
)
def test_eval_counting_bad_paths(args: list[str], needle: str, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("eval", "counting", *args), needle)


def test_eval_counting_bad_calibration_file(tmp_path: Path) -> None:
    bad = tmp_path / "cal.json"
    bad.write_text("{gains: 1")
    args = ["--images", ".", "--points", ".", "--format", "mall", "--calibration", str(bad)]
    assert_one_line_error(run_cli("eval", "counting", *args), "not JSON")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--frames", ".", "--points", "/nonexistent", "--format", "mall", "--out", "c.json"],
            "no such file",
        ),
        (
            ["--frames", ".", "--points", ".", "--format", "mall", "--out", "/nonexistent/c.json"],
            "does not exist",
        ),
    ],
)
def test_calibrate_counting_bad_paths(args: list[str], needle: str) -> None:
    assert_one_line_error(run_cli("calibrate", "counting", *args), needle)


def test_bad_range(tmp_path: Path) -> None:
    from crowdsight.core.errors import InputError
    from crowdsight.datasets.counting import parse_range

    assert parse_range("801-2000", 2000) == range(800, 2000)
    with pytest.raises(InputError):
        parse_range("0-10", 2000)
    with pytest.raises(InputError):
        parse_range("abc", 2000)


# -- issue 18: hostile and degenerate inputs, one line each ------------------------------------


def test_zero_byte_png(tmp_path: Path) -> None:
    f = tmp_path / "empty.png"
    f.write_bytes(b"")
    proc = run_cli("analyze", str(f), *NO_MODELS, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "empty file")


def test_one_pixel_image(tmp_path: Path) -> None:
    import cv2

    f = tmp_path / "dot.png"
    cv2.imwrite(str(f), np.zeros((1, 1, 3), np.uint8))
    proc = run_cli("analyze", str(f), "--no-detect", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "too small")


def test_huge_png_is_refused_from_its_header(tmp_path: Path) -> None:
    import resource

    from PIL import Image

    f = tmp_path / "huge.png"
    # 20000x20000 one-bit PNG: ~50 kB on disk, 1.2 GB once decoded to RGB.
    Image.new("1", (20000, 20000)).save(f, optimize=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdsight",
            "analyze",
            str(f),
            "--no-density",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        # Fails fast (MemoryError) instead of paging if the pixels were decoded after all.
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)),
    )
    assert_one_line_error(proc, "too large")


def test_non_utf8_serve_config(tmp_path: Path) -> None:
    f = tmp_path / "serve.yaml"
    f.write_bytes(b"server: {host: \xff\xfe}\n")
    assert_one_line_error(run_cli("serve", "--config", str(f)), "UTF-8")


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("serve", "--data-dir", str(blocker / "data"), "--port", str(free_port()))
    assert_one_line_error(proc, "data dir")


def test_database_file_that_is_not_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "crowdsight.db"
    db.write_bytes(b"this is not a database " * 200)
    f = tmp_path / "serve.yaml"
    port = free_port()
    f.write_text(f"server: {{database_url: 'sqlite:///{db}', port: {port}}}\n", encoding="utf-8")
    assert_one_line_error(run_cli("serve", "--config", str(f)), "not a usable database")


def test_tiny_video_frames(tmp_path: Path) -> None:
    f = tmp_path / "tiny.mp4"
    with VideoWriter(f, fps=25) as w:
        for _ in range(5):
            w.write(np.zeros((16, 16, 3), np.uint8))
    proc = run_cli("analyze", str(f), *NO_MODELS, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "outside the accepted size")


def test_serve_config_with_a_bad_scene_names_the_camera_and_the_field(tmp_path: Path) -> None:
    # The scene is validated once, with the camera (a typed SceneConfig), at the boundary.
    f = tmp_path / "serve.yaml"
    f.write_text(
        "cameras:\n  - {id: cam, name: Cam, source: '0',\n"
        "     scene: {zones: [{id: z, polygon: [[0, 0], [1, 1]]}]}}\n",
        encoding="utf-8",
    )
    proc = run_cli("serve", "--config", str(f))
    assert_one_line_error(proc, "cameras.0.scene.zones.0.polygon: a zone polygon needs at least")


@pytest.mark.parametrize("fps", ["0", "-1", "nan", "inf"])
def test_frame_rate_must_be_positive(tmp_path: Path, fps: str) -> None:
    """0 used to mean 25 without a word; -1 ran a folder's clock backwards."""
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2

    cv2.imwrite(str(frames / "000001.png"), np.zeros((48, 64, 3), np.uint8))
    proc = run_cli("analyze", str(frames), "--out", str(tmp_path / "o"), "--fps", fps, *NO_MODELS)
    assert_one_line_error(proc, "is not a positive number of frames per second")
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_max_frames_must_be_at_least_one(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    make_video(f, n=5)
    proc = run_cli("analyze", str(f), "--out", str(tmp_path / "o"), "--max-frames", "0")
    assert proc.returncode == 2, proc.stderr
    assert "Invalid value for '--max-frames'" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_serve_on_a_port_that_is_taken_says_so_before_starting(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert_one_line_error(proc, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "choose another --port" in proc.stderr
    assert "serving on" not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()  # no database, no admin user created


def test_serve_on_a_host_that_does_not_resolve(tmp_path: Path) -> None:
    proc = run_cli("serve", "--host", "999.1.1.1", "--data-dir", str(tmp_path / "data"))
    assert_one_line_error(proc, "cannot listen on 999.1.1.1:8080")
    assert "check --host" in proc.stderr
