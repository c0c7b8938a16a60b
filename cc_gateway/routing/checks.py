"""What `doctor` and `serve` say about a config's rules: each target exists and can take what it is sent."""

from __future__ import annotations

from dataclasses import dataclass

from cc_gateway.routing.rules import Rule
from cc_gateway.routing.table import RouteTable

FAIL, WARN = "fail", "warn"


@dataclass(frozen=True)
class Problem:
    """One finding about one rule."""

    status: str  # FAIL or WARN
    rule: Rule
    message: str
    hint: str


def rule_problems(rules: tuple[Rule, ...], table: RouteTable) -> list[Problem]:
    """Every rule's target: it exists, is a concrete model name, and can take what the rule sends it."""
    problems: list[Problem] = []
    for rule in rules:
        if rule.route is None:  # a hook names its target per request
            continue
        problems += _target_problems(rule, rule.route, table)
    return sorted(problems, key=lambda p: p.status != FAIL)


def _target_problems(rule: Rule, target: str, table: RouteTable) -> list[Problem]:
    route = table.resolve(target)
    names = ", ".join(table.names) or "none"
    if route is None:
        return [Problem(FAIL, rule, f"rule {rule.label} sends to {target}, which is no route or alias",
                        f"use one of: {names} (cc-gateway models)")]  # fmt: skip
    if "*" in target:
        return [Problem(FAIL, rule, f"rule {rule.label} sends to the wildcard {target}, which is not a model id",
                        f"name a model the route serves, e.g. {target.replace('*', 'sonnet-4-5')}")]  # fmt: skip
    caps = table.caps(route)
    found: list[Problem] = []
    ability = {"image": ("images", caps.images, "model_info.supports_vision: true"),
               "web_search": ("web search", caps.web_search, "model_info.supports_web_search: true"),
               "thinking": ("thinking", caps.thinking, "a provider that takes thinking")}  # fmt: skip
    if rule.kind in ability:
        what, able, fix = ability[rule.kind]
        if able is False:
            found.append(Problem(FAIL, rule, f"rule {rule.label} sends {what} to route {route}, which does not take them",
                                 f"point it at a route that does ({_able(table, rule.kind)})"))  # fmt: skip
        elif able is None:
            found.append(Problem(WARN, rule, f"cannot tell whether route {route} takes {what}",
                                 f"if it does, set {fix} on it in config.yaml"))  # fmt: skip
    if rule.kind == "long_context":
        found += _window_problems(rule, route, caps.context_window)
    return found


def _window_problems(rule: Rule, route: str, window: int | None) -> list[Problem]:
    if window is None:
        return [Problem(WARN, rule, f"route {route}'s context window is not known: long requests may not fit",
                        "set model_info.max_input_tokens on it in config.yaml")]  # fmt: skip
    if window <= (rule.above_tokens or 0):
        return [Problem(FAIL, rule, f"route {route}'s context window ({window:,}) is not above the rule's "
                        f"{rule.above_tokens:,} tokens: the rule can never send anything there",
                        "lower above_tokens or pick a route with a longer window")]  # fmt: skip
    return []


def _able(table: RouteTable, kind: str) -> str:
    field = {"image": "images", "web_search": "web_search", "thinking": "thinking"}[kind]
    able = table.taking(lambda caps: getattr(caps, field))
    return ", ".join(able) if able else "none known here"
