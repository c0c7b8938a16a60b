"""Grow or shrink a gateway's routes: plan edits to config.yaml and .env without hand-editing YAML.

Every edit is a list of small operations (append / add_keys / set / delete at a key path). The same
list is applied twice: to the text, through `yamledit.Doc` (line splices that keep comments and
layout), and to the plain data; the edited text must parse to exactly that data or nothing is written.
"""

from __future__ import annotations

import copy
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_gateway.core.envfile import layered, parse_env
from cc_gateway.core.errors import ConfigError, ConflictError, UsageError, located
from cc_gateway.core.files import (
    Action,
    Change,
    FileSpec,
    Plan,
    apply_plan,
    backup,
    ensure_writable_dir,
    parse_yaml,
    read_text,
)
from cc_gateway.core.secrets import is_placeholder
from cc_gateway.core.yamledit import Doc, KeyPath, verify
from cc_gateway.gateway.folder import CHAT_FLAG, KEY_PARAMS, env_ref, locate_config
from cc_gateway.gateway.providers import Provider, load_providers, picker_model_info
from cc_gateway.gateway.render import ENV
from cc_gateway.gateway.rule_edit import purpose_model_info, remove_rule_ops, rule_ops

FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALIASES: KeyPath = ("router_settings", "model_group_alias")

Op = tuple[str, KeyPath, Any]  # (append | add_keys | set | delete, path, value)


@dataclass(frozen=True)
class NewRoute:
    """What `add-model` was asked to add."""

    name: str
    provider: str
    model: str
    api_base: str | None = None
    key_env: str | None = None
    aliases: tuple[str, ...] = ()
    fallback_for: str | None = None
    max_tokens: int | None = None
    replace: bool = False
    force: bool = False  # re-point aliases that already exist
    purposes: tuple[str, ...] = ()  # --for: routing rules to point at this route
    above_tokens: int | None = None  # --above-tokens: the long-context rule's threshold
    context_window: int | None = None  # max_input_tokens (default: LiteLLM's catalogue, if it knows the model)
    label: str | None = None  # the route's title in Claude Code's /model picker


@dataclass
class RouteEdit:
    """A planned edit: the file plan plus what it does, in words."""

    plan: Plan
    notes: list[str] = field(default_factory=list)  # one line per change made
    missing: list[str] = field(default_factory=list)  # variables the route needs that are not set yet
    unused: list[str] = field(default_factory=list)  # variables no route uses any more (left in .env)


@dataclass(frozen=True)
class _EnvNeed:
    name: str
    value: str | None  # None: a commented placeholder (secrets)
    help: str


@dataclass
class _Config:
    path: Path
    text: str
    data: dict[str, Any]  # as PyYAML (and so LiteLLM) reads it
    doc: Doc  # the same text, parsed round-trip for locations

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.data.get("model_list") or []

    @property
    def names(self) -> list[str]:
        return [str(e.get("model_name")) for e in self.entries]

    @property
    def router(self) -> dict[str, Any]:
        value = self.data.get("router_settings")
        return value if isinstance(value, dict) else {}

    @property
    def aliases(self) -> dict[str, str]:
        raw = self.router.get("model_group_alias") or {}
        if not isinstance(raw, dict):
            raise ConfigError(self.where(ALIASES, "must be a mapping of alias: route"))
        return {str(k): str(v.get("model") if isinstance(v, dict) else v) for k, v in raw.items()}

    def fallbacks(self, key: str = "fallbacks") -> list[tuple[int, str, list[str]]]:
        """(list index, route, [targets]) for each route named in the list, in file order."""
        items = self.router.get(key) or []
        shape = "must be a list of {route: [fallback routes]}"
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError(self.where(("router_settings", key), shape))
        for index, item in enumerate(items):
            if not all(isinstance(targets, list) for targets in item.values()):
                raise ConfigError(self.where(("router_settings", key, index), shape))
        return [
            (index, str(route), [str(t) for t in targets])
            for index, item in enumerate(items)
            for route, targets in item.items()
        ]

    def where(self, path: KeyPath, problem: str) -> str:
        """`file:line: a.b.c problem` for a node of this config."""
        return located(self.path, self.doc.line_of(path), f"{'.'.join(map(str, path))} {problem}")


