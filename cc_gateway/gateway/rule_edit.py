"""`add-model --for KIND`: point a routing rule of config.yaml at a new route.

The rule of that kind already in `routing_rules` is re-pointed in place (its other fields kept);
without one, a rule is appended (the section is created when missing). Returned as the same
(kind, key path, value) operations `route_edit` applies to text and data alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_gateway.core.errors import UsageError

SECTION = "routing_rules"  # the section of config.yaml (cc_gateway/routing/rules.py reads it)

#: `--for` values and the rule kind each one sets.
FOR_KINDS = {"background": "background", "subagent": "subagent", "long-context": "long_context", "image": "image"}
DEFAULT_ABOVE_TOKENS = 60_000

Op = tuple[str, tuple[Any, ...], Any]


def rule_ops(
    config: Mapping[str, Any], route: str, purposes: tuple[str, ...], above_tokens: int | None
) -> tuple[list[Op], list[str]]:
    """Operations (and notes) that send each purpose's requests (`--for`) to `route`."""
    if above_tokens is not None and "long-context" not in purposes:
        raise UsageError("--above-tokens goes with --for long-context")
    if above_tokens is not None and above_tokens < 1:
        raise UsageError("--above-tokens must be a positive number of tokens")
    rules = config.get(SECTION)
    if rules is not None and not isinstance(rules, list):
        raise UsageError(f"config.yaml's {SECTION} is not a list", hint="fix it by hand, then run add-model again")
    ops: list[Op] = []
    notes: list[str] = []
    new: list[dict[str, Any]] = []
    for purpose in dict.fromkeys(purposes):
        kind = FOR_KINDS.get(purpose)
        if kind is None:
            raise UsageError(f"--for {purpose!r} is not a rule", hint=f"use one of: {', '.join(FOR_KINDS)}")
        index = next((i for i, item in enumerate(rules or []) if isinstance(item, Mapping) and kind in item), None)
        if index is not None:
            more_ops, more_notes = _repoint(index, rules[index], kind, route, above_tokens)
            ops += more_ops
            notes += more_notes
            continue
        value: Any = route
        if kind == "long_context":
            value = {"above_tokens": above_tokens or DEFAULT_ABOVE_TOKENS, "route": route}
        new.append({kind: value})
        extra = f" above {value['above_tokens']:,} tokens" if kind == "long_context" else ""
        notes.append(f"{SECTION}: added '{kind}' -> {route}{extra}")
    ops += [("append", (SECTION,), item) for item in new]
    return ops, notes


def _repoint(
    index: int, item: Mapping[str, Any], kind: str, route: str, above_tokens: int | None
) -> tuple[list[Op], list[str]]:
    current = item[kind]
    if kind == "long_context" or isinstance(current, Mapping):
        fields = dict(current) if isinstance(current, Mapping) else {}
        was = fields.get("route")
        fields["route"] = route
        if kind == "long_context":
            fields["above_tokens"] = above_tokens or fields.get("above_tokens") or DEFAULT_ABOVE_TOKENS
        value: Any = fields
    else:
        was, value = current, route
    new_item = {**item, kind: value}
    if new_item == dict(item):
        return [], [f"{SECTION}: '{kind}' already sends to {route}"]
    return [("set", (SECTION, index), new_item)], [f"{SECTION}: '{kind}' now sends to {route} (was {was})"]


def purpose_model_info(purposes: tuple[str, ...]) -> dict[str, Any]:
    """model_info a route gets for its purposes: `--for image` says the model takes images."""
    return {"supports_vision": True} if "image" in purposes else {}


def remove_rule_ops(config: Mapping[str, Any], route: str) -> tuple[list[Op], list[str]]:
    """Operations (and notes) that drop the rules sending to a route being removed (last first)."""
    rules = config.get(SECTION)
    if not isinstance(rules, list):
        return [], []
    doomed = [i for i, item in enumerate(rules) if isinstance(item, Mapping) and _target(item) == route]
    ops: list[Op] = [("delete", (SECTION, i), None) for i in reversed(doomed)]
    notes = [
        f"{SECTION}: removed '{next(iter(k for k in rules[i] if k != 'name'))}' (it sent to {route})" for i in doomed
    ]
    return ops, notes


def _target(item: Mapping[str, Any]) -> Any:
    value = next((v for k, v in item.items() if k != "name"), None)
    return value.get("route", value.get("to")) if isinstance(value, Mapping) else value
