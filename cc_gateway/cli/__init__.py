"""The Typer app: parse flags, call the core, print. The only module that prints or prompts."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from typer.core import TyperGroup

from cc_gateway import __version__
from cc_gateway.core.errors import ExitCode, GatewayError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from cc_gateway.core.files import Plan


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


def main() -> None:
    """Console-script entry point."""
    app()


# --------------------------------------------------------------------------- output helpers


def out() -> Console:
    """Console for data (stdout)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    """Console for messages and progress (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


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


_SECRET_LINE = re.compile(r"^([+\- ]?\s*[A-Z0-9_]*(?:KEY|TOKEN|TOKENS|SECRET)[A-Z0-9_]*=)(.+)$", re.M)


def mask_secrets(text: str) -> str:
    """Hide secret values in .env-like text: keep 6 characters so a user can tell keys apart."""
    return _SECRET_LINE.sub(lambda m: m.group(1) + mask(m.group(2)), text)


def mask(value: str) -> str:
    """Show a secret's first characters only."""
    return value[:6] + "…" if len(value) > 8 else "…"


def show_plan(plan: Plan, *, diffs: bool) -> None:
    """List each planned file with its action; with `diffs`, show what would change (masked)."""
    from rich.markup import escape

    console = err()
    colours = {"create": "green", "identical": "dim", "update": "yellow", "conflict": "red"}
    for change in plan.changes:
        colour = colours[change.action.value]
        console.print(f"  [{colour}]{change.action.value:>9}[/] {escape(str(change.path))}")
        if diffs and change.action.value in ("create", "update", "conflict"):
            console.print(escape(mask_secrets(change.diff())), style="dim")


def _pairs(items: list[str], flag: str, *, allow_bare: bool = False) -> dict[str, str]:
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


# --------------------------------------------------------------------------- commands


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


@app.command("presets")
def presets_list() -> None:
    """List the presets, one line each."""
    from cc_gateway.gateway.presets import load_preset, preset_names

    for name in preset_names():
        out().print(f"{name:<16} {load_preset(name).description}")


@app.command("init")
def init(
    preset: Annotated[
        str | None, typer.Option("--preset", "-p", help="Preset name (see `cc-gateway presets`).")
    ] = None,
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Target folder [default: current folder].")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port the gateway listens on [default: 4000].")] = None,
    key: Annotated[
        list[str],
        typer.Option("--key", "-k", help="VAR=VALUE, or VAR to copy it from the environment (repeatable)."),
    ] = [],  # noqa: B006 - typer needs a literal default for list options
    api_base: Annotated[
        list[str], typer.Option("--api-base", help="PROVIDER=URL or VAR=URL: an upstream base URL (repeatable).")
    ] = [],  # noqa: B006
    option: Annotated[
        list[str], typer.Option("--option", "-o", help="KEY=VALUE preset option, e.g. strong_model=gpt-5.")
    ] = [],  # noqa: B006
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: flags and defaults only.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite changed files (keeps a .bak copy).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and diffs; write nothing.")] = False,
) -> None:
    """Render config.yaml, .env, docker-compose.yml and hook modules from a preset."""
    from cc_gateway.core.files import apply_plan
    from cc_gateway.gateway import scaffold
    from cc_gateway.gateway.presets import load_preset

    keys = _pairs(key, "--key", allow_bare=True)
    if not yes and sys.stdin.isatty() and sys.stdout.isatty():
        preset, folder, port, keys = _wizard(preset, folder, port, keys)
    request = scaffold.InitRequest(
        preset=load_preset(preset or "demo"),
        folder=(folder or Path.cwd()).expanduser().absolute(),
        port=scaffold.DEFAULT_PORT if port is None else port,
        keys=keys,
        api_bases=_pairs(api_base, "--api-base"),
        options=_pairs(option, "--option"),
    )
    result = scaffold.plan_init(request)
    for message in result.warnings:
        warn(message)
    show_plan(result.plan, diffs=dry_run or bool(result.plan.conflicts))
    if dry_run:
        err().print("[dim]dry run: nothing written[/]")
        return
    for backup in apply_plan(result.plan, force=force):
        err().print(f"[dim]kept a copy of the old file: {backup}[/]")
    _next_steps(request, result)


