"""User-facing errors: each carries one clear, actionable line for the CLI and API."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class CrowdsightError(Exception):
    """Base class for errors whose message is shown to the user as-is (no traceback)."""


class InputError(CrowdsightError):
    """The input (image, video, folder, stream) is missing, unreadable or empty."""


class ModelError(CrowdsightError):
    """A model is not installed, fails verification, or cannot be downloaded."""


class ConfigError(CrowdsightError):
    """A configuration file or value is invalid."""


class OutputError(CrowdsightError):
    """Results cannot be written: the disk is full, or the folder is not writable."""


#: Messages that mean the storage is full: SQLite's ``SQLITE_FULL`` (the disk, or its page
#: limit), the C library's ENOSPC text (wrapped by drivers), PostgreSQL's failed file growth.
_FULL_MESSAGES = ("database or disk is full", "No space left on device", "could not extend file")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the storage is full.

    An ``OSError`` with ``ENOSPC`` / ``EDQUOT`` (files, PyAV's encoder), SQLite's "database
    or disk is full" (wrapped by SQLAlchemy), PostgreSQL's "could not extend file" / "No
    space left on device".
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(m in str(cur) for m in _FULL_MESSAGES):
            return True
        cur = cur.__cause__ or cur.__context__ or getattr(cur, "orig", None)
    return False


def validation_line(source: Path | str, exc: ValidationError) -> str:
    """One line for a pydantic validation failure: ``source: field.path: message``.

    The first error is named (with how many more there are); a validator's own words lose
    pydantic's "Value error, " prefix.
    """
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}: {loc}: {msg}{more}"
