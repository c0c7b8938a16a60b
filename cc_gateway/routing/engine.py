"""Evaluate routing rules in order; say why each rule fired, did not, or fell through.

A rule whose target cannot take the request (context window too small, images to a text-only
route, thinking to a route without it, web search to a route that cannot run it, a route that does
not exist) falls through to the next rule. After the rules, two guards apply to the route that will
be called: images to a route known to be text-only are refused (400 naming routes that take images),
and Anthropic's web-search tool is removed, with a one-line notice, where the route cannot run it.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError, located
from cc_gateway.routing.request import RequestView, is_web_search_tool
from cc_gateway.routing.rules import Rule
from cc_gateway.routing.table import RouteTable

FIRED, NO, FELL = "fired", "no", "fell through"
Hook = Callable[[RequestView], Any]


@dataclass(frozen=True)
class Step:
    """One rule looked at: its outcome and why."""

    rule: Rule
    outcome: str  # FIRED, NO or FELL
    reason: str


@dataclass(frozen=True)
class Decision:
    """Where a request goes and why."""

    model: str  # what to put in the request's `model` (the requested one when no rule fired)
    route: str | None  # the route that model resolves to
    rule: Rule | None = None
    steps: tuple[Step, ...] = ()
    refusal: str | None = None  # a 400 message: the request cannot be served as it is
    strip_web_search: bool = False
    notice: str | None = None  # one line for the client (the web-search tool was removed)
    reason: str = ""

    @property
    def label(self) -> str:
        """The rule's name for the access log (`-` when none fired)."""
        return self.rule.label if self.rule else "-"

    @property
    def changed(self) -> bool:
        """Whether a rule moved the request to another model/route."""
        return self.rule is not None


def evaluate(
    rules: tuple[Rule, ...],
    request: RequestView,
    table: RouteTable,
    hooks: Mapping[str, Hook] | None = None,
) -> Decision:
    """Pick the route for a request: the first rule that matches and whose target can take it."""
    request.route = request.route or table.resolve(request.model)
    steps: list[Step] = []
    fired: Rule | None = None
    model = request.model
    for rule in rules:
        target, why = _match(rule, request, hooks or {})
        if target is None:
            steps.append(Step(rule, NO, why))
            continue
        problem = _unfit(rule, target, request, table)
        if problem:
            steps.append(Step(rule, FELL, f"{why}, but {problem}"))
            continue
        steps.append(Step(rule, FIRED, why))
        fired, model = rule, target
        break
    route = table.resolve(model)
    reason = steps[-1].reason if fired else "no rule fired: the requested model's own route"
    decision = Decision(model=model, route=route, rule=fired, steps=tuple(steps), reason=reason)
    return _guards(decision, request, table)


def _match(rule: Rule, request: RequestView, hooks: Mapping[str, Hook]) -> tuple[str | None, str]:
    """(target, why) when the rule matches the request, else (None, why not)."""
    kind = rule.kind
    if kind == "long_context":
        limit = rule.above_tokens or 0
        above = request.tokens > limit
        return (
            rule.route if above else None
        ), f"~{request.tokens:,} tokens {'is' if above else 'is not'} above {limit:,}"
    if kind == "subagent":
        header = request.agent
        return (
            (rule.route, f"{header} header is set: a Claude Code subagent")
            if header
            else (None, "no agent-id header: the main conversation")
        )
    if kind == "background":
        return _background(rule, request)
    if kind == "thinking":
        return _thinking(rule, request)
    if kind == "image":
        return (rule.route, "the request carries an image") if request.images else (None, "no image in the request")
    if kind == "web_search":
        if request.web_search:
            return rule.route, "the request carries the web_search tool"
        return None, "no web_search tool in the request"
    if kind == "match":
        return _match_globs(rule, request)
    return _call_hook(rule, request, hooks)


def _background(rule: Rule, request: RequestView) -> tuple[str | None, str]:
    if not request.model_matches(rule.models):
        return None, f"model {request.model or '-'} is not a small-model id ({', '.join(rule.models)})"
    if request.has_tools:
        return None, f"model {request.model} but the request offers tools: a conversation, not a background call"
    return rule.route, f"model {request.model} with no tools: a Claude Code background call"


def _thinking(rule: Rule, request: RequestView) -> tuple[str | None, str]:
    thinking = request.thinking
    if not thinking.on:
        return None, "thinking is off"
    if rule.above_budget is None and not rule.effort:
        return rule.route, f"thinking is {thinking.describe()}"
    if rule.above_budget is not None and thinking.budget is not None and thinking.budget > rule.above_budget:
        return rule.route, f"thinking budget {thinking.budget:,} is above {rule.above_budget:,}"
    if rule.effort and thinking.effort in rule.effort:
        return rule.route, f"thinking effort {thinking.effort} is one of {', '.join(rule.effort)}"
    wanted = []
    if rule.above_budget is not None:
        wanted.append(f"a budget above {rule.above_budget:,}")
    if rule.effort:
        wanted.append(f"effort {'/'.join(rule.effort)}")
    return None, f"thinking is {thinking.describe()}, not {' or '.join(wanted)}"