def _wizard(
    preset: str | None, folder: Path | None, port: int | None, values: dict[str, str]
) -> tuple[str, Path, int, dict[str, str]]:
    """Ask what the flags did not say (questionary; Ctrl-C exits 130 with nothing written)."""
    import questionary

    from cc_gateway.gateway.presets import load_preset, preset_names
    from cc_gateway.gateway.scaffold import check_port

    if preset is None:
        choices = [questionary.Choice(f"{n:<15} {load_preset(n).description}", value=n) for n in preset_names()]
        preset = questionary.select("Preset:", choices=choices).unsafe_ask()
    loaded = load_preset(preset)
    for var in loaded.variables:
        if var.secret and var.name not in values and var.kind != "master_key":
            answer = questionary.password(f"{var.name} ({var.help}; Enter to skip):").unsafe_ask()
            if answer:
                values[var.name] = answer.strip()
    if port is None:
        port = int(
            questionary.text(
                "Port:", default="4000", validate=lambda s: (s.isdigit() and 0 < int(s) < 65536) or "1-65535"
            ).unsafe_ask()
        )
    if folder is None:
        folder = Path(questionary.path("Target folder:", default=".").unsafe_ask())
    return preset, folder, check_port(port), values


def _next_steps(request: Any, result: Any) -> None:
    """Print the next-steps panel (secrets masked)."""
    from rich.panel import Panel

    folder = request.folder
    dir_flag = "" if folder == Path.cwd() else f" --dir {folder}"
    for name in result.missing:
        warn(f"{name} is not set: edit {folder / '.env'} before starting the gateway")
    if request.preset.notice:
        warn(request.preset.notice)
    body = "\n".join(
        [
            f"Gateway folder: {folder}",
            f"Master key:     {mask(result.answers.master_key)} (in .env as LITELLM_MASTER_KEY)",
            "",
            f"Start it:        cc-gateway serve{dir_flag}",
            f"URL:             http://127.0.0.1:{request.port}",
            f"Claude Code:     cc-gateway setup-claude{dir_flag}   (or: cc-gateway claude{dir_flag})",
            f"Check it:        cc-gateway doctor{dir_flag}",
            "With Docker:     docker compose up -d",
        ]
    )
    err().print(Panel(body, title=f"cc-gateway: {request.preset.name} ready", expand=False))


@app.command("serve")
def serve(
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Path to config.yaml (instead of --dir).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind. Anything but loopback is warned about.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int | None, typer.Option("--port", help="Port [default: CC_GATEWAY_PORT from .env, else 4000].")
    ] = (None),
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes [default: one per CPU, at most 4].")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    allow_open: Annotated[
        bool, typer.Option("--allow-open", help="Allow running with no master key and no static token.")
    ] = False,
    drain: Annotated[float, typer.Option("--drain-seconds", help="How long in-flight requests may finish.")] = 30.0,
) -> None:
    """Run the gateway (LiteLLM's proxy, in this process) until Ctrl-C or SIGTERM."""
    from cc_gateway import serve as serve_mod

    options = serve_mod.ServeOptions(
        folder=folder,
        config=config,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        allow_open=allow_open,
        drain_seconds=drain,
    )
    pre = serve_mod.preflight(options)
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
        code = serve_mod.run(pre, progress=progress, on_ready=lambda: _ready(status, pre))
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


# ---- add-model / remove-model / models


