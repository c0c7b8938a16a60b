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
    watch: Annotated[
        bool, typer.Option("--reload/--no-reload", help="Apply edits of config.yaml/.env on save (SIGHUP always).")
    ] = True,
    header_timeout: Annotated[
        float | None, typer.Option("--header-timeout", help="Seconds a client has to send its headers [10].")
    ] = None,
    idle_timeout: Annotated[
        int | None, typer.Option("--idle-timeout", help="Seconds an idle kept-alive connection stays open [30].")
    ] = None,
    max_header_bytes: Annotated[
        int | None, typer.Option("--max-header-bytes", help="Request line + headers limit (431 past it) [65536].")
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option("--max-connections", help="Open connections per worker (503 past it) [1000].")
    ] = None,
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
        reload=watch,
        http_limits={
            "header_timeout": header_timeout,
            "idle_timeout": idle_timeout,
            "max_header_bytes": max_header_bytes,
            "max_connections": max_connections,
        },
    )
    pre = preflight(options)
    for message in pre.warnings:
        warn(message)
    for route, variable in pre.unavailable.items():
        warn(f"route {route} is unavailable until {variable} is set (it answers 424; other routes work)")
    console = err()
    status = console.status("starting the gateway", spinner="dots")
    status.start()
    steps: list[str] = []

    def progress(step: str) -> None:
        """The spinner covers LiteLLM's import only: from the next step on, the server (and each forked
        worker, writing to the same terminal) logs lines, which would leave spinner fragments between them
        and after a Ctrl-C. Without a terminal every step is a line."""
        steps.append(step)
        if console.is_terminal and len(steps) == 1:
            status.update(step)
            return
        status.stop()
        console.print(f"[dim]{step}…[/]")

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
    if pre.options.reload and hasattr(__import__("os"), "fork"):
        lines.append("Edits of config.yaml and .env apply on save, without a restart.")
    err().print(Panel("\n".join(lines), title="cc-gateway ready", expand=False))
