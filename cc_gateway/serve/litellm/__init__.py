"""Everything cc-gateway knows about LiteLLM's and FastAPI's internals, in one place.

`PATCHES` are the changes cc-gateway makes to LiteLLM/FastAPI at start-up: each install function
returns whether it engaged, `install_patches()` logs that (visible with `serve --log-level debug`), and
tests/test_litellm_patches.py fails when one does not engage on the pinned LiteLLM, so an upgrade
that breaks one fails a test instead of silently costing speed or a promise.

`INTERNALS` lists every other private name cc-gateway depends on, with the module that uses it. The
runtime modules (what LiteLLM loads per request) must stay in runtime/, so they are listed, not moved.
Checked against LiteLLM 1.106.2 and FastAPI as locked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("cc_gateway.serve")

#: The LiteLLM release every entry below was checked against.
CHECKED_AGAINST = "1.106.2"

#: LiteLLM's loggers, which serve routes through its own redacting handler (serve/logs.py).
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "LiteLLM Stdout Proxy")


@dataclass(frozen=True)
class Internal:
    """A private LiteLLM/FastAPI name cc-gateway relies on."""

    name: str
    used_by: str
    why: str


INTERNALS: tuple[Internal, ...] = (
    Internal("litellm.proxy.proxy_server.app", "serve/litellm/boot.py",
             "LiteLLM's proxy app, booted in-process (what `litellm --config` does)"),
    Internal("litellm.proxy.proxy_server.llm_router", "runtime/hooks.py current_router()",
             "the live router: deployments for a model, fallbacks (hooks, multi-provider hygiene)"),
    Internal("litellm.llms.custom_httpx.http_handler.AsyncHTTPHandler", "runtime/multi_provider/pool.py",
             "a per-request HTTP client that rotates Claude pool credentials on 429/401"),
    Internal("litellm.proxy._types.UserAPIKeyAuth, ProxyException", "runtime/auth.py",
             "what custom_auth returns and raises (public hook, private types)"),
    Internal("'LiteLLM Proxy' (1.110: its child 'LiteLLM Proxy.stdout') log text "
             "'litellm.proxy.proxy_server.user_api_key_auth()'", "serve/logs.py",
             "LiteLLM's own report of a 401 cc-gateway already logs (filtered on the handler, so any child)"),
    Internal("count_tokens answers (1.106 counts locally when the provider cannot; 1.110 forwards the failure)",
             "serve/middleware.py (with serve/litellm/tokens.py)", "a local estimate in place of the upstream's failure"),
    Internal("the end of a cut chat stream (1.110 sends data: [DONE] after the error event)",
             "serve/streams.py StreamGuard", "the [DONE] is dropped: a cut stream stays an error"),
    Internal("fastapi.routing._apply_router_form_limits, _update_scope; APIRouter._get_routes_version",
             "serve/litellm/fastroute.py", "the route cache for Claude Code's hot paths"),
    Internal("litellm.proxy.utils.ProxyLogging.async_post_call_streaming_iterator_hook, callback_capabilities,"
             " _post_call_pipelines; responses_id_security._is_responses_api_create_route",
             "serve/litellm/streampath.py", "the stream fast path"),
    Internal("litellm.proxy.proxy_server.ProxyConfig._get_config_from_file, _process_includes, "
             "user_config_file_path", "serve/litellm/pinned_config.py",
             "workers load the config text serve validated (reload)"),
)


@dataclass(frozen=True)
class Patch:
    """A change made to LiteLLM/FastAPI at start-up; `install` returns whether it engaged."""

    name: str
    what: str
    install: Callable[[Any], bool]


def _fastroute(app: Any) -> bool:
    from cc_gateway.serve.litellm import fastroute

    return fastroute.install(app)


def _streampath(app: Any) -> bool:
    from cc_gateway.serve.litellm import streampath

    return streampath.install()


def _pinned_config(app: Any) -> bool:
    from cc_gateway.serve.litellm import pinned_config

    return pinned_config.install(app)


def _no_model_info_refresh(app: Any) -> bool:
    """LiteLLM asks each OpenAI-compatible upstream for GET /v1/models at start (then hourly), per route and
    per worker, to learn token limits; cc-gateway's routes carry max_output_tokens, so the calls only cost."""
    from litellm.proxy import proxy_server

    event = getattr(proxy_server, "ProxyStartupEvent", None)
    if event is None or not hasattr(event, "refresh_model_info"):
        return False

    async def refresh_model_info() -> None:
        return None

    event.refresh_model_info = staticmethod(refresh_model_info)
    return True


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BANNER = re.compile(r"^\x1b\[32m(?:LiteLLM: Proxy initialized with Config, Set models:| {4}\S.*)\x1b\[0m$")


def _quiet_banner(app: Any) -> bool:
    """LiteLLM prints its route list in green once per worker (raw colour codes in a log file); the ready
    panel lists the routes once. Its other prints lose their colour codes when stdout is not a terminal."""
    import builtins
    import sys

    from litellm.proxy import proxy_server

    def quiet_print(*args: Any, **kwargs: Any) -> None:
        text = " ".join(str(a) for a in args)
        if _BANNER.match(text):
            return
        stream = kwargs.get("file") or sys.stdout
        if not (hasattr(stream, "isatty") and stream.isatty()):
            args = tuple(_ANSI.sub("", str(a)) for a in args)
        builtins.print(*args, **kwargs)

    proxy_server.print = quiet_print  # the module's prints find this before the builtin
    return True


PATCHES: tuple[Patch, ...] = (
    Patch("fastroute", "route cache for /v1/messages, /v1/chat/completions, count_tokens, /v1/models", _fastroute),
    Patch("streampath", "LiteLLM's own stream fast path for streams its /v1/responses id hook leaves alone",
          _streampath),
    Patch("pinned_config", "workers load the config.yaml text serve validated (reload), not the file as it is then",
          _pinned_config),
    Patch("no_model_info_refresh", "no GET /v1/models to every upstream at start and hourly (routes carry limits)",
          _no_model_info_refresh),
    Patch("quiet_banner", "LiteLLM's per-worker route list (with colour codes) left out of the log", _quiet_banner),
)


def install_patches(app: Any) -> dict[str, bool]:
    """Install every patch on LiteLLM's app; log and return which engaged."""
    engaged: dict[str, bool] = {}
    for patch in PATCHES:
        try:
            engaged[patch.name] = bool(patch.install(app))
        except Exception as exc:  # a patch must never stop the gateway: it only costs speed
            log.debug("patch %s raised %s", patch.name, type(exc).__name__)
            engaged[patch.name] = False
        state = "engaged" if engaged[patch.name] else f"NOT engaged (LiteLLM is not {CHECKED_AGAINST}'s shape)"
        log.debug("patch %s: %s — %s", patch.name, state, patch.what)
    return engaged
