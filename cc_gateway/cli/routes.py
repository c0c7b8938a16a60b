"""`add-model`, `remove-model`, `models`: edit and list a gateway folder's routes."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, show_plan, warn
from cc_gateway.core.errors import UsageError


@app.command("add-model")
def add_model(
    name: Annotated[str | None, typer.Argument(help="Route name Claude Code (or a client) asks for.")] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Provider short name (anthropic, openai, zai, ...).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The provider's model id, e.g. glm-4.6.")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="Upstream base URL (goes to .env).")] = None,
    key_env: Annotated[
        str | None, typer.Option("--key-env", help="Variable holding the key \\[default: provider's].")
    ] = (None),
    alias: Annotated[list[str], typer.Option("--alias", help="Another name for the route (repeatable).")] = [],  # noqa: B006 - typer needs a literal default
    fallback_for: Annotated[
        str | None, typer.Option("--fallback-for", help="Make this route a fallback of ROUTE.", metavar="ROUTE")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Output cap \\[default: provider's].")] = None,
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder \\[default: current].")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a route of the same name.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-point an --alias that already exists.")] = False,
    context_window: Annotated[
        int | None,
        typer.Option("--context-window", help="Input window in tokens [default: LiteLLM's catalogue, if known]."),
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Title in Claude Code's /model picker.")] = None,
    purposes: Annotated[
        list[str],
        typer.Option("--for", help="Send these requests here: background, subagent, long-context, image (repeatable)."),
    ] = [],  # noqa: B006 - typer needs a literal default
    above_tokens: Annotated[
        int | None, typer.Option("--above-tokens", help="With --for long-context: the token count past which it fires.")
    ] = None,
) -> None:
    """Add a route to config.yaml (comments and layout kept) and its variables to .env."""
    from cc_gateway.gateway import route_edit as routes

    name, provider, model, api_base = _route_wizard(name, provider, model, api_base)
    request = routes.NewRoute(
        name, provider, model, api_base, key_env, tuple(alias), fallback_for, max_tokens, replace, force,
        tuple(purposes), above_tokens,
    )
    request = dataclasses.replace(request, context_window=context_window, label=label)
    edit = routes.plan_add(folder, request)
    _finish_edit(edit, dry_run)
    for variable in edit.missing:
        warn(f"{variable} is not set: fill it in {edit.plan.changes[0].path.parent / '.env'}")


def _route_wizard(
    name: str | None, provider: str | None, model: str | None, api_base: str | None
) -> tuple[str, str, str, str | None]:
    """Ask for what add-model's flags left out (TTY only; otherwise one usage line)."""
    from cc_gateway.gateway.providers import load_providers

    catalogue = load_providers()
    needs_base = provider in catalogue and catalogue[provider].needs_base and api_base is None
    if None not in (name, provider, model) and not needs_base:
        return name, provider, model, api_base  # type: ignore[return-value]
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        if None in (name, provider, model):
            missing = [f for f, v in (("NAME", name), ("--provider", provider), ("--model", model)) if v is None]
            raise UsageError(
                f"add-model needs NAME, --provider and --model (missing: {', '.join(missing)})",
                hint="e.g. cc-gateway add-model glm --provider zai --model glm-4.6",
            )
        return name, provider, model, api_base  # type: ignore[return-value]
    import questionary

    if provider is None:
        choices = [questionary.Choice(f"{p.name:<18} {p.label}", value=p.name) for p in catalogue.values()]
        provider = questionary.select("Provider:", choices=choices).unsafe_ask()
    if model is None:
        model = questionary.text("Model id at the provider:", validate=lambda s: bool(s.strip())).unsafe_ask()
    if name is None:
        name = questionary.text("Route name:", default=model, validate=lambda s: bool(s.strip())).unsafe_ask()
    if api_base is None and provider in catalogue and catalogue[provider].needs_base:
        question = "Base URL (e.g. http://127.0.0.1:8000/v1; Enter keeps the one in .env):"
        api_base = questionary.text(question).unsafe_ask().strip() or None
    return name.strip(), provider, model.strip(), api_base


def _finish_edit(edit: Any, dry_run: bool) -> None:
    """Say what an edit does, show the diff on --dry-run, else apply it."""
    from cc_gateway.gateway.route_edit import apply_edit

    for note in edit.notes:
        err().print(f"  {note}", markup=False)
    show_plan(edit.plan, diffs=dry_run)
    if dry_run:
        err().print("[dim]dry run: nothing written[/]")
        return
    for made in apply_edit(edit):
        err().print(f"[dim]kept a copy of the old file: {made}[/]")
    _tell_running_gateway(next(c.path for c in edit.plan.changes if c.path.name != ".env"), applied=True)


def _tell_running_gateway(config_path: Path, *, applied: bool = False) -> None:
    """Say whether the folder's running gateway serves the files (after an edit: wait for its reload)."""
    from cc_gateway.gateway.fingerprint import running_state

    state = running_state(config_path, wait=30.0 if applied else 0.0)
    if state is None or (state.current and not applied):
        return
    if state.current:
        err().print("the running gateway serves the change now", markup=False)
    elif state.state == "reloading":
        warn("the running gateway is still applying it; `cc-gateway models` says when it is done")
    else:
        warn(state.message)


@app.command("remove-model")
def remove_model(
    name: Annotated[str, typer.Argument(help="Route to remove (see `cc-gateway models`).")],
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder \\[default: current].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff; write nothing.")] = False,
) -> None:
    """Remove a route with its aliases and fallback references (.env is left alone)."""
    from cc_gateway.gateway import route_edit as routes

    edit = routes.plan_remove(folder, name)
    _finish_edit(edit, dry_run)
    if edit.unused:
        err().print(f"no route uses {', '.join(edit.unused)} any more (left in .env)", markup=False)


@app.command("models")
def models(
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder \\[default: current].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (shape in the README).")] = False,
) -> None:
    """List routes, aliases, fallbacks and each route's key variable (set or not; never its value)."""
    import json

    from cc_gateway.gateway import route_edit as routes

    info = routes.describe(folder)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    rows = [(r["name"], r["model"], _key_state(r)) for r in info["routes"]]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{n:<{widths[0]}}  {m:<{widths[1]}}  {k}" for n, m, k in rows]
    if info["aliases"]:
        lines += ["", "aliases:", *(f"  {a} -> {r}" for a, r in info["aliases"].items())]
    if info["fallbacks"]:
        lines += ["", "fallbacks:", *(f"  {r} -> {', '.join(t)}" for r, t in info["fallbacks"].items())]
    typer.echo("\n".join(lines))
    _tell_running_gateway(Path(info["config"]))


def _key_state(route: dict[str, Any]) -> str:
    """Describe a route's key without its value."""
    if route["key_inline"]:
        return "key inline in config.yaml"
    if route["key_env"] is None:
        return "no key needed"
    return f"{route['key_env']} ({'set' if route['key_set'] else 'NOT SET'})"
