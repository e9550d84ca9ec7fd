"""User-facing errors: each carries one clear, actionable line for the CLI and API."""

from __future__ import annotations


class CrowdsightError(Exception):
    """Base class for errors whose message is shown to the user as-is (no traceback)."""


class InputError(CrowdsightError):
    """The input (image, video, folder, stream) is missing, unreadable or empty."""


class ModelError(CrowdsightError):
    """A model is not installed, fails verification, or cannot be downloaded."""


class ConfigError(CrowdsightError):
    """A configuration file or value is invalid."""
