"""`init`'s core: turn a preset plus answers into a plan of files, reusing what the folder already holds."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cc_gateway.core.envfile import load_env_file
from cc_gateway.core.errors import UsageError
from cc_gateway.core.files import FileSpec, Plan, ensure_writable_dir, plan_files
from cc_gateway.core.secrets import is_placeholder, is_weak_key
from cc_gateway.gateway.presets import Preset
from cc_gateway.gateway.providers import load_providers
from cc_gateway.gateway.render import ENV, Answers, render

DEFAULT_PORT = 4000


def new_key() -> str:
    """Return a fresh gateway key: `sk-` and 32 random bytes, URL-safe."""
    return "sk-" + secrets.token_urlsafe(32)


@dataclass
class InitRequest:
    """What the user asked for (flags or wizard answers)."""

    preset: Preset
    folder: Path
    port: int = DEFAULT_PORT
    keys: dict[str, str] = field(default_factory=dict)  # variable or provider name -> key given now
    api_bases: dict[str, str] = field(default_factory=dict)  # variable or provider name -> base URL
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class InitResult:
    """The plan plus what the CLI should tell the user."""

    plan: Plan
    answers: Answers
    warnings: list[str]
    missing: list[str]  # required variables still placeholders


def check_port(port: int) -> int:
    """Validate a TCP port number."""
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range", hint="use a port between 1 and 65535, e.g. 4000")
    return port


def resolve_name(preset: Preset, name: str, *, base_url: bool = False) -> str:
    """Map a provider short name or variable name (from --key/--api-base) to the preset's variable."""
    if preset.variable(name):
        return name
    provider = load_providers().get(name.lower())
    for var in preset.variables:
        if provider and var.provider == provider.name and (var.kind == "base_url") == base_url:
            return var.name
    known = ", ".join(v.name for v in preset.variables if v.kind not in ("master_key", "generated", "port"))
    raise UsageError(f"preset {preset.name} has no variable {name!r}", hint=f"its variables: {known or 'none'}")


def plan_init(request: InitRequest) -> InitResult:
    """Decide every value and plan the files; touches nothing on disk."""
    check_port(request.port)
    ensure_writable_dir(request.folder)
    preset = request.preset
    existing = load_env_file(request.folder / ENV)
    unknown_options = set(request.options) - set(preset.options)
    if unknown_options:
        raise UsageError(
            f"preset {preset.name} has no option {sorted(unknown_options)[0]!r}",
            hint=f"its options: {', '.join(preset.options) or 'none'}",
        )
    values = {k: v for k, v in existing.items() if preset.variable(k) and not is_placeholder(v)}
    values.update({resolve_name(preset, k): v for k, v in request.keys.items()})
    values.update({resolve_name(preset, k, base_url=True): v for k, v in request.api_bases.items()})
    master = existing.get("LITELLM_MASTER_KEY", "")
    salt = existing.get("LITELLM_SALT_KEY", "")
    answers = Answers(
        port=request.port,
        master_key=master if _good_key(master) else new_key(),
        salt_key=salt if _good_key(salt) else new_key(),
        values=values,
        options=dict(request.options),
    )
    files = render(preset, answers)
    plan = plan_files({request.folder / name: FileSpec(text, mode) for name, (text, mode) in files.items()})
    return InitResult(plan, answers, _shape_warnings(preset, values), _missing(preset, values))


def _good_key(value: str) -> bool:
    return not is_weak_key(value)


def _shape_warnings(preset: Preset, values: dict[str, str]) -> list[str]:
    """Warn (not fail) about keys that don't look like their provider's keys."""
    providers = load_providers()
    warnings = []
    for var in preset.variables:
        value = values.get(var.name)
        provider = providers.get(var.provider or "")
        if value and var.kind == "key" and provider and not provider.key_looks_valid(value):
            warnings.append(f"{var.name} does not look like a key for {provider.label}; check it was pasted whole")
        if value and var.kind == "oauth_token" and not value.startswith("sk-ant-oat"):
            warnings.append(
                f"{var.name} does not look like an OAuth token (sk-ant-oat01-...); see `claude setup-token`"
            )
    return warnings


def _missing(preset: Preset, values: dict[str, str]) -> list[str]:
    return [v.name for v in preset.variables if v.required and not values.get(v.name)]
