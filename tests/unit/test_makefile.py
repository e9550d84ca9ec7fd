"""The Makefile's entry points say what is missing instead of failing somewhere deeper."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_analyze_without_input_says_how_to_call_it() -> None:
    r = subprocess.run(
        ["make", "-s", "analyze"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode != 0
    assert "make analyze needs INPUT" in r.stderr
    # It stopped before installing anything or analysing the current folder.
    assert "folder holds no image files" not in r.stderr + r.stdout