def _match_globs(rule: Rule, request: RequestView) -> tuple[str | None, str]:
    checks = [(f"header {name}", request.headers.get(name), glob) for name, glob in rule.headers]
    if rule.model_glob is not None:
        checks.append(("model", request.model, rule.model_glob))
    if rule.route_glob is not None:
        checks.append(("route", request.route, rule.route_glob))
    for what, value, glob in checks:
        if value is None or not fnmatch.fnmatchcase(value, glob):
            return None, f"{what} {value if value is not None else '(absent)'} does not match {glob!r}"
    return rule.route, " and ".join(f"{what} {value} matches {glob!r}" for what, value, glob in checks)


def _call_hook(rule: Rule, request: RequestView, hooks: Mapping[str, Hook]) -> tuple[str | None, str]:
    hook = hooks.get(rule.hook or "")
    if hook is None:
        return None, f"hook {rule.hook} is not loaded"
    try:
        answer = hook(request)
    except Exception as exc:  # a user's hook must never fail the request
        return None, f"hook {rule.hook} raised {type(exc).__name__}: {exc}"
    if isinstance(answer, tuple) and len(answer) == 2:
        target, why = answer
    else:
        target, why = answer, ""
    if not target:
        return None, f"hook {rule.hook} chose no route" + (f" ({why})" if why else "")
    return str(target), f"hook {rule.hook} chose {target}" + (f" ({why})" if why else "")


def _unfit(rule: Rule, target: str, request: RequestView, table: RouteTable) -> str | None:
    """Why `target` cannot take the request (None: it can)."""
    route = table.resolve(target)
    if route is None:
        return f"route {target} does not exist in config.yaml"
    caps = table.caps(route)
    if caps.context_window and request.tokens > caps.context_window:
        return f"~{request.tokens:,} tokens do not fit route {route}'s context window of {caps.context_window:,}"
    if request.images and caps.images is False:
        return f"route {route} does not take images"
    if rule.kind == "thinking" and caps.thinking is False:
        return f"route {route} does not take thinking"
    if request.web_search and rule.kind == "web_search" and caps.web_search is False:
        return f"route {route} cannot run web search"
    return None


def _guards(decision: Decision, request: RequestView, table: RouteTable) -> Decision:
    """Refuse images to a text-only route; remove web search where the route cannot run it."""
    route = decision.route
    if route is None:
        return decision
    caps = table.caps(route)
    if request.images and caps.images is False:
        able = table.taking(lambda c: c.images)
        where = f"routes that take images: {', '.join(able)}" if able else "no route here is known to take images"
        message = (
            f"route {route} does not take images ({where}); add '- image: {_target(able)}' "
            "to routing_rules in config.yaml, or ask for such a route"
        )
        return _replace(decision, refusal=message)
    if request.web_search and caps.web_search is not True:
        able = table.taking(lambda c: c.web_search)
        suggestion = f"'- web_search: {_target(able)}'" if able else "a web_search rule to a route that can run it"
        notice = (
            f"[cc-gateway] web search is not available on route {route}: the web_search tool was removed, so "
            f"this answer does not come from a search; add {suggestion} to routing_rules in config.yaml"
        )
        return _replace(decision, strip_web_search=True, notice=notice)
    return decision


def _target(routes: list[str]) -> str:
    """A rule target to suggest: a route by name, or a model id a wildcard route serves."""
    named = [r for r in routes if "*" not in r]
    if named:
        return named[0]
    return f"<a model id matching {routes[0]}>" if routes else "ROUTE"


def _replace(decision: Decision, **changes: Any) -> Decision:
    from dataclasses import replace

    return replace(decision, **changes)


def strip_web_search(body: MutableMapping[str, Any]) -> list[str]:
    """Remove Anthropic's web-search tool(s) from a request body in place; return their names."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    removed = [str(t.get("name") or t.get("type")) for t in tools if is_web_search_tool(t)]
    if not removed:
        return []
    kept = [t for t in tools if not is_web_search_tool(t)]
    if kept:
        body["tools"] = kept
    else:
        body.pop("tools", None)
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and (not kept or choice.get("name") in removed or choice.get("type") == "any"):
        body.pop("tool_choice", None)
    return removed


# --------------------------------------------------------------------------- hooks


@dataclass
class HookLoader:
    """Load `hook: module.attr` rules the way LiteLLM loads custom_auth: module.py next to config.yaml first."""

    folder: Path
    config_path: Path | str = "config.yaml"
    loaded: dict[str, Hook] = field(default_factory=dict)

    def load_all(self, rules: tuple[Rule, ...]) -> dict[str, Hook]:
        """Load every hook the rules name (ConfigError naming the rule's line when one cannot be)."""
        for rule in rules:
            if rule.hook and rule.hook not in self.loaded:
                self.loaded[rule.hook] = self._load(rule)
        return self.loaded

    def _load(self, rule: Rule) -> Hook:
        module_name, _, attr = (rule.hook or "").rpartition(".")
        try:
            module = self._module(module_name)
        except Exception as exc:
            raise self._error(rule, f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
        hook = getattr(module, attr, None)
        if not callable(hook):
            raise self._error(rule, f"{module_name} has no function {attr}")
        return hook

    def _module(self, name: str) -> Any:
        local = self.folder / (name.replace(".", "/") + ".py")
        if local.is_file():
            spec = importlib.util.spec_from_file_location(f"cc_gateway_routing_hook_{name}", local)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {local}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)

    def _error(self, rule: Rule, problem: str) -> ConfigError:
        where = located(self.config_path, rule.line, f"routing_rules[{rule.index}].hook: {problem}")
        return ConfigError(where, hint=f"put {rule.hook.rpartition('.')[0]}.py next to config.yaml (or install it)")
