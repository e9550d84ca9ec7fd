"""Retention: delete stored snapshots (and, through the store, rows) older than a cutoff.

Keeping images no longer than needed is part of privacy by default. Two small pieces:

* `purge_older_than` deletes snapshot files in a folder whose modification time is older than
  ``days`` days.
* `retention_cutoff` turns ``days`` into the cutoff timestamp, and `purge_rows` is the
  storage-agnostic hook the store calls for database rows: it passes the cutoff to a delete
  function the store provides (e.g. ``DELETE FROM events WHERE end_ts < :cutoff``), so this
  module needs no database code.

Example:
    >>> from pathlib import Path
    >>> purge_older_than(30, Path("/tmp/empty-snapshots-dir"))   # doctest: +SKIP
    PurgeReport(deleted=0, kept=0, bytes_freed=0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from crowdsight.core.errors import ConfigError

#: File suffixes treated as snapshots (images and short clips).
SNAPSHOT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".mp4", ".webm"})
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class PurgeReport:
    """What a purge did.

    Attributes:
        deleted: Files (or rows) deleted.
        kept: Files younger than the cutoff that were left in place.
        bytes_freed: Total size of the deleted files (0 for rows).
    """

    deleted: int
    kept: int
    bytes_freed: int


def retention_cutoff(days: float, now_s: float | None = None) -> float:
    """Unix time before which stored items are due for deletion.

    Raises:
        ConfigError: ``days`` is negative.
    """
    if days < 0:
        raise ConfigError(f"retention days must be ≥ 0, got {days}")
    return (time.time() if now_s is None else now_s) - days * SECONDS_PER_DAY


def _snapshots(folder: Path, suffixes: Iterable[str]) -> Iterable[Path]:
    wanted = {s.lower() for s in suffixes}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix.lower() in wanted:
            yield path


def purge_older_than(
    days: float,
    snapshots_dir: Path,
    *,
    now_s: float | None = None,
    suffixes: Iterable[str] = SNAPSHOT_SUFFIXES,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete snapshot files under ``snapshots_dir`` last modified more than ``days`` ago.

    Only files with a snapshot suffix are touched (anything else in the folder is left
    alone), symlinks are never followed, and empty sub-folders are removed afterwards.

    Args:
        days: Retention period; 0 deletes every snapshot older than now.
        snapshots_dir: Folder of stored snapshots (searched recursively). A missing folder
            is an empty one.
        now_s: "Now" as Unix time (tests and replays); default the wall clock.
        suffixes: Which file types count as snapshots.
        dry_run: Count what would go without deleting.
    """
    cutoff = retention_cutoff(days, now_s)
    deleted = kept = freed = 0
    if not snapshots_dir.is_dir():
        return PurgeReport(0, 0, 0)
    for path in list(_snapshots(snapshots_dir, suffixes)):
        st = path.stat()
        if st.st_mtime < cutoff:
            if not dry_run:
                path.unlink(missing_ok=True)
            deleted += 1
            freed += st.st_size
        else:
            kept += 1
    if not dry_run:
        for sub in sorted((p for p in snapshots_dir.rglob("*") if p.is_dir()), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()
    return PurgeReport(deleted, kept, freed)


def purge_rows(
    days: float, delete_before: Callable[[float], int], *, now_s: float | None = None
) -> PurgeReport:
    """Delete stored rows older than ``days`` through a store-provided function.

    Args:
        days: Retention period.
        delete_before: Called once with the cutoff (Unix seconds); deletes the rows whose
            timestamp is earlier and returns how many it deleted.
        now_s: "Now" as Unix time; default the wall clock.

    Example:
        >>> rows = [10.0, 20.0, 1e12]
        >>> def delete_before(cutoff):
        ...     gone = [r for r in rows if r < cutoff]
        ...     rows[:] = [r for r in rows if r >= cutoff]
        ...     return len(gone)
        >>> purge_rows(1, delete_before, now_s=1e6).deleted
        2
    """
    n = delete_before(retention_cutoff(days, now_s))
    return PurgeReport(deleted=int(n), kept=0, bytes_freed=0)