# --------------------------------------------------------------------------- loading


def _load(folder: Path | None) -> _Config:
    path = locate_config(folder, None)
    text = _read_exact(path)
    doc = Doc(text, path)
    doc.data  # noqa: B018 - parse with ruamel first: its errors carry file and line for every YAML problem
    data = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level", hint="compare with `cc-gateway init` output")
    entries = data.get("model_list")
    if entries is not None and not isinstance(entries, list):
        raise ConfigError(f"{path}: model_list must be a list", hint="see the README's config section")
    for index, entry in enumerate(entries or []):
        if not isinstance(entry, dict) or "model_name" not in entry:
            where = located(path, doc.line_of(("model_list", index)), f"model_list[{index}] has no model_name")
            raise ConfigError(where, hint="every route needs model_name and litellm_params")
    for key in ("router_settings", "litellm_settings"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key} must be a mapping")
    return _Config(path, text, data, doc)


def _provider(name: str) -> Provider:
    catalogue = load_providers()
    if name not in catalogue:
        raise UsageError(f"unknown provider {name!r}", hint=f"use one of: {', '.join(catalogue)}")
    return catalogue[name]


# --------------------------------------------------------------------------- add-model


def plan_add(folder: Path | None, request: NewRoute) -> RouteEdit:
    """Plan adding (or with `replace`, replacing) a route; refuse bad requests with no change."""
    provider = _provider(request.provider)
    _check_request(request)
    config = _load(folder)
    _check_name(config, request)
    env_path = config.path.parent / ENV
    env_text = _read_exact(env_path) if env_path.exists() else ""
    env_values = parse_env(env_text, env_path)
    params, needs, notes = _variables(provider, request, env_values)
    entry = {
        "model_name": request.name,
        "litellm_params": {"model": f"{provider.prefix}/{request.model}", **params},
        "model_info": _model_info(provider, request),
    }
    ops, more = _route_ops(config, request, entry, provider)
    more_ops, rule_notes = rule_ops(config.data, request.name, request.purposes, request.above_tokens)
    ops, more = ops + more_ops, more + rule_notes
    new_text = _edit_config(config, ops)
    new_env, added = _edit_env(env_text, needs, env_values, request.name)
    files = {config.path: FileSpec(new_text, _mode(config.path))}
    if new_env != env_text:
        files[env_path] = FileSpec(new_env, 0o600)
    environ = layered(parse_env(new_env, env_path))
    missing = [n.name for n in needs if n.value is None and is_placeholder(environ.get(n.name))]
    if added:
        notes.append(f".env: added {', '.join(added)} (values already there are never changed)")
    return RouteEdit(_plan(files), more + notes, missing)


def _check_request(request: NewRoute) -> None:
    if not request.name.strip() or request.name != request.name.strip() or request.name.startswith("-"):
        raise UsageError(f"invalid route name {request.name!r}", hint="use a name like glm or claude-sonnet-4-5")
    if not request.model.strip():
        raise UsageError("--model is empty", hint="give the provider's model id, e.g. --model glm-4.6")
    if request.key_env is not None and not _VAR.match(request.key_env):
        raise UsageError(f"--key-env {request.key_env!r} is not a variable name", hint="e.g. --key-env MY_API_KEY")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise UsageError("--max-tokens must be a positive number")
    if request.api_base is not None and not re.match(r"^https?://[^\s/]+", request.api_base):
        raise UsageError(f"--api-base {request.api_base!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8000/v1")


