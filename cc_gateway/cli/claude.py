"""`setup-claude`, `env`, `claude`: point Claude Code at the gateway without clobbering its settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, warn
from cc_gateway.core.errors import GatewayError, UsageError
from cc_gateway.core.secrets import mask, mask_secrets

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


def _client_env(
    folder: Path | None, url: str | None, endpoint: str, models: list[str | None], picker: bool | None = None
) -> Any:
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
    request = setup_claude.ClientRequest(url=url, endpoint=endpoint, models=chosen, picker=picker)
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
    undo: Annotated[bool, typer.Option("--undo", help="Take back what setup-claude changed (others' changes kept).")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --undo: restore the original file, dropping changes made since.")] = False,
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
    flags = [model, sonnet_model, opus_model, haiku_model, subagent_model]
    client = _client_env(folder, url, endpoint, flags, _reads_picker() if model else None)
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


def _reads_picker(binary: Path | None = None) -> bool | None:
    """Whether the installed Claude Code reads modelPicker/modelSettings (None: not found, assume so)."""
    from cc_gateway.claude import versions as claude_code

    binary = binary or claude_code.find_claude()
    return claude_code.reads_picker(claude_code.claude_version(binary, timeout=10)) if binary else None


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
            text = mask_secrets(text)  # the old side too, and every other secret in the file
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
    client = _client_env(
        folder, url, endpoint, [model, sonnet_model, opus_model, haiku_model, subagent_model], picker=False
    )
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

    binary = claude_code.find_claude()
    if binary is None:
        raise GatewayError(
            "Claude Code is not installed (no `claude` on PATH)", hint="npm install -g @anthropic-ai/claude-code"
        )
    client = _client_env(folder, url, endpoint, [], _reads_picker(binary))
    _precheck(folder, client)
    for message in setup_claude.session_conflicts(client, Path.cwd(), paths.user_home()):
        warn(message)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(client.values)
    # Settings files beat the environment, the --settings flag beats them; the key stays out of argv (ps).
    flag = json.dumps({"env": client.public, **client.settings})
    sys.stdout.flush()
    os.execve(binary, [str(binary), "--settings", flag, *ctx.args], env)


def _precheck(folder: Path | None, client: Any) -> None:
    """Exit 1 with one line unless the key Claude Code will send (after settings precedence) opens /v1/models."""
    from cc_gateway.claude import precheck
    from cc_gateway.claude import versions as claude_code
    from cc_gateway.core import paths
    from cc_gateway.gateway.folder import load_gateway

    layers = claude_code.settings_layers(Path.cwd(), paths.user_home())
    decided = claude_code.effective_env(layers, {}, precheck.KEY_VARS)
    key = precheck.sent_key(client.values, {n: (d.value, d.source) for n, d in decided.items()})
    precheck.check_key(client.url, key, env_path=load_gateway(folder).env_path)
