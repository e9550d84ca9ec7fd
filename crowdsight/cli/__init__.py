"""The `crowdsight` command line: analyze | serve | models | bench | eval.

Every user-facing failure is a `CrowdsightError` and is shown as one line (no traceback)
with a non-zero exit code.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from crowdsight.core.errors import CrowdsightError

app = typer.Typer(
    name="crowdsight",
    help="Privacy-first video analytics for public spaces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Score crowdsight on labelled data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

err_console = Console(stderr=True)


def _register() -> None:
    # Importing a command module registers its commands on `app` / `eval_app`.
    from crowdsight.cli import (  # noqa: F401
        analyze,
        bench,
        eval_anomaly,
        eval_attributes,
        eval_counting,
        eval_detection,
        eval_redaction,
        eval_tracking,
        models,
        serve,
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
