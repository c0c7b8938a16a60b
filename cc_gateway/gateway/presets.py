"""Preset catalogue: YAML data files in the package (and the user's own), validated into dataclasses."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cc_gateway.core import paths
from cc_gateway.core.errors import ConfigError, UsageError
from cc_gateway.core.files import parse_yaml
from cc_gateway.gateway.providers import Provider, load_providers

_VARIABLE_KINDS = {
    "key",
    "base_url",
    "setting",
    "master_key",
    "generated",
    "port",
    "static_token",
    "token_pool",
    "oauth_token",
}
_PRESET_KEYS = {
    "description",
    "notice",
    "default_route",
    "options",
    "variables",
    "routes",
    "aliases",
    "fallbacks",
    "general_settings",
    "litellm_settings",
    "router_settings",
    "static_tokens",
    "compose",
    "gateway_variables",
    "routing_rules",
}


@dataclass(frozen=True)
class Variable:
    """One `.env` variable a preset needs."""

    name: str
    kind: str = "setting"
    help: str = ""
    provider: str | None = None
    secret: bool = False
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Route:
    """One model route (a LiteLLM deployment) as the preset describes it."""

    name: str
    params: dict[str, Any]
    model_info: dict[str, Any] = field(default_factory=dict)
    comment: str = ""
    provider: str | None = None
    credential_pool: bool = False


@dataclass(frozen=True)
class Preset:
    """A validated preset."""

    name: str
    description: str
    default_route: str
    variables: tuple[Variable, ...]
    routes: tuple[Route, ...]
    options: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    fallbacks: tuple[dict[str, list[str]], ...] = ()
    general_settings: dict[str, Any] = field(default_factory=dict)
    litellm_settings: dict[str, Any] = field(default_factory=dict)
    router_settings: dict[str, Any] = field(default_factory=dict)
    compose: dict[str, Any] = field(default_factory=dict)
    notice: str = ""
    static_tokens: bool = False
    source: str = ""
    routing_rules: tuple[dict[str, Any], ...] = ()  # offered by init (`--option rules=off` leaves them out)

    def variable(self, name: str) -> Variable | None:
        """Return the variable called `name`, if the preset has it."""
        return next((v for v in self.variables if v.name == name), None)


def _package_dir() -> Any:
    return resources.files("cc_gateway") / "presets"


def _user_dir() -> Path:
    return paths.home() / "presets"


def preset_names() -> list[str]:
    """List the available preset names: built-in first, then the user's own."""
    names = [p.name[:-5] for p in _package_dir().iterdir() if p.name.endswith(".yaml") and p.name[0] != "_"]
    user = _user_dir()
    if user.is_dir():
        names += [p.stem for p in sorted(user.glob("*.yaml")) if p.stem not in names]
    return sorted(names, key=_ORDER.get) if set(names) <= set(_ORDER) else names


_ORDER = {n: i for i, n in enumerate(["demo", "anthropic", "openai-backed", "multi-provider", "oauth-bridge"])}


def load_preset(name: str) -> Preset:
    """Load and validate a preset by name; an unknown name lists the valid ones."""
    source = _find(name)
    text = source.read_text(encoding="utf-8")
    data = parse_yaml(text, source)
    base = parse_yaml((_package_dir() / "_base.yaml").read_text(encoding="utf-8"), "_base.yaml")
    return _build(name, _deep_merge(base, data or {}), str(source), load_providers())


