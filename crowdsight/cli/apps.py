"""The Typer apps the command modules register on (kept apart from `crowdsight.cli`).

Command modules import `app` / `eval_app` from here, and `crowdsight.cli` imports the command
modules to register them, so the package and its modules never import each other.
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="crowdsight",
    help="Privacy-first video analytics for public spaces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Score crowdsight on labelled data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(help="Train crowdsight's small learned parts.", no_args_is_help=True)
app.add_typer(train_app, name="train")
calibrate_app = typer.Typer(
    help="Fit a camera's corrections on a few of its labelled frames.", no_args_is_help=True
)
app.add_typer(calibrate_app, name="calibrate")

err_console = Console(stderr=True)
