"""What cc-gateway knows about Claude Code: settings files per scope, their precedence, the CLI binary.

Facts checked against Claude Code 2.1.197 (see README, "Pointing Claude Code at the gateway"):
- precedence, highest first: managed (policy) > `--settings` flag > local > project > user;
- the `env` block of a settings file beats the shell environment (a shell ANTHROPIC_MODEL does not
  override one set in settings.json), so a settings file is what can override cc-gateway's values;
- a settings file with a comment or a trailing comma is ignored as a whole (no warning);
- ANTHROPIC_AUTH_TOKEN wins over an apiKeyHelper; an ANTHROPIC_API_KEY in the shell is sent as well,
  as `x-api-key`, next to the token;
- managed settings: /etc/claude-code (Linux), /Library/Application Support/ClaudeCode (macOS),
  C:\\Program Files\\ClaudeCode (Windows): managed-settings.json plus managed-settings.d/*.json.

Every function here is pure or only reads files, never prints, and is reused by `doctor`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import GatewayError, located

SCOPES = ("user", "project", "local")
#: Claude Code's suffix asking for a route's 1M-token context window.
ONE_M = re.compile(r"\[1m\]$", re.I)

#: Variables Claude Code reads that decide where it sends requests and with which credential.
CONNECTION_VARS = ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_CUSTOM_HEADERS")
MODEL_VARS = (
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_DEFAULT_FABLE_MODEL",
    "CLAUDE_CODE_SUBAGENT_MODEL",
)
#: Shell variables worth a word when cc-gateway configures Claude Code.
SHELL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL")


@dataclass(frozen=True)
class Layer:
    """One settings source Claude Code reads, with the env block it contributes."""

    scope: str  # managed | local | project | user
    path: Path
    exists: bool
    env: dict[str, str] = field(default_factory=dict)
    api_key_helper: str | None = None
    problem: str | None = None  # why Claude Code ignores the file (invalid JSON, comment, ...)


@dataclass(frozen=True)
class Decision:
    """Which source sets one variable for Claude Code, and to what."""

    name: str
    value: str
    source: str  # a settings file path, or "shell"


def settings_path(scope: str, cwd: Path, home: Path) -> Path:
    """Return the settings file of a scope: user ~/.claude/settings.json, project/local under `cwd`/.claude."""
    if scope == "user":
        return home / ".claude" / "settings.json"
    if scope == "project":
        return cwd / ".claude" / "settings.json"
    if scope == "local":
        return cwd / ".claude" / "settings.local.json"
    raise GatewayError(f"unknown scope {scope!r}", hint=f"use one of: {', '.join(SCOPES)}")


def global_config_path(home: Path) -> Path:
    """Return Claude Code's own state file (~/.claude.json: onboarding, projects, account)."""
    return home / ".claude.json"


def managed_dir(platform: str = sys.platform) -> Path:
    """Return the folder of administrator-managed (policy) settings for a platform."""
    if platform == "darwin":
        return Path("/Library/Application Support/ClaudeCode")
    if platform.startswith("win"):
        return Path("C:/Program Files/ClaudeCode")
    return Path("/etc/claude-code")


def managed_paths(folder: Path | None = None) -> list[Path]:
    """Return managed-settings.json and the managed-settings.d/*.json drop-ins (sorted), existing or not."""
    folder = folder or managed_dir()
    drop_ins = folder / "managed-settings.d"
    extra = sorted(drop_ins.glob("*.json")) if drop_ins.is_dir() else []
    return [folder / "managed-settings.json", *extra]


def read_layer(scope: str, path: Path) -> Layer:
    """Read one settings file the way Claude Code would; never raises for a bad file (see `problem`)."""
    from cc_gateway.claude.settings import parse

    if not path.is_file():
        return Layer(scope, path, exists=False)
    try:
        doc = parse(path.read_text(encoding="utf-8"), path)
    except (GatewayError, OSError, UnicodeDecodeError) as exc:
        return Layer(scope, path, exists=True, problem=str(exc))
    issue = doc.strict_json_issue
    if issue:
        return Layer(
            scope, path, True, problem=located(path, issue[0], f"{issue[1]}; Claude Code ignores the whole file")
        )
    data = doc.value if isinstance(doc.value, dict) else {}
    env = data.get("env") if isinstance(data.get("env"), dict) else {}
    helper = data.get("apiKeyHelper")
    return Layer(
        scope, path, True, {str(k): str(v) for k, v in env.items()}, helper if isinstance(helper, str) else None
    )