def _find(name: str) -> Any:
    user_file = _user_dir() / f"{name}.yaml"
    if user_file.is_file():
        return user_file
    packaged = _package_dir() / f"{name}.yaml"
    if name and not name.startswith("_") and packaged.is_file():
        return packaged
    import difflib

    names = preset_names()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"unknown preset {name!r}{guess}", hint=f"valid presets: {', '.join(names)}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge `over` onto a copy of `base`; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _build(name: str, data: dict[str, Any], source: str, providers: dict[str, Provider]) -> Preset:
    """Validate merged preset data; errors name the file and the field path."""

    def fail(where: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {problem}", hint="fix the preset file")

    unknown = {k for k in data if k not in _PRESET_KEYS and not k.startswith("x-")}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown field")
    for required in ("description", "default_route", "routes"):
        if not data.get(required):
            raise fail(required, "missing")
    variables = [_variable(v, f"gateway_variables[{i}]", fail) for i, v in enumerate(data["gateway_variables"])]
    variables += [_variable(v, f"variables[{i}]", fail, providers) for i, v in enumerate(data.get("variables") or [])]
    routes = tuple(_route(r, f"routes[{i}]", fail, providers) for i, r in enumerate(data["routes"]))
    names = {r.name for r in routes}
    aliases = dict(data.get("aliases") or {})
    for alias, target in aliases.items():
        if target not in names:
            raise fail(f"aliases.{alias}", f"points at unknown route {target!r}")
    if data["default_route"] not in names:
        raise fail("default_route", f"unknown route {data['default_route']!r}")
    return Preset(
        name=name,
        description=str(data["description"]).strip(),
        default_route=data["default_route"],
        variables=tuple(variables),
        routes=routes,
        options={k: str(v) for k, v in (data.get("options") or {}).items()},
        aliases=aliases,
        fallbacks=tuple(data.get("fallbacks") or ()),
        general_settings=data.get("general_settings") or {},
        litellm_settings=data.get("litellm_settings") or {},
        router_settings=data.get("router_settings") or {},
        compose=data.get("compose") or {},
        notice=" ".join(str(data.get("notice") or "").split()),
        static_tokens=bool(data.get("static_tokens")),
        source=source,
        routing_rules=_routing_rules(data.get("routing_rules"), names, fail),
    )


def _routing_rules(raw: Any, names: set[str], fail: Any) -> tuple[dict[str, Any], ...]:
    """A preset's routing rules: a list of one-key mappings whose targets are the preset's routes."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, dict) and len(r) == 1 for r in raw):
        raise fail("routing_rules", "expected a list of one-key mappings like {subagent: ROUTE}")
    for index, rule in enumerate(raw):
        value = next(iter(rule.values()))
        target = value.get("route") or value.get("to") if isinstance(value, dict) else value
        if target not in names:
            raise fail(f"routing_rules[{index}]", f"sends to unknown route {target!r}")
    return tuple(raw)


def _variable(raw: Any, where: str, fail: Any, providers: dict[str, Provider] | None = None) -> Variable:
    if not isinstance(raw, dict) or "name" not in raw:
        raise fail(where, "expected a mapping with a name")
    raw = dict(raw)
    if raw.pop("base_url", False):
        raw["kind"] = "base_url"
        provider = (providers or {}).get(raw.get("provider", ""))
        if provider is None:
            raise fail(f"{where}.provider", f"unknown provider {raw.get('provider')!r}")
        raw.setdefault("default", provider.base_url)
    elif raw.get("provider") and "kind" not in raw:
        raw["kind"] = "key"
    if raw.get("kind", "setting") not in _VARIABLE_KINDS:
        raise fail(f"{where}.kind", f"unknown kind {raw['kind']!r}")
    try:
        return Variable(**raw)
    except TypeError as exc:
        raise fail(where, str(exc).split("__init__() ")[-1]) from None


def _route(raw: Any, where: str, fail: Any, providers: dict[str, Provider]) -> Route:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise fail(where, "expected a mapping with a name")
    params = raw.get("params")
    if not isinstance(params, dict) or not params.get("model"):
        raise fail(f"{where}.params.model", "missing")
    if "[1m]" in raw["name"]:
        raise fail(f"{where}.name", "must not contain [1m]: Claude Code strips it before the request")
    for key, value in params.items():
        if "key" in key and isinstance(value, str) and value.startswith("sk-"):
            raise fail(f"{where}.params.{key}", "literal key: use os.environ/VARIABLE")
    provider = raw.get("provider") or params["model"].split("/", 1)[0]
    if raw.get("provider") and provider not in providers:
        raise fail(f"{where}.provider", f"unknown provider {provider!r}")
    return Route(
        name=str(raw["name"]),
        params=dict(params),
        model_info=dict(raw.get("model_info") or {}),
        comment=str(raw.get("comment") or ""),
        provider=provider,
        credential_pool=bool(raw.get("credential_pool")),
    )
