"""`serve`: run the gateway in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, warn


@app.command("serve")
def serve(
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder \\[default: current].")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Path to config.yaml (instead of --dir).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind. Anything but loopback is warned about.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int | None, typer.Option("--port", help="Port \\[default: CC_GATEWAY_PORT from .env, else 4000].")
    ] = (None),
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes \\[default: one per CPU, at most 4].")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    allow_open: Annotated[
        bool, typer.Option("--allow-open", help="Allow running with no master key and no static token.")
    ] = False,
    drain: Annotated[float, typer.Option("--drain-seconds", help="How long in-flight requests may finish.")] = 30.0,
) -> None:
    """Run the gateway (LiteLLM's proxy, in this process) until Ctrl-C or SIGTERM."""
    from cc_gateway.serve.preflight import ServeOptions, preflight
    from cc_gateway.serve.server import run

    options = ServeOptions(
        folder=folder,
        config=config,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        allow_open=allow_open,
        drain_seconds=drain,
    )
    pre = preflight(options)
    for message in pre.warnings:
        warn(message)
    for route, variable in pre.unavailable.items():
        warn(f"route {route} is unavailable until {variable} is set (it answers 503; other routes work)")
    console = err()
    status = console.status("starting the gateway", spinner="dots")
    status.start()
    # Without a terminal the spinner shows nothing: print each step as a line instead.
    progress = status.update if console.is_terminal else lambda step: console.print(f"[dim]{step}…[/]")
    try:
        code = run(pre, progress=progress, on_ready=lambda: _ready(status, pre))
    finally:
        status.stop()
    raise typer.Exit(code)


def _ready(status: Any, pre: Any) -> None:
    """Replace the spinner with the ready panel."""
    from rich.panel import Panel

    status.stop()
    routes = [r.name for r in pre.gateway.routes]
    lines = [f"URL:     {pre.url}", f"Routes:  {', '.join(routes)}", f"Workers: {pre.workers_reason}"]
    if pre.gateway.aliases:
        lines.append(f"Aliases: {', '.join(pre.gateway.aliases)}")
    lines += ["", "Claude Code needs:"] + [f"  {line}" for line in pre.client_lines]
    lines += ["", "Ctrl-C stops it (requests in flight are allowed to finish)."]
    err().print(Panel("\n".join(lines), title="cc-gateway ready", expand=False))