def _check_name(config: _Config, request: NewRoute) -> None:
    name = request.name
    if name in config.names and not request.replace:
        line = config.doc.line_of(("model_list", config.names.index(name)))
        raise UsageError(
            located(config.path, line, f"route {name!r} already exists"),
            hint="pass --replace to replace it, or choose another name",
        )
    if name in config.aliases:
        raise UsageError(
            f"{name!r} is already an alias of route {config.aliases[name]!r}; a route by that name would be unreachable",
            hint="choose another name",
        )


def _model_info(provider: Provider, request: NewRoute) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if provider.endpoint == "chat":
        # Claude Code sends `thinking` on every request; without this LiteLLM sends chat-endpoint
        # upstreams to /v1/responses instead of chat completions.
        info["supports_reasoning"] = False
    info["max_output_tokens"] = request.max_tokens or provider.max_tokens
    info.update(picker_model_info(request.context_window, request.model, provider.name, request.label))
    info["cc_gateway_provider"] = provider.name
    info.update(purpose_model_info(request.purposes))
    return info


def _variables(
    provider: Provider, request: NewRoute, env_values: Mapping[str, str]
) -> tuple[dict[str, str], list[_EnvNeed], list[str]]:
    """Decide the route's os.environ/ references and the .env lines they need."""
    params: dict[str, str] = {}
    needs: list[_EnvNeed] = []
    notes: list[str] = []
    key_var = request.key_env or provider.key_env
    if key_var:
        params[provider.key_param] = f"os.environ/{key_var}"
        needs.append(_EnvNeed(key_var, None, provider.key_help or f"{provider.label} API key"))
    base_var, url = _base(provider, request, env_values, notes)
    if base_var:
        params["api_base"] = f"os.environ/{base_var}"
        if url:
            needs.append(_EnvNeed(base_var, url, f"{provider.name} base URL (route {request.name})"))
    for extra in provider.extra_env:
        params[extra.param] = f"os.environ/{extra.name}"
        needs.append(_EnvNeed(extra.name, None if extra.secret else extra.default, extra.help))
    return params, needs, notes


def _base(
    provider: Provider, request: NewRoute, env_values: Mapping[str, str], notes: list[str]
) -> tuple[str | None, str | None]:
    """Return (base variable, URL to put in .env) for the route, or (None, None) for the default."""
    var = provider.base_env
    url = request.api_base
    if url:
        current = env_values.get(var or "")
        if var is None or (current and current.rstrip("/") != url.rstrip("/")):
            own = re.sub(r"[^A-Z0-9]+", "_", request.name.upper()).strip("_") + "_API_BASE"
            if var is not None:
                notes.append(f"{var} in .env already points at {current}; route {request.name} reads {own} instead")
            var = own
            if env_values.get(own) and env_values[own].rstrip("/") != url.rstrip("/"):
                raise ConfigError(
                    f".env: {own} is already set to {env_values[own]}, not {url}",
                    hint=f"edit {own} in .env yourself, or leave out --api-base to keep it",
                )
        return var, url
    if var and env_values.get(var):
        return var, None  # the user's own base URL, already in .env
    if var and provider.base_url:
        return var, provider.base_url
    if provider.needs_base:
        raise UsageError(
            f"provider {provider.name} needs --api-base URL (the server's base URL)",
            hint="e.g. --api-base http://127.0.0.1:8000/v1",
        )
    return None, None


def _route_ops(
    config: _Config, request: NewRoute, entry: dict[str, Any], provider: Provider
) -> tuple[list[Op], list[str]]:
    """Operations that add the route, its aliases, its fallback link and the chat setting."""
    name = request.name
    ops: list[Op] = []
    notes: list[str] = []
    if name in config.names:
        ops.append(("set", ("model_list", config.names.index(name)), entry))
        notes.append(f"replaced route {name} ({entry['litellm_params']['model']})")
    else:
        ops.append(("append", ("model_list",), entry))
        notes.append(f"added route {name} ({entry['litellm_params']['model']}, {provider.label})")
    ops += _alias_ops(config, request, notes)
    ops += _fallback_ops(config, request, notes)
    settings = config.data.get("litellm_settings") or {}
    if provider.endpoint == "chat" and CHAT_FLAG not in settings:
        ops.append(("add_keys", ("litellm_settings",), {CHAT_FLAG: True}))
        notes.append(f"set litellm_settings.{CHAT_FLAG}: true (chat-completions upstreams need it)")
    elif provider.endpoint == "chat" and settings.get(CHAT_FLAG) is not True:
        notes.append(f"warning: litellm_settings.{CHAT_FLAG} is not true; Claude Code requests to {name} may fail")
    return ops, notes


