"""`presets` and `init`: render a preset into a gateway folder (wizard or flags)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, out, pairs, show_plan, warn
from cc_gateway.core.secrets import mask


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
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Target folder \\[default: current folder].")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port the gateway listens on \\[default: 4000].")] = None,
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
    team: Annotated[
        bool, typer.Option("--team", help="A team gateway: keys per person, spend limits, a usage ledger.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: flags and defaults only.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite changed files (keeps a .bak copy).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and diffs; write nothing.")] = False,
) -> None:
    """Render config.yaml, .env, docker-compose.yml and hook modules from a preset."""
    from cc_gateway.core.files import apply_plan
    from cc_gateway.gateway import scaffold
    from cc_gateway.gateway.presets import load_preset

    keys = pairs(key, "--key", allow_bare=True)
    if not yes and sys.stdin.isatty() and sys.stdout.isatty():
        preset, folder, port, keys, team = _wizard(preset, folder, port, keys, team)
    options = pairs(option, "--option")
    if not yes and sys.stdin.isatty() and sys.stdout.isatty():
        _ask_rules(preset or "demo", options)
    request = scaffold.InitRequest(
        preset=load_preset(preset or "demo"),
        folder=(folder or Path.cwd()).expanduser().absolute(),
        port=scaffold.DEFAULT_PORT if port is None else port,
        keys=keys,
        api_bases=pairs(api_base, "--api-base"),
        options=options,
        team=team,
    )
    result = scaffold.plan_init(request)
    for message in result.warnings:
        warn(message)
    show_plan(result.plan, diffs=dry_run)  # a conflict names its files; --dry-run shows the diffs
    if dry_run:
        _image_inputs(request, dry_run=True)
        err().print("[dim]dry run: nothing written[/]")
        return
    for backup in apply_plan(result.plan, force=force):
        err().print(f"[dim]kept a copy of the old file: {backup}[/]")
    scaffold.record_written(result.plan, request.folder)
    replaced = [c.path.name for c in result.plan.changes if c.action.value == "replace"]
    if replaced:
        err().print(
            f"replaced {', '.join(replaced)}: cc-gateway wrote them and nobody changed them since "
            "(the master key and keys in .env are kept)",
            markup=False,
        )
    _image_inputs(request, dry_run=False)
    _next_steps(request, result)


def _image_inputs(request: Any, *, dry_run: bool) -> None:
    """Write (or list) the wheel and lock the Dockerfile installs, beside it."""
    from rich.markup import escape

    from cc_gateway.gateway.image import write_image_inputs
    from cc_gateway.gateway.render import uses_bridge

    colours = {"create": "green", "identical": "dim", "update": "yellow"}
    for action, path in write_image_inputs(request.folder, bridge=uses_bridge(request.preset), dry_run=dry_run):
        err().print(f"  [{colours[action]}]{action:>9}[/] {escape(str(path))}")


def _ask_rules(preset: str, options: dict[str, str]) -> None:
    """Offer the preset's routing rules (README "Routing rules"); no sets `--option rules=off`."""
    import questionary

    from cc_gateway.gateway.presets import load_preset

    rules = load_preset(preset).routing_rules
    if not rules or "rules" in options:
        return
    summary = "; ".join(f"{kind} -> {_rule_target(value)}" for rule in rules for kind, value in rule.items())
    if not questionary.confirm(f"Routing rules ({summary})?", default=True).unsafe_ask():
        options["rules"] = "off"


def _rule_target(value: object) -> str:
    if isinstance(value, dict):
        above = f" above {value['above_tokens']:,} tokens" if "above_tokens" in value else ""
        return f"{value.get('route') or value.get('to')}{above}"
    return str(value)


def _wizard(
    preset: str | None, folder: Path | None, port: int | None, values: dict[str, str], team: bool
) -> tuple[str, Path, int, dict[str, str], bool]:
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
    if not team:
        question = "Team gateway (a key per person, spend limits, a usage report)?"
        team = questionary.confirm(question, default=False).unsafe_ask()
    return preset, folder, check_port(port), values, team


def _team_steps(team: bool, dir_flag: str) -> list[str]:
    if not team:
        return []
    return [f"A teammate:      cc-gateway keys add NAME --limit 20/day{dir_flag}",
            f"Their usage:     cc-gateway usage{dir_flag}"]


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
            *_team_steps(result.answers.team, dir_flag),
            "With Docker:     docker compose up -d",
        ]
    )
    err().print(Panel(body, title=f"cc-gateway: {request.preset.name} ready", expand=False))
