"""`init`'s core: turn a preset plus answers into a plan of files, reusing what the folder already holds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cc_gateway.core import paths
from cc_gateway.core.envfile import load_env_file
from cc_gateway.core.errors import UsageError
from cc_gateway.core.files import SECRET_MODE, Action, FileSpec, Plan, atomic_write, ensure_writable_dir, plan_files
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
    plan = _replace_what_init_wrote(plan, request.folder)
    return InitResult(plan, answers, _shape_warnings(preset, values), _missing(preset, values))


# A file init wrote and nobody changed since is not a conflict (e.g. `init --preset anthropic` over the
# demo folder): it is replaced, keeping NAME.bak. What init wrote is recorded as hashes in cc-gateway's state
# folder (never in the gateway folder, which may be shared or built into an image; never a value of .env).


def record_path(folder: Path) -> Path:
    """Where the record of what init wrote in `folder` lives."""
    digest = hashlib.sha256(str(folder.expanduser().absolute().resolve()).encode()).hexdigest()[:20]
    return paths.home() / "init-written" / f"{digest}.json"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def written_by_init(folder: Path) -> dict[str, str]:
    """Return {file name: sha256} of what init last wrote in `folder` (empty when unknown or unreadable)."""
    try:
        data = json.loads(record_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _replace_what_init_wrote(plan: Plan, folder: Path) -> Plan:
    """Turn each conflict whose file is exactly what init last wrote into a replace (no --force needed)."""
    record = written_by_init(folder)
    changes = []
    for change in plan.changes:
        owned = change.old is not None and record.get(change.path.name) == _sha(change.old)
        if change.action is Action.CONFLICT and owned:
            change = dataclasses.replace(change, action=Action.REPLACE)
        changes.append(change)
    return Plan(changes)


def record_written(plan: Plan, folder: Path) -> None:
    """Remember what init wrote in `folder` (call after applying the plan): hashes only."""
    files = {c.path.name: _sha(c.new) for c in plan.changes}
    where = record_path(folder)
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"folder": str(folder.expanduser().absolute()), "files": files}
    atomic_write(where, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=SECRET_MODE)


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