def _alias_ops(config: _Config, request: NewRoute, notes: list[str]) -> list[Op]:
    new: dict[str, str] = {}
    ops: list[Op] = []
    for alias in dict.fromkeys(request.aliases):
        if alias == request.name or alias in config.names:
            raise UsageError(f"alias {alias!r} would shadow the route of that name", hint="choose another alias")
        current = config.aliases.get(alias)
        if current == request.name:
            continue
        if current is not None and not request.force:
            raise UsageError(
                f"alias {alias!r} already points at route {current!r}", hint="pass --force to point it at this route"
            )
        if current is not None:
            ops.append(("set", (*ALIASES, alias), request.name))
            notes.append(f"alias {alias} now points at {request.name} (was {current})")
        else:
            new[alias] = request.name
            notes.append(f"alias {alias} -> {request.name}")
    if new:
        ops.insert(0, ("add_keys", ALIASES, new))
    return ops


def _fallback_ops(config: _Config, request: NewRoute, notes: list[str]) -> list[Op]:
    target, name = request.fallback_for, request.name
    if target is None:
        return []
    if target not in config.names:
        hint = f"use one of: {', '.join(config.names)}"
        if target in config.aliases:
            hint = f"{target} is an alias; use its route: --fallback-for {config.aliases[target]}"
        raise UsageError(f"--fallback-for {target!r}: no route by that name", hint=hint)
    graph: dict[str, list[str]] = {}
    for _, route, targets in config.fallbacks():
        graph.setdefault(route, []).extend(targets)
    if name in graph.get(target, []):
        return []
    cycle = _path(graph, name, target)
    if target == name or cycle:
        chain = " -> ".join([target, *(cycle or [name])])
        raise UsageError(f"fallback cycle: {chain}", hint="a route cannot fall back, directly or not, to itself")
    notes.append(f"{name} is now a fallback for {target}")
    for index, route, _ in config.fallbacks():
        if route == target:
            return [("append", ("router_settings", "fallbacks", index, target), name)]
    return [("append", ("router_settings", "fallbacks"), {target: [name]})]


