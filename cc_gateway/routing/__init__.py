"""Request-aware routing: rules in config.yaml (`routing_rules:`) that pick the route for each request.

Pure: this package imports `core` only and never LiteLLM, so `cc-gateway route explain`, `doctor` and
the pre-call hook all run the same code.

- `rules`   parse and validate the rules (errors name config.yaml:line);
- `request` what a request is: its token estimate, images, web search, thinking, subagent, background;
- `table`   the routes and what each can take (context window, images, web search, thinking);
- `engine`  evaluate the rules in order, with a reason for every rule looked at.
"""

from __future__ import annotations

from cc_gateway.routing.engine import Decision, evaluate, strip_web_search
from cc_gateway.routing.request import RequestView, estimate_tokens
from cc_gateway.routing.rules import Rule, load_rules, parse_rules
from cc_gateway.routing.table import RouteCaps, RouteTable

__all__ = [
    "Decision",
    "RequestView",
    "RouteCaps",
    "RouteTable",
    "Rule",
    "estimate_tokens",
    "evaluate",
    "load_rules",
    "parse_rules",
    "strip_web_search",
]