@app.command("add-model")
def add_model(
    name: Annotated[str | None, typer.Argument(help="Route name Claude Code (or a client) asks for.")] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Provider short name (anthropic, openai, zai, ...).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The provider's model id, e.g. glm-4.6.")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="Upstream base URL (goes to .env).")] = None,
    key_env: Annotated[
        str | None, typer.Option("--key-env", help="Variable holding the key [default: provider's].")
    ] = (None),
    alias: Annotated[list[str], typer.Option("--alias", help="Another name for the route (repeatable).")] = [],  # noqa: B006 - typer needs a literal default
    fallback_for: Annotated[
        str | None, typer.Option("--fallback-for", help="Make this route a fallback of ROUTE.", metavar="ROUTE")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Output cap [default: provider's].")] = None,
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a route of the same name.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-point an --alias that already exists.")] = False,
) -> None:
    """Add a route to config.yaml (comments and layout kept) and its variables to .env."""
    from cc_gateway.gateway import route_edit as routes

    name, provider, model, api_base = _route_wizard(name, provider, model, api_base)
    request = routes.NewRoute(
        name, provider, model, api_base, key_env, tuple(alias), fallback_for, max_tokens, replace, force
    )
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


@app.command("remove-model")
def remove_model(
    name: Annotated[str, typer.Argument(help="Route to remove (see `cc-gateway models`).")],
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
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
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
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


def _key_state(route: dict[str, Any]) -> str:
    """Describe a route's key without its value."""
    if route["key_inline"]:
        return "key inline in config.yaml"
    if route["key_env"] is None:
        return "no key needed"
    return f"{route['key_env']} ({'set' if route['key_set'] else 'NOT SET'})"


# ---- setup-claude / env / claude: point Claude Code at the gateway

_DirOpt = Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder (default: the current folder).")]
_UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Gateway URL without /v1 (default: http://127.0.0.1:CC_GATEWAY_PORT from .env)."),
]
_EndpointOpt = Annotated[
    str, typer.Option("--endpoint", help="unified, or passthrough (anthropic preset: LiteLLM's /anthropic route).")
]
_ModelOpt = Annotated[str | None, typer.Option("--model", help="ANTHROPIC_MODEL (a route; NAME[1m] for 1M context).")]
_SonnetOpt = Annotated[str | None, typer.Option("--sonnet-model", help="ANTHROPIC_DEFAULT_SONNET_MODEL.")]
_OpusOpt = Annotated[str | None, typer.Option("--opus-model", help="ANTHROPIC_DEFAULT_OPUS_MODEL.")]
_HaikuOpt = Annotated[str | None, typer.Option("--haiku-model", help="ANTHROPIC_DEFAULT_HAIKU_MODEL.")]
_SubagentOpt = Annotated[str | None, typer.Option("--subagent-model", help="CLAUDE_CODE_SUBAGENT_MODEL.")]


def _client_env(folder: Path | None, url: str | None, endpoint: str, models: list[str | None]) -> Any:
    """Read the gateway and compute Claude Code's variables; `models` are the main/sonnet/opus/haiku/subagent flags."""
    from cc_gateway.claude import setup as setup_claude
    from cc_gateway.gateway.folder import load_gateway
    from cc_gateway.gateway.presets import load_preset

    gateway = load_gateway(folder)
    try:
        default_route = load_preset(gateway.preset).default_route if gateway.preset else None
    except GatewayError:
        default_route = None
    roles = ("main", "sonnet", "opus", "haiku", "subagent")
    chosen = {role: model for role, model in zip(roles, models, strict=False) if model}
    request = setup_claude.ClientRequest(url=url, endpoint=endpoint, models=chosen)
    return setup_claude.client_env(gateway, request, default_route)


@app.command("setup-claude")
def setup_claude_cmd(
    folder: _DirOpt = None,
    scope: Annotated[str, typer.Option("--scope", help="user, project or local (project/local: current folder).")] = (
        "user"
    ),
    url: _UrlOpt = None,
    endpoint: _EndpointOpt = "unified",
    model: _ModelOpt = None,
    sonnet_model: _SonnetOpt = None,
    opus_model: _OpusOpt = None,
    haiku_model: _HaikuOpt = None,
    subagent_model: _SubagentOpt = None,
    skip_onboarding: Annotated[
        bool, typer.Option("--skip-onboarding", help="Set hasCompletedOnboarding in ~/.claude.json.")
    ] = False,
    allow_secret_in_project: Annotated[
        bool, typer.Option("--allow-secret-in-project", help="At project scope, write the key to the shared file too.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff (keys masked); write nothing.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Restore the files exactly as they were before.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --undo: restore even if edited since.")] = False,
) -> None:
    """Write Claude Code's settings (env block) so that it uses this gateway; --undo puts them back."""
    from cc_gateway.claude import setup as setup_claude
    from cc_gateway.claude.versions import SCOPES
    from cc_gateway.core import paths

    if scope not in SCOPES:
        raise UsageError(f"--scope {scope!r}: expected one of {', '.join(SCOPES)}")
    cwd, home = Path.cwd(), paths.user_home()
    if undo:
        return _undo_claude(scope, cwd, home, force)
    client = _client_env(folder, url, endpoint, [model, sonnet_model, opus_model, haiku_model, subagent_model])
    plan = setup_claude.plan_setup(
        client, scope, cwd, home, allow_secret_in_project=allow_secret_in_project, skip_onboarding=skip_onboarding
    )
    _show_claude_plan(plan, client)
    if dry_run:
        return err().print("[dim]dry run: nothing written[/]")
    written = setup_claude.apply_setup(plan, paths.home())
    for message in setup_claude.overrides(client, [c.path for c in plan.changes], cwd, home, os.environ):
        warn(message)
    err().print(
        f"[green]done[/]: {len(written)} file(s) written; undo with `cc-gateway setup-claude --scope {scope} --undo`"
    )


def _show_claude_plan(plan: Any, client: Any) -> None:
    """Print warnings, notes and each file's masked diff."""
    from rich.markup import escape

    for message in plan.warnings:
        warn(message)
    for note in plan.notes:
        err().print(f"[dim]note:[/] {escape(note)}")
    for change in plan.changes:
        action = "unchanged" if not change.changed else ("update" if change.old is not None else "create")
        err().print(f"  [yellow]{action:>9}[/] {escape(str(change.path))}")
        if change.changed:
            text = change.diff()
            for secret in client.secret_strings():
                text = text.replace(secret, mask(secret))
            err().print(escape(text), style="dim")


def _undo_claude(scope: str, cwd: Path, home: Path, force: bool) -> None:
    """Restore what setup-claude changed for a scope."""
    from cc_gateway.claude import setup as setup_claude
    from cc_gateway.core import paths

    done = setup_claude.undo(scope, cwd, home, paths.home(), force=force)
    for path, outcome in done:
        err().print(f"  {outcome}: {path}")
    if not done:
        err().print(f"nothing to undo for --scope {scope}")


_SHELLS = ("sh", "fish", "powershell")


@app.command("env")
def env_cmd(
    folder: _DirOpt = None,
    shell: Annotated[str, typer.Option("--shell", help="sh (bash/zsh), fish or powershell.")] = "sh",
    url: _UrlOpt = None,
    endpoint: _EndpointOpt = "unified",
    model: _ModelOpt = None,
    sonnet_model: _SonnetOpt = None,
    opus_model: _OpusOpt = None,
    haiku_model: _HaikuOpt = None,
    subagent_model: _SubagentOpt = None,
) -> None:
    """Print Claude Code's variables for this gateway as lines to eval (e.g. eval "$(cc-gateway env)")."""
    from cc_gateway.claude import versions as claude_code
    from cc_gateway.core import paths

    if shell not in _SHELLS:
        raise UsageError(f"--shell {shell!r}: expected one of {', '.join(_SHELLS)}")
    client = _client_env(folder, url, endpoint, [model, sonnet_model, opus_model, haiku_model, subagent_model])
    for name, value in client.values.items():
        typer.echo(_export_line(shell, name, value))
    layers = claude_code.settings_layers(Path.cwd(), paths.user_home())
    for name, decision in claude_code.effective_env(layers, {}, tuple(client.values)).items():
        if decision.value != client.values[name]:
            warn(f"{name} is also set in {decision.source}: Claude Code prefers settings files to the shell")


def _export_line(shell: str, name: str, value: str) -> str:
    """One assignment, quoted for the shell."""
    import shlex

    if shell == "fish":
        return "set -gx {} '{}'".format(name, value.replace("\\", "\\\\").replace("'", "\\'"))
    if shell == "powershell":
        return "$env:{} = '{}'".format(name, value.replace("'", "''"))
    return f"export {name}={shlex.quote(value)}"


@app.command(
    "claude",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
)
def claude_cmd(
    ctx: typer.Context, folder: _DirOpt = None, url: _UrlOpt = None, endpoint: _EndpointOpt = "unified"
) -> None:
    """Start Claude Code on this gateway for one session (writes no file); extra ARGS go to claude."""
    import json

    from cc_gateway.claude import setup as setup_claude
    from cc_gateway.claude import versions as claude_code
    from cc_gateway.core import paths

    client = _client_env(folder, url, endpoint, [])
    binary = claude_code.find_claude()
    if binary is None:
        raise GatewayError(
            "Claude Code is not installed (no `claude` on PATH)", hint="npm install -g @anthropic-ai/claude-code"
        )
    setup_claude.check_reachable(client.url)
    for message in setup_claude.session_conflicts(client, Path.cwd(), paths.user_home()):
        warn(message)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(client.values)
    # Settings files beat the environment, the --settings flag beats them; the key stays out of argv (ps).
    flag = json.dumps({"env": client.public})
    sys.stdout.flush()
    os.execve(binary, [str(binary), "--settings", flag, *ctx.args], env)


# ---- doctor


@app.command("doctor")
def doctor_cmd(
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Gateway URL [default: http://127.0.0.1:CC_GATEWAY_PORT].")
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
