"""Shared output for every command: consoles, error lines, warnings, planned-file lists (secrets masked)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import typer

from cc_gateway.core.errors import GatewayError, UsageError
from cc_gateway.core.secrets import mask_secrets

if TYPE_CHECKING:
    from rich.console import Console

    from cc_gateway.core.files import Plan


def out() -> Console:
    """Console for data (stdout)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    """Console for messages and progress (stderr); into a file or pipe, panels keep their whole lines."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if not console.is_terminal:  # rich would cut panels at 80 columns in a log file
        console = Console(stderr=True, highlight=False, soft_wrap=True, width=FILE_WIDTH)
    return console


#: Width of panels written to a file: wide enough for any line they hold (they size to their content).
FILE_WIDTH = 400


def fail(exc: GatewayError) -> NoReturn:
    """Print one error line (plus hint) and exit with the error's code."""
    from rich.markup import escape

    console = err()
    console.print(f"[red]error:[/] {escape(str(exc))}")
    if exc.hint:
        console.print(f"[dim]hint:[/] {escape(exc.hint)}")
    raise typer.Exit(exc.exit_code)


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    from rich.markup import escape

    err().print(f"[yellow]warning:[/] {escape(message)}")


def show_plan(plan: Plan, *, diffs: bool) -> None:
    """List each planned file with its action; with `diffs`, show what would change (masked)."""
    from rich.markup import escape

    console = err()
    colours = {"create": "green", "identical": "dim", "update": "yellow", "conflict": "red", "replace": "yellow"}
    for change in plan.changes:
        colour = colours[change.action.value]
        console.print(f"  [{colour}]{change.action.value:>9}[/] {escape(str(change.path))}")
        if diffs and change.action.value in ("create", "update", "conflict", "replace"):
            console.print(escape(mask_secrets(change.diff())), style="dim")


def pairs(items: list[str], flag: str, *, allow_bare: bool = False) -> dict[str, str]:
    """Parse repeated NAME=VALUE flags; a bare NAME (when allowed) takes its value from the environment."""
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            if not allow_bare:
                raise UsageError(f"{flag} {item!r}: expected NAME=VALUE")
            value = os.environ.get(name, "")
            if not value:
                raise UsageError(f"{flag} {name}: not set in the environment", hint=f"use {flag} {name}=VALUE")
        result[name.strip()] = value.strip()
    return result
