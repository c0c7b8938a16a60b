"""`cc-gateway route explain FILE.json|-`: which routing rule would fire for a saved request, and why."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cc_gateway.cli.app import app
from cc_gateway.core.errors import ConfigError, UsageError

route_app = typer.Typer(help="Look at how requests are routed.", no_args_is_help=True)
app.add_typer(route_app, name="route")


@route_app.command("explain")
def route_explain(
    request: Annotated[str, typer.Argument(help="A saved request body (JSON), or - for stdin.", metavar="FILE.json|-")],
    header: Annotated[
        list[str], typer.Option("--header", "-H", help="A request header, 'name: value' (repeatable).")
    ] = [],  # noqa: B006 - typer needs a literal default
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="config.yaml path (instead of --dir).")] = None,
) -> None:
    """Print which rule of routing_rules would fire for a request, and why; no upstream is called."""
    from cc_gateway.core.files import load_yaml
    from cc_gateway.gateway.folder import locate_config
    from cc_gateway.routing import RequestView, RouteTable, evaluate, load_rules
    from cc_gateway.routing.engine import HookLoader

    path = locate_config(folder, config)
    data = load_yaml(path) or {}
    rules = load_rules(path, data)
    hooks = HookLoader(path.parent, path).load_all(rules)
    body, saved_headers = _read_body(request)
    view = RequestView(body, {**saved_headers, **_headers(header)})
    decision = evaluate(rules, view, RouteTable.from_config(data), hooks)
    lines = [f"request: {view.describe()}"]
    if not rules:
        lines.append(f"no routing_rules in {path}")
    for step in decision.steps:
        where = f"{path.name}:{step.rule.line}" if step.rule.line else path.name
        lines.append(f"  {step.rule.index + 1}. {step.rule.label:<14} {where:<16} {step.outcome:<12} {step.reason}")
    if decision.refusal:
        lines.append(f"-> refused with 400: {decision.refusal}")
    else:
        fired = f"rule={decision.label}" if decision.rule else "no rule fired"
        lines.append(f"-> model {decision.model}, route {decision.route or '(not routed)'} ({fired})")
    if decision.notice:
        lines.append(f"-> the web_search tool is removed; the client is told: {decision.notice}")
    typer.echo("\n".join(lines))


def _read_body(source: str) -> tuple[dict, dict[str, str]]:
    import json

    from cc_gateway.core.files import read_text

    name = "stdin" if source == "-" else source
    text = sys.stdin.read() if source == "-" else read_text(Path(source))
    try:
        body = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = f"{name}:{line}" if line else name
        raise ConfigError(
            f"{where}: not JSON ({exc})", hint="save the request body as JSON (what /v1/messages gets)"
        ) from None
    if not isinstance(body, dict):
        raise ConfigError(f"{name}: a request body is a JSON object", hint='e.g. {"model": ..., "messages": [...]}')
    if isinstance(body.get("body"), dict):  # a saved {"headers": ..., "body": ...} pair
        saved = body.get("headers") if isinstance(body.get("headers"), dict) else {}
        return body["body"], {str(k).lower(): str(v) for k, v in saved.items()}
    return body, {}


def _headers(values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(
                f"--header {value!r} is not 'name: value'", hint="e.g. --header 'x-claude-code-agent-id: a1'"
            )
        found[name.strip().lower()] = rest.strip()
    return found
