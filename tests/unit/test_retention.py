"""Retention purge of snapshot files (set mtimes) and of rows through a store callback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crowdsight.core.errors import ConfigError
from crowdsight.privacy.retention import purge_older_than, purge_rows, retention_cutoff

NOW = 1_800_000_000.0
DAY = 86_400.0


def _file(path: Path, age_days: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = NOW - age_days * DAY
    os.utime(path, (t, t))
    return path


def test_purges_only_old_snapshots(tmp_path: Path) -> None:
    old = _file(tmp_path / "cam1" / "a.jpg", 40, size=7)
    new = _file(tmp_path / "cam1" / "b.jpg", 5)
    old_other = _file(tmp_path / "notes.txt", 400)  # not a snapshot type: left alone
    old_sub = _file(tmp_path / "cam2" / "old" / "c.PNG", 31, size=3)
    report = purge_older_than(30, tmp_path, now_s=NOW)
    assert (report.deleted, report.kept, report.bytes_freed) == (2, 1, 10)
    assert not old.exists() and not old_sub.exists()
    assert new.exists() and old_other.exists()
    assert not (tmp_path / "cam2").exists()  # emptied folders are removed


def test_dry_run_deletes_nothing(tmp_path: Path) -> None:
    f = _file(tmp_path / "a.jpg", 10)
    assert purge_older_than(1, tmp_path, now_s=NOW, dry_run=True).deleted == 1
    assert f.exists()


def test_boundary_and_missing_folder(tmp_path: Path) -> None:
    _file(tmp_path / "edge.jpg", 29.99)
    assert purge_older_than(30, tmp_path, now_s=NOW).deleted == 0
    assert purge_older_than(30, tmp_path / "missing", now_s=NOW).deleted == 0


def test_rows_get_the_cutoff() -> None:
    seen: list[float] = []

    def delete_before(cutoff: float) -> int:
        seen.append(cutoff)
        return 3

    assert purge_rows(7, delete_before, now_s=NOW).deleted == 3
    assert seen == [NOW - 7 * DAY]


def test_negative_days_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        retention_cutoff(-1)