def _path(graph: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """Return a fallback chain start -> ... -> goal, or None."""
    stack, seen = [[start]], {start}
    while stack:
        chain = stack.pop()
        for nxt in graph.get(chain[-1], []):
            if nxt == goal:
                return [*chain, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append([*chain, nxt])
    return None


# --------------------------------------------------------------------------- remove-model


def plan_remove(folder: Path | None, name: str) -> RouteEdit:
    """Plan removing a route with its aliases and fallback references (.env is left alone)."""
    config = _load(folder)
    if name not in config.names:
        if name in config.aliases:
            raise UsageError(f"{name!r} is an alias of route {config.aliases[name]!r}, not a route")
        raise UsageError(f"no route named {name!r}", hint=f"routes: {', '.join(config.names) or 'none'}")
    if len(config.names) == 1:
        raise UsageError(f"{name!r} is the only route; a gateway needs at least one", hint="add another route first")
    index = config.names.index(name)
    line = config.doc.line_of(("model_list", index))
    ops: list[Op] = [("delete", ("model_list", index), None)]
    notes = [f"removed route {name} (line {line})"]
    ops += _remove_alias_ops(config, name, notes)
    for key in FALLBACK_KEYS:
        ops += _remove_fallback_ops(config, name, key, notes)
    more_ops, rule_notes = remove_rule_ops(config.data, name)
    ops, notes = ops + more_ops, notes + rule_notes
    new_text = _edit_config(config, ops)
    before = _params_vars(config.entries[index])
    still = _all_vars(parse_yaml(new_text, config.path))
    unused = [v for v in before if v not in still]
    plan = _plan({config.path: FileSpec(new_text, _mode(config.path))})
    return RouteEdit(plan, notes, unused=unused)


def _remove_alias_ops(config: _Config, name: str, notes: list[str]) -> list[Op]:
    doomed = [a for a, route in config.aliases.items() if route == name]
    for alias in doomed:
        notes.append(f"removed alias {alias} (pointed at {name})")
    if doomed and len(doomed) == len(config.aliases):
        return [("delete", ALIASES, None)]
    return [("delete", (*ALIASES, alias), None) for alias in doomed]


def _remove_fallback_ops(config: _Config, name: str, key: str, notes: list[str]) -> list[Op]:
    entries = config.fallbacks(key)
    items = config.router.get(key) or []
    ops: list[Op] = []
    emptied: set[int] = set()
    for index, route, targets in reversed(entries):
        item_path: KeyPath = ("router_settings", key, index)
        whole = item_path if len(items[index]) == 1 else (*item_path, route)
        if route == name:
            ops.append(("delete", whole, None))
            notes.append(f"removed the {key} of {name} ({', '.join(targets) or 'none'})")
        elif name in targets:
            notes.append(f"removed {name} from the {key} of {route}")
            if set(targets) == {name}:
                ops.append(("delete", whole, None))
            else:
                positions = [i for i, t in enumerate(targets) if t == name]
                ops += [("delete", ("router_settings", key, index, route, i), None) for i in reversed(positions)]
                continue
        else:
            continue
        if len(items[index]) == 1:
            emptied.add(index)
    if items and len(emptied) == len(items):
        return [("delete", ("router_settings", key), None)]
    return ops


def _params_vars(entry: dict[str, Any]) -> list[str]:
    params = entry.get("litellm_params") or {}
    return [v for v in (env_ref(value) for value in params.values()) if v]


def _all_vars(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_all_vars(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_all_vars(v) for v in node)) if node else set()
    name = env_ref(node)
    return {name} if name else set()


# --------------------------------------------------------------------------- models


def describe(folder: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Describe routes, aliases and fallbacks; key variables say whether they are set, never the value."""
    from cc_gateway.core.envfile import load_env_file

    config = _load(folder)
    env = layered(load_env_file(config.path.parent / ENV), environ)
    fallbacks: dict[str, list[str]] = {}
    for _, route, targets in config.fallbacks():
        fallbacks.setdefault(route, []).extend(targets)
    routes = []
    for entry in config.entries:
        params = entry.get("litellm_params") or {}
        key_env = next((v for v in (env_ref(params.get(p)) for p in KEY_PARAMS) if v), None)
        name = str(entry["model_name"])
        routes.append(
            {
                "name": name,
                "model": str(params.get("model", "")),
                "provider": (entry.get("model_info") or {}).get("cc_gateway_provider"),
                "key_env": key_env,
                "key_set": None if key_env is None else not is_placeholder(env.get(key_env)),
                "key_inline": bool(params.get("api_key")) and key_env is None,
                "api_base": params.get("api_base"),
                "aliases": [a for a, r in config.aliases.items() if r == name],
                "fallbacks": fallbacks.get(name, []),
            }
        )
    return {"config": str(config.path), "routes": routes, "aliases": config.aliases, "fallbacks": fallbacks}


# --------------------------------------------------------------------------- applying


def apply_edit(edit: RouteEdit) -> list[Path]:
    """Write the planned files atomically; keep a one-time .bak of config.yaml. Return new backups."""
    made: list[Path] = []
    for change in edit.plan.pending:
        ensure_writable_dir(change.path.parent)
        current = _read_exact(change.path) if change.path.exists() else None
        if current != change.old:
            raise ConflictError(f"{change.path} changed while it was being edited", hint="run the command again")
        bak = change.path.with_name(change.path.name + ".bak")
        if change.old is not None and change.path.name != ENV and not bak.exists():
            made.append(backup(change.path))
    apply_plan(edit.plan)
    return made


# --------------------------------------------------------------------------- helpers


def _edit_config(config: _Config, ops: list[Op]) -> str:
    """Apply operations to the text (splices) and to the data, and check they agree."""
    doc = config.doc
    expected = copy.deepcopy(config.data)
    for kind, path, value in ops:
        if kind == "append" and path == ("model_list",):
            doc = doc.append(path, value, comment=_comment(value))
        elif kind == "delete":
            doc = doc.delete(path)
        else:
            doc = getattr(doc, kind)(path, value)
        _apply_plain(expected, kind, path, value)
    verify(config.text, doc.text, expected, config.path)
    return doc.text


def _comment(entry: dict[str, Any]) -> str:
    provider = entry["model_info"].get("cc_gateway_provider", "route")
    return f"{provider}: {entry['litellm_params']['model']} (added by cc-gateway add-model)"


def _apply_plain(data: Any, kind: str, path: KeyPath, value: Any) -> None:
    if kind == "delete":
        del _walk(data, path[:-1], dict)[path[-1]]
    elif kind == "set":
        _walk(data, path[:-1], dict)[path[-1]] = copy.deepcopy(value)
    elif kind == "append":
        _walk(data, path, list).append(copy.deepcopy(value))
    else:
        _walk(data, path, dict).update(copy.deepcopy(value))


def _walk(data: Any, path: KeyPath, leaf: type) -> Any:
    node = data
    for depth, key in enumerate(path):
        kind = leaf if depth == len(path) - 1 else dict
        if isinstance(node, dict) and node.get(key) is None:
            node[key] = kind()
        node = node[key]
    return node


def _edit_env(text: str, needs: list[_EnvNeed], values: Mapping[str, str], route: str) -> tuple[str, list[str]]:
    """Add the variables a route needs: placeholders for secrets, values for URLs; never touch a value.

    Returns the new text and the names it added or filled in.
    """
    appended: list[str] = []
    changed: list[str] = []
    for need in {n.name: n for n in needs}.values():
        if need.name in values:
            continue
        placeholder = re.compile(rf"^[ \t]*#[ \t]*{need.name}[ \t]*=[ \t]*$", re.M)
        if placeholder.search(text):
            if need.value is not None:
                text = placeholder.sub(lambda _m, n=need: f"{n.name}={_env_value(n.value)}", text, count=1)
                changed.append(need.name)
            continue
        line = f"# {need.name}=" if need.value is None else f"{need.name}={_env_value(need.value)}"
        appended += [f"# {need.help}", line]
        changed.append(need.name)
    if not appended:
        return text, changed
    newline = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith("\n"):
        text += newline
    header = f"# ---- route {route} (added by cc-gateway add-model)"
    return text + (newline if text else "") + newline.join([header, *appended]) + newline, changed


def _env_value(value: str | None) -> str:
    value = value or ""
    return f'"{value}"' if re.search(r"[\s#'\"]", value) else value


def _read_exact(path: Path) -> str:
    """Read text as it is on disk: CRLF line ends must survive an edit."""
    read_text(path)  # its errors are the clear ones (missing, not UTF-8, unreadable)
    return path.read_bytes().decode("utf-8")


def _plan(files: dict[Path, FileSpec]) -> Plan:
    """Plan in-place edits (files.plan_files reads with newline translation, which would turn CRLF into LF)."""
    plan = Plan()
    for path, spec in files.items():
        old = _read_exact(path) if path.exists() else None
        action = Action.CREATE if old is None else Action.IDENTICAL if old == spec.text else Action.UPDATE
        plan.changes.append(Change(path, action, spec.text, old, spec.mode))
    return plan


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
