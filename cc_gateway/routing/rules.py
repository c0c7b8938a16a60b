"""The routing rules of config.yaml (`routing_rules:`), parsed and checked into frozen `Rule`s.

```yaml
routing_rules:
  - long_context: {above_tokens: 60000, route: kimi}    # the conversation grew past N tokens
  - subagent: glm-fast                                   # a Claude Code subagent (Task/Agent tool)
  - background: glm-fast                                 # Claude Code's small-model calls
  - thinking: {route: kimi, above_budget: 16000, effort: [high, max]}
  - image: openrouter                                    # the request carries an image
  - web_search: claude-*                                 # it carries Anthropic's web-search tool
  - match: {header: {x-team: "infra*"}, to: glm}         # or model: GLOB, route: GLOB (all must hold)
  - hook: my_rules.choose                                # Python: my_rules.py next to config.yaml
```

A bad rule is one `ConfigError` naming `config.yaml:LINE` and the field, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError, located

SECTION = "routing_rules"
KINDS = ("long_context", "subagent", "background", "thinking", "image", "web_search", "match", "hook")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: Claude Code asks for its small/fast model (titles, summaries, bash prefixes) by a haiku-family id.
BACKGROUND_MODELS = ("*haiku*",)
HINT = "see README 'Routing rules' for the shape of each rule"

Locate = Callable[[tuple[Any, ...]], int | None]


@dataclass(frozen=True)
class Rule:
    """One routing rule: what it looks for and the route it sends a match to."""

    kind: str
    index: int
    route: str | None = None  # the target (a hook names its own)
    line: int | None = None  # 1-based line in config.yaml
    name: str = ""
    above_tokens: int | None = None  # long_context
    above_budget: int | None = None  # thinking
    effort: tuple[str, ...] = ()  # thinking (adaptive thinking's effort levels)
    models: tuple[str, ...] = ()  # background: model-id globs
    headers: tuple[tuple[str, str], ...] = ()  # match: (lower-case name, value glob)
    model_glob: str | None = None  # match
    route_glob: str | None = None  # match
    hook: str | None = None  # module.attr

    @property
    def label(self) -> str:
        """What the access log and `route explain` call this rule (`rule=long_context`)."""
        return self.name or self.kind

    @property
    def where(self) -> str:
        """`config.yaml:LINE` style location, for messages."""
        return f"line {self.line}" if self.line else f"{SECTION}[{self.index}]"


def parse_rules(
    config: Mapping[str, Any] | None, path: Path | str = "config.yaml", locate: Locate | None = None
) -> tuple[Rule, ...]:
    """Check and parse `routing_rules` of a loaded config (absent: no rules)."""
    raw = (config or {}).get(SECTION)
    if raw is None:
        return ()
    where = locate or (lambda _key: None)
    if not isinstance(raw, list):
        raise _error(path, where((SECTION,)), SECTION, "must be a list of rules (each item starts with '- ')")
    return tuple(_parse_item(index, item, path, where) for index, item in enumerate(raw))


def load_rules(config_path: Path, config: Mapping[str, Any] | None = None) -> tuple[Rule, ...]:
    """Parse the rules of a config.yaml file, each with its line number."""
    from cc_gateway.core.files import load_yaml, read_text
    from cc_gateway.core.yamledit import Doc

    if config is None:
        config = load_yaml(config_path) or {}
    if not isinstance(config, Mapping) or config.get(SECTION) is None:
        return ()
    doc = Doc(read_text(config_path), config_path)
    return parse_rules(config, config_path, doc.line_of)


def _error(path: Path | str, line: int | None, field: str, problem: str) -> ConfigError:
    return ConfigError(located(path, line, f"{field}: {problem}"), hint=HINT)


def _parse_item(index: int, item: Any, path: Path | str, where: Locate) -> Rule:
    field = f"{SECTION}[{index}]"
    line = where((SECTION, index))
    if not isinstance(item, Mapping):
        raise _error(path, line, field, f"a rule is a mapping like '- subagent: ROUTE', not {item!r}")
    kinds = [k for k in item if k in KINDS]
    unknown = [str(k) for k in item if k not in KINDS and k != "name"]
    if unknown:
        raise _error(path, line, f"{field}.{unknown[0]}", f"unknown rule kind (known: {', '.join(KINDS)})")
    if len(kinds) != 1:
        raise _error(path, line, field, f"one rule kind per item, found {len(kinds)} ({', '.join(kinds) or 'none'})")
    name = item.get("name") or ""
    if not isinstance(name, str):
        raise _error(path, line, f"{field}.name", "must be a string")
    kind = kinds[0]
    parser = _PARSERS[kind]
    fields = parser(item[kind], _Ctx(path, line, f"{field}.{kind}"))
    return Rule(kind=kind, index=index, line=line, name=name, **fields)


@dataclass(frozen=True)
class _Ctx:
    path: Path | str
    line: int | None
    field: str

    def fail(self, problem: str, sub: str = "") -> ConfigError:
        return _error(self.path, self.line, self.field + (f".{sub}" if sub else ""), problem)

    def route(self, value: Any, sub: str = "route") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail("needs a route name (a model_list model_name or alias)", sub)
        return value.strip()

    def count(self, value: Any, sub: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"must be a whole number of at least {minimum}, not {value!r}", sub)
        return value

    def globs(self, value: Any, sub: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
            raise self.fail("must be a glob or a list of globs", sub)
        return tuple(items)

    def keys(self, value: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        extra = [str(k) for k in value if k not in allowed]
        if extra:
            raise self.fail(f"unknown key (allowed: {', '.join(allowed)})", extra[0])


def _route_or_mapping(value: Any, ctx: _Ctx, allowed: tuple[str, ...] = ("route",)) -> Mapping[str, Any]:
    """`kind: ROUTE` or `kind: {route: ROUTE, ...}` as a mapping."""
    if isinstance(value, str):
        return {"route": ctx.route(value, "")}
    if not isinstance(value, Mapping):
        raise ctx.fail("is a route name or a mapping with 'route:'")
    ctx.keys(value, allowed)
    return value


def _simple(value: Any, ctx: _Ctx) -> dict[str, Any]:
    return {"route": ctx.route(_route_or_mapping(value, ctx).get("route"))}


def _long_context(value: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ctx.fail("is a mapping: {above_tokens: N, route: ROUTE}")
    ctx.keys(value, ("above_tokens", "route"))
    if "above_tokens" not in value:
        raise ctx.fail("is missing (the token count past which the rule fires)", "above_tokens")
    return {"above_tokens": ctx.count(value["above_tokens"], "above_tokens", 1), "route": ctx.route(value.get("route"))}


def _background(value: Any, ctx: _Ctx) -> dict[str, Any]:
    item = _route_or_mapping(value, ctx, ("route", "models"))
    models = ctx.globs(item["models"], "models") if "models" in item else BACKGROUND_MODELS
    return {"route": ctx.route(item.get("route")), "models": models}


def _thinking(value: Any, ctx: _Ctx) -> dict[str, Any]:
    item = _route_or_mapping(value, ctx, ("route", "above_budget", "effort"))
    fields: dict[str, Any] = {"route": ctx.route(item.get("route"))}
    if "above_budget" in item:
        fields["above_budget"] = ctx.count(item["above_budget"], "above_budget")
    if "effort" in item:
        efforts = ctx.globs(item["effort"], "effort")
        bad = [e for e in efforts if e not in EFFORTS]
        if bad:
            raise ctx.fail(f"{bad[0]!r} is not an effort level ({', '.join(EFFORTS)})", "effort")
        fields["effort"] = efforts
    return fields


def _match(value: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ctx.fail("is a mapping: {header|model|route: GLOB, to: ROUTE}")
    ctx.keys(value, ("header", "model", "route", "to"))
    fields: dict[str, Any] = {"route": ctx.route(value.get("to"), "to")}
    if "header" in value:
        fields["headers"] = _headers(value["header"], ctx)
    for key, target in (("model", "model_glob"), ("route", "route_glob")):
        if key in value:
            if not isinstance(value[key], str) or not value[key]:
                raise ctx.fail("must be a glob", key)
            fields[target] = value[key]
    if len(fields) == 1:
        raise ctx.fail("needs at least one of header, model, route to look at")
    return fields


def _headers(value: Any, ctx: _Ctx) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str) and ":" in value:  # "name: glob" written as one string
        name, _, glob = value.partition(":")
        value = {name.strip(): glob.strip()}
    if not isinstance(value, Mapping) or not value:
        raise ctx.fail("is a mapping of header name to value glob, e.g. {x-team: 'infra*'}", "header")
    pairs = []
    for name, glob in value.items():
        if not isinstance(name, str) or not isinstance(glob, str):
            raise ctx.fail("header names and globs are strings", "header")
        pairs.append((name.strip().lower(), glob))
    return tuple(pairs)


def _hook(value: Any, ctx: _Ctx) -> dict[str, Any]:
    module, _, attr = value.rpartition(".") if isinstance(value, str) else ("", "", "")
    if not module or not attr or not all(part.isidentifier() for part in [*module.split("."), attr]):
        raise ctx.fail("is 'module.function' (module.py next to config.yaml, or an installed module)")
    return {"hook": value}


_PARSERS: dict[str, Callable[[Any, _Ctx], dict[str, Any]]] = {
    "long_context": _long_context,
    "subagent": _simple,
    "background": _background,
    "thinking": _thinking,
    "image": _simple,
    "web_search": _simple,
    "match": _match,
    "hook": _hook,
}
