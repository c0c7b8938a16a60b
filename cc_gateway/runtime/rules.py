"""Apply config.yaml's `routing_rules` in the pre-call hook, before LiteLLM's router picks a deployment.

The rule that fires rewrites the request's `model` to its target route, so LiteLLM's router, its
retries and fallbacks, and every per-deployment hook (credentials, thinking hygiene) work on the route
actually called. Every rule looked at is logged at debug level with its reason; the access log line
names the rule that fired (`rule=long_context`). Images to a text-only route get a 400 naming routes
that take images; Anthropic's web-search tool is removed where the route cannot run it, and the
client is told in one line (the middleware adds it to the response).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError
from cc_gateway.routing import RequestView, RouteTable, Rule, evaluate, load_rules, strip_web_search
from cc_gateway.routing.engine import Decision, Hook, HookLoader
from cc_gateway.runtime import context

log = logging.getLogger("cc_gateway.routing")


class _Loaded:
    """The rules and hooks of the running config (read once), and the route table of the live router."""

    def __init__(self) -> None:
        self.rules: tuple[Rule, ...] | None = None
        self.hooks: dict[str, Hook] = {}
        self._table: RouteTable | None = None
        self._table_key: tuple[int, int, int] | None = None

    def load(self) -> tuple[Rule, ...]:
        if self.rules is None:
            self.rules, self.hooks = read_rules(os.environ.get("CONFIG_FILE_PATH", ""))
        return self.rules

    def table(self, router: Any) -> RouteTable:
        aliases = router.model_group_alias or {}
        key = (id(router.model_list), len(router.model_list), len(aliases))
        if self._table is None or key != self._table_key:  # the router's routes changed
            self._table, self._table_key = RouteTable(router.model_list, aliases), key
        return self._table


_loaded = _Loaded()


def read_rules(config_path: str) -> tuple[tuple[Rule, ...], dict[str, Hook]]:
    """The rules of a config file and their loaded hooks (serve's preflight refused bad ones already)."""
    if not config_path:
        return (), {}
    path = Path(config_path)
    try:
        rules = load_rules(path)
        hooks = HookLoader(path.parent, path).load_all(rules)
    except ConfigError as exc:  # never fail requests over it: say so and route without rules
        log.error("routing rules ignored: %s", exc)
        return (), {}
    if rules:
        log.info("routing rules: %s", ", ".join(rule.label for rule in rules))
    return rules, hooks


def reload() -> None:
    """Forget the loaded rules (the next request reads config.yaml again)."""
    global _loaded
    _loaded = _Loaded()


def request_headers(data: Mapping[str, Any]) -> dict[str, str]:
    """The client's request headers, lower-case (LiteLLM keeps them in secret_fields, out of its logs)."""
    secret = data.get("secret_fields") or {}
    raw = secret.get("raw_headers") if isinstance(secret, Mapping) else getattr(secret, "raw_headers", None)
    return {str(k).lower(): str(v) for k, v in (raw or {}).items()}


def route(data: dict[str, Any], router: Any) -> Decision | None:
    """Evaluate the rules for one request and apply the decision to `data` (raises a 400 to refuse)."""
    if router is None or not isinstance(data.get("model"), str):
        return None
    rules = _loaded.load()
    view = RequestView(data, request_headers(data))
    if not rules and not _guarded(view):
        return None
    decision = evaluate(rules, view, _loaded.table(router), _loaded.hooks)
    if log.isEnabledFor(logging.DEBUG):
        for step in decision.steps:
            log.debug("rule %s (%s): %s: %s", step.rule.label, step.rule.where, step.outcome, step.reason)
    info = context.info()
    if info is not None:
        info.rule = decision.label
        info.notice = decision.notice
    if decision.refusal:
        from fastapi import HTTPException

        if info is not None:
            info.refused_here = True  # the gateway's own answer, not an upstream failure to reword
        raise HTTPException(status_code=400, detail=decision.refusal)
    if decision.changed and decision.model != data["model"]:
        log.debug("rule %s: %s -> %s", decision.label, data["model"], decision.model)
        data["model"] = decision.model
    if decision.strip_web_search:
        removed = strip_web_search(data)
        log.info("route %s cannot run web search: removed %s from the request", decision.route, ", ".join(removed))
    return decision


def _guarded(view: RequestView) -> bool:
    """Whether the guards (images, web search) have anything to look at, when there are no rules."""
    return view.web_search or view.images
