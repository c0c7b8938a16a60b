"""`doctor`: find the real cause of a problem and name the fix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, out
from cc_gateway.core.errors import ExitCode


@app.command("doctor")
def doctor_cmd(
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder \\[default: current].")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Gateway URL \\[default: http://127.0.0.1:CC_GATEWAY_PORT].")
    ] = None,
    route: Annotated[list[str], typer.Option("--route", "-r", help="Probe only this route (repeatable).")] = [],  # noqa: B006
    no_network: Annotated[
        bool, typer.Option("--no-network", help="Skip every request that reaches an upstream provider.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (shape: see README).")] = False,
) -> None:
    """Check the gateway folder, the running gateway, its routes and Claude Code; say how to fix what fails."""
    import json

    from cc_gateway import doctor
    from cc_gateway.core import paths

    options = doctor.DoctorOptions(
        folder=folder, url=url, routes=tuple(route), network=not no_network, home=paths.user_home()
    )
    if as_json or not sys.stdout.isatty():
        report = doctor.run_checks(options)
    else:
        with err().status("running checks", spinner="dots"):
            report = doctor.run_checks(options)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _show_report(report)
    raise typer.Exit(ExitCode.CHECKS_FAILED if report.failed else ExitCode.OK)


def _show_report(report: Any) -> None:
    """Print the checks as a table (hints under their finding) and a one-line summary."""
    from rich.markup import escape
    from rich.table import Table

    colours = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    table = Table(show_header=True, header_style="bold", expand=False)
    for column in ("Group", "Check", "Status", "Finding / fix"):
        table.add_column(column, overflow="fold")
    for row in report.results:
        text = escape(row.detail) + (f"\n[dim]fix: {escape(row.hint)}[/]" if row.hint and row.status != "ok" else "")
        table.add_row(row.group, escape(row.name), f"[{colours[row.status]}]{row.status}[/]", text)
    out().print(table)
    counts = report.as_dict()["summary"]
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    err().print(f"{summary} in {report.elapsed_ms / 1000:.1f} s")
