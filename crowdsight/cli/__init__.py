"""The `crowdsight` command line: analyze | serve | models | bench | eval | calibrate | train.

Every user-facing failure is a `CrowdsightError` and is shown as one line (no traceback)
with a non-zero exit code.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from crowdsight.cli.apps import app, err_console, eval_app
from crowdsight.core.errors import CrowdsightError

__all__ = ["app", "err_console", "eval_app", "main"]


def _register() -> None:
    # Importing a command module registers its commands on `app` / `eval_app`.
    from crowdsight.cli import (  # noqa: F401
        analyze,
        bench,
        calibrate,
        eval_anomaly,
        eval_attributes,
        eval_counting,
        eval_detection,
        eval_redaction,
        eval_tracking,
        models,
        serve,
        train_attributes,
    )


def main() -> None:
    """Entry point of the `crowdsight` script."""
    _register()
    try:
        # Standalone mode: Typer itself reports usage errors (exit 2) and Ctrl-C.
        app()
    except CrowdsightError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True, markup=True
        )
        sys.exit(2)
