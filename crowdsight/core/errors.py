"""User-facing errors: each carries one clear, actionable line for the CLI and API."""

from __future__ import annotations

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
