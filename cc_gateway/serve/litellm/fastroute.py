"""Skip FastAPI's linear scan of LiteLLM's ~650 routes for the few paths Claude Code calls all the time.

Starlette picks the first route (in registration order) that fully matches a request's method and
path; LiteLLM registers /v1/messages and /v1/chat/completions behind dozens of included routers, so
every request walks them all (12-16% of a request's CPU). For a fixed method and path (no Host
routes), that scan always ends at the same top-level route, so the index found by the first real
scan is remembered and later requests go straight to it, through the same steps the router itself
takes. The remembered index is dropped when the route table changes (FastAPI's routes version,
read at most once a second because reading it walks every included router), and nothing is
installed when FastAPI's internals are not the ones this was written against: requests then take
FastAPI's own path, unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("cc_gateway.serve")

HOT_PATHS = frozenset(
    {
        ("POST", "/v1/messages"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/chat/completions"),
        ("POST", "/v1/messages/count_tokens"),
        ("GET", "/v1/models"),
    }
)
VERSION_CHECK_SECONDS = 1.0


def install(app: Any) -> bool:
    """Put the route cache in front of `app.router`'s scan; return whether it was installed."""
    try:
        from fastapi import routing as fastapi_routing
        from fastapi.telemetry._api import _route_selected
        from starlette.routing import Match, Mount

        apply_form_limits = fastapi_routing._apply_router_form_limits
        update_scope = fastapi_routing._update_scope
    except (ImportError, AttributeError) as exc:
        log.debug("route cache not installed: %s", exc)
        return False
    router = app.router
    if getattr(router, "middleware_stack", None) != router.app or not hasattr(router, "_get_routes_version"):
        log.debug("route cache not installed: the router is not a plain FastAPI APIRouter")
        return False
    scan = router.middleware_stack
    cache: dict[tuple[str, str], tuple[int, int]] = {}  # (method, path) -> (routes version, index)
    checked = [float("-inf"), -1]  # when the routes version was last read, and its value

    def first_full_match(scope: dict) -> int | None:
        probe = {**scope, "fastapi": dict(scope.get("fastapi", {}))}
        for index, route in enumerate(router.routes):
            if route.matches(probe)[0] is Match.FULL:
                return index
        return None

    async def dispatch(scope: dict, receive: Any, send: Any) -> None:
        key = (scope.get("method", ""), scope.get("path", ""))
        if scope["type"] != "http" or key not in HOT_PATHS or scope.get("root_path"):
            await scan(scope, receive, send)
            return
        now = time.monotonic()
        if now - checked[0] > VERSION_CHECK_SECONDS:  # the version walks every router: not per request
            checked[:] = [now, router._get_routes_version()]
        version = checked[1]
        known = cache.get(key)
        if known is None or known[0] != version:
            index = first_full_match(scope)
            if index is not None:
                cache[key] = (version, index)
            await scan(scope, receive, send)
            return
        route = router.routes[known[1]]
        match, child_scope = route.matches(scope)
        if match is not Match.FULL:
            await scan(scope, receive, send)
            return
        # What APIRouter.app does for the route its scan selects.
        apply_form_limits(scope, router.form_limits)
        scope.setdefault("router", router)
        update_scope(scope, child_scope)
        _route_selected(scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, Mount))
        await route.handle(scope, receive, send)

    router.middleware_stack = dispatch
    return True
