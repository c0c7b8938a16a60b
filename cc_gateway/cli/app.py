"""The Typer app and its one error-translation point; the command modules add their commands to `app`."""

from __future__ import annotations

import os
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from cc_gateway import __version__
from cc_gateway.cli.ui import err, fail
from cc_gateway.core.errors import ExitCode, GatewayError


class _Group(TyperGroup):
    """Turn every expected failure into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GatewayError as exc:
            if os.environ.get("CC_GATEWAY_DEBUG"):
                raise
            fail(exc)
        except KeyboardInterrupt:
            err().print("[yellow]interrupted[/]: nothing more was written")
            raise typer.Exit(ExitCode.INTERRUPTED) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Generate and run LiteLLM gateway configurations for Claude Code.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cc-gateway {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Generate and run LiteLLM gateway configurations for Claude Code."""
