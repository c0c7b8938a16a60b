"""Render a preset into the files of a gateway folder; pure: values in, texts out."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from cc_gateway.core.errors import ConfigError
from cc_gateway.gateway import image
from cc_gateway.gateway.presets import Preset, Route

CONFIG = "config.yaml"
ENV = ".env"
COMPOSE = "docker-compose.yml"
DOCKERFILE = "Dockerfile"
SHIM = "cc_gateway_runtime.py"
GENERATED_FILES = (CONFIG, ENV, COMPOSE, DOCKERFILE, SHIM)


@dataclass(frozen=True)
class Answers:
    """Everything init decided: the preset's inputs plus the generated secrets."""

    port: int
    master_key: str
    salt_key: str
    values: dict[str, str] = field(default_factory=dict)  # .env values (keys, base URLs, settings)
    options: dict[str, str] = field(default_factory=dict)
    team: bool = False  # a team gateway: keys per person, limits, the usage ledger (cc_gateway/team)


def _yaml_block(value: Any, indent: int) -> str:
    """Dump a mapping or list as block YAML, indented, without a trailing newline."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000)
    pad = " " * indent
    return "\n".join(pad + line for line in text.rstrip("\n").splitlines())


def _yaml_scalar(value: Any) -> str:
    """Dump one scalar as YAML (quoted only when needed)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("cc_gateway", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml_block"] = _yaml_block
    env.filters["yaml_scalar"] = _yaml_scalar
    return env


def route_params(route: Route, options: dict[str, str]) -> dict[str, Any]:
    """Return a route's litellm_params with preset options filled in."""
    return {k: v.format_map(options) if isinstance(v, str) else v for k, v in route.params.items()}


def route_model_info(route: Route) -> dict[str, Any]:
    """Return a route's model_info with what cc-gateway's runtime needs to know about it."""
    info = dict(route.model_info)
    if route.provider:
        info.setdefault("cc_gateway_provider", route.provider)
    if route.credential_pool:
        info["cc_gateway_credential_pool"] = True
    return info


def _router_settings(preset: Preset) -> dict[str, Any]:
    settings = dict(preset.router_settings)
    if preset.aliases:
        settings["model_group_alias"] = dict(preset.aliases)
    if preset.fallbacks:
        settings["fallbacks"] = [dict(f) for f in preset.fallbacks]
    return settings


def uses_bridge(preset: Preset) -> bool:
    """Whether a preset routes to the oauth-bridge (its image needs claude-agent-sdk)."""
    return any(r.params["model"].startswith("claude-agent/") for r in preset.routes)


def render(preset: Preset, answers: Answers) -> dict[str, tuple[str, int]]:
    """Render every file of the gateway folder: {relative name: (text, mode)}."""
    options = {**preset.options, **answers.options}
    context = {
        "preset": preset,
        "answers": answers,
        "routes": [
            {"r": r, "params": route_params(r, options), "model_info": route_model_info(r)} for r in preset.routes
        ],
        "router_settings": _router_settings(preset),
        "routing_rules": [] if options.get("rules") == "off" else [dict(r) for r in preset.routing_rules],
        "env_groups": env_groups(preset, answers),
        "uses_bridge": uses_bridge(preset),
        "image": {"wheel": image.wheel_name(), "lock": image.LOCK_FILE},
        "compose": {"redis": False, "replicas": 1, "volume": None, "volume_path": None, **preset.compose},
    }
    env = _environment()
    out = {
        CONFIG: (env.get_template("config.yaml.j2").render(context), 0o644),
        ENV: (env.get_template("env.j2").render(context), 0o600),
        COMPOSE: (env.get_template("docker-compose.yml.j2").render(context), 0o644),
        DOCKERFILE: (env.get_template("Dockerfile.j2").render(context), 0o644),
        SHIM: (env.get_template("cc_gateway_runtime.py.j2").render(context), 0o644),
    }
    _check_yaml(out[CONFIG][0], CONFIG)
    _check_yaml(out[COMPOSE][0], COMPOSE)
    return out


def env_groups(preset: Preset, answers: Answers) -> list[dict[str, Any]]:
    """Lay out .env lines: each variable with its help, value, or a commented placeholder."""
    fixed = {
        "LITELLM_MASTER_KEY": answers.master_key,
        "LITELLM_SALT_KEY": answers.salt_key,
        "CC_GATEWAY_PORT": str(answers.port),
    }
    lines = []
    for var in preset.variables:
        value = fixed.get(var.name, answers.values.get(var.name, var.default))
        lines.append({"var": var, "value": value, "placeholder": value is None or (var.secret and value == "")})
    gateway = [line for line in lines if line["var"].kind in ("master_key", "generated", "port")]
    rest = [line for line in lines if line not in gateway]
    groups = [{"title": "gateway", "lines": gateway}, {"title": "upstreams", "lines": rest}]
    if answers.team:
        groups.append({"title": "team gateway", "lines": _team_lines(answers)})
    return [g for g in groups if g["lines"]]


def _team_lines(answers: Answers) -> list[dict[str, Any]]:
    """`init --team`: the switch, and DATABASE_URL (a placeholder unless set: the folder's team.db is used)."""
    from cc_gateway.gateway.presets import Variable

    switch = Variable("CC_GATEWAY_TEAM", help="a team gateway: `cc-gateway keys add NAME` gives a person a key")
    store = Variable("DATABASE_URL", help="PostgreSQL for the team store (several replicas); unset: team.db here")
    url = answers.values.get("DATABASE_URL")
    return [{"var": switch, "value": "true", "placeholder": False}, {"var": store, "value": url, "placeholder": not url}]


def _check_yaml(text: str, name: str) -> None:
    """Rendered YAML must parse: a failure here is a bug in a preset or template."""
    import yaml

    try:
        yaml.safe_load(io.StringIO(text))
    except yaml.YAMLError as exc:  # pragma: no cover - guards template edits
        raise ConfigError(f"rendered {name} is not valid YAML: {exc}") from None