def settings_layers(cwd: Path, home: Path, managed: Path | None = None) -> list[Layer]:
    """Return every settings layer Claude Code reads from `cwd`, highest precedence first."""
    layers = [read_layer("managed", p) for p in managed_paths(managed)]
    layers += [read_layer(scope, settings_path(scope, cwd, home)) for scope in ("local", "project", "user")]
    return layers


def effective_env(layers: list[Layer], environ: Mapping[str, str], names: tuple[str, ...] = ()) -> dict[str, Decision]:
    """Tell, per variable, which source decides it: the highest layer that sets it, else the shell."""
    names = names or CONNECTION_VARS + MODEL_VARS
    result: dict[str, Decision] = {}
    for name in names:
        layer = next((la for la in layers if la.exists and not la.problem and name in la.env), None)
        if layer is not None:
            result[name] = Decision(name, layer.env[name], str(layer.path))
        elif environ.get(name):
            result[name] = Decision(name, environ[name], "shell")
    return result


def shell_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the Claude Code variables set in the shell (name -> value)."""
    return {name: environ[name] for name in SHELL_VARS if environ.get(name)}


def api_key_helpers(layers: list[Layer]) -> list[Layer]:
    """Return the readable layers that define an apiKeyHelper."""
    return [la for la in layers if la.api_key_helper and not la.problem]


def find_claude(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path | None:
    """Locate the `claude` binary: PATH first, then the native installer's places under HOME."""
    env = os.environ if environ is None else environ
    found = shutil.which("claude", path=env.get("PATH"))
    if found:
        return Path(found)
    home = home or Path(env.get("HOME") or Path.home())
    for candidate in (home / ".local" / "bin" / "claude", home / ".claude" / "local" / "claude"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def claude_version(binary: Path, timeout: float = 20) -> str | None:
    """Return the version `claude --version` reports (e.g. '2.1.197'), or None when it can't run."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    return words[0] if done.returncode == 0 and words else None


@cache
def known_models() -> dict[str, Any]:
    """Return cc_gateway/data/claude_code.yaml: the model ids the pinned Claude Code requests by default."""
    from importlib.resources import files

    from cc_gateway.core.files import parse_yaml

    resource = files("cc_gateway") / "data" / "claude_code.yaml"
    return parse_yaml(resource.read_text(encoding="utf-8"), "cc_gateway/data/claude_code.yaml")


def default_model_ids() -> dict[str, str]:
    """Return role -> model id Claude Code requests when no model variable is set."""
    return dict(known_models()["default_models"])


def families() -> list[str]:
    """Claude model families; every id Claude Code sends starts with `claude-<family>-`."""
    return [str(f) for f in known_models().get("families") or ("opus", "sonnet", "haiku", "fable")]


def behaves_as() -> str:
    """The Claude id a gateway route's picker row behaves as (one the described release knows)."""
    return str(known_models().get("behaves_as") or default_model_ids()["sonnet"])


def reads_picker(version: str | None) -> bool | None:
    """Whether a Claude Code release reads modelPicker/modelSettings (None: version unknown)."""
    from cc_gateway.claude.picker import version_tuple

    if not version_tuple(version):
        return None
    return version_tuple(version) >= version_tuple(str(known_models().get("model_picker_since") or "0"))


def version_verdict(version: str, unrouted: list[str] | None) -> tuple[str, str, str | None]:
    """(status, detail, hint) for the installed Claude Code against the data: a newer release matters only
    where some model family has no route (its new ids would not be served); an older one than the oldest
    supported always does."""
    from cc_gateway.claude.picker import version_tuple

    data = known_models()
    described, oldest = str(data.get("version")), str(data.get("oldest_supported") or data.get("version"))
    have = version_tuple(version)
    if have and have < version_tuple(oldest):
        return "warn", f"; cc-gateway supports {oldest} and newer", "npm install -g @anthropic-ai/claude-code@latest"
    if have and have > version_tuple(described):
        if unrouted:
            return (
                "warn",
                f"; newer than the {described} cc-gateway's data describes, and no route catches its "
                f"claude-{unrouted[0]}-* ids",
                "add a claude-* catch-all or family route (cc-gateway add-model), or upgrade cc-gateway",
            )
        return "ok", f" (newer than the data's {described}; its ids are routed by family)", None
    return "ok", "", None
