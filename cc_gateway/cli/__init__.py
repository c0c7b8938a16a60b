"""The command line: parse flags, call the core, print. The only package that prints or prompts.

`app` (cli/app.py) holds the Typer app and the error translation; each command group is a module
(init, serve, routes, claude, doctor) that adds its commands to `app` when imported.
"""

from __future__ import annotations

import importlib

from cc_gateway.cli.app import app

__all__ = ["app", "main"]

#: The command modules, in the order `--help` lists their commands.
COMMAND_MODULES = ("init", "serve", "routes", "route_explain", "claude", "doctor")


def _register() -> None:
    for group in COMMAND_MODULES:
        importlib.import_module(f"cc_gateway.cli.{group}")


def main() -> None:
    """Console-script entry point."""
    app()


_register()
