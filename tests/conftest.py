"""Shared fixtures: where the evaluation data is, and whether models are installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """$CROWDSIGHT_SHARED_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("CROWDSIGHT_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data; tests using it skip when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path} (set CROWDSIGHT_SHARED_DATA)")
    return path


def require_model(name: str) -> None:
    """Skip the calling test when model ``name`` is not installed."""
    from crowdsight.models.install import read_manifest

    if name not in read_manifest():
        pytest.skip(f"model {name!r} not installed: run `crowdsight models install`")


@pytest.fixture(scope="session")
def csrnet() -> None:
    require_model("csrnet")
