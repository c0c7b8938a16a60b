"""Let streams LiteLLM's built-in `/v1/responses` id hook does not touch take LiteLLM's own fast path.

LiteLLM 1.106 streams a response straight through `ProxyLogging.async_post_call_streaming_iterator_hook`
when no callback overrides the iterator hook and no post-call pipeline applies. Its built-in
`ResponsesIDSecurity` hook (always registered) does override it, though it only rewrites chunks on
the `/v1/responses` create routes: so every stream (`/v1/messages` included) took the guarded path,
which wraps the stream once more and, at its end, re-assembles every served chunk into the text a
post-call guardrail may have rewritten (about 5% of a streamed request's CPU). With no guardrail,
no post-call pipeline and not a `/v1/responses` route, that hook passes every chunk through
unchanged and the re-assembled text equals what LiteLLM's logging already assembles, so such a
stream goes through LiteLLM's own fast path instead. Anything else (a guardrail, a pipeline,
another iterator hook, `/v1/responses`) takes LiteLLM's path, unchanged; nothing is installed when
LiteLLM's internals are not the ones this was written against.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

log = logging.getLogger("cc_gateway.serve")


def _litellm_parts() -> dict[str, Any] | None:
    """The LiteLLM internals this relies on, or None when they are not the expected ones."""
    try:
        from litellm.proxy import utils as proxy_utils
        from litellm.proxy.hooks.responses_id_security import ResponsesIDSecurity, _is_responses_api_create_route

        proxy_logging = proxy_utils.ProxyLogging
        parts = {
            "class": proxy_logging,
            "original": proxy_logging.async_post_call_streaming_iterator_hook,
            "pipelines": proxy_utils._post_call_pipelines,
            "responses_route": _is_responses_api_create_route,
            "id_hook": ResponsesIDSecurity,
        }
        for name in (
            "callback_capabilities",
            "_discard_deferred_stream_logging_for_failure",
            "fire_deferred_stream_logging",
        ):
            getattr(proxy_logging, name)  # looked up on each stream, so a later replacement is followed
        fields = set(proxy_utils._CallbackCapabilities.__dataclass_fields__)
    except (ImportError, AttributeError) as exc:
        log.debug("stream fast path not installed: %s", exc)
        return None
    if not {"iterator_overrides", "has_guardrail"} <= fields:
        log.debug("stream fast path not installed: LiteLLM's callback capabilities changed")
        return None
    return parts


def _passes_through(parts: dict[str, Any], user_api_key_dict: Any, request_data: dict) -> bool:
    """Whether LiteLLM's guarded path would hand this stream's chunks through unchanged."""
    caps = parts["class"].callback_capabilities()
    if caps.has_guardrail or not caps.iterator_overrides:
        return False  # a guardrail may rewrite the stream; no overrides: LiteLLM's fast path already
    if not all(type(callback) is parts["id_hook"] for callback, _ in caps.iterator_overrides):
        return False
    if parts["responses_route"](getattr(user_api_key_dict, "request_route", None)):
        return False
    return not parts["pipelines"](request_data)


async def _fast(parts: dict[str, Any], response: Any, request_data: dict) -> AsyncGenerator[Any, None]:
    """LiteLLM's own fast path, as written in async_post_call_streaming_iterator_hook."""
    proxy_logging = parts["class"]
    try:
        async for chunk in response:
            yield chunk
    except (GeneratorExit, asyncio.CancelledError):
        raise
    except Exception as e:
        if not proxy_logging._discard_deferred_stream_logging_for_failure(request_data, e):
            proxy_logging.fire_deferred_stream_logging(request_data)
        raise
    proxy_logging.fire_deferred_stream_logging(request_data)


def install() -> bool:
    """Wrap LiteLLM's streaming iterator hook; return whether it was installed."""
    parts = _litellm_parts()
    if parts is None:
        return False
    original = parts["original"]
    if getattr(original, "_cc_gateway", False):
        return True

    def hook(self: Any, response: Any, user_api_key_dict: Any, request_data: dict) -> Any:
        try:
            skip = _passes_through(parts, user_api_key_dict, request_data)
        except Exception:  # never fail a stream over this check
            skip = False
        if skip:
            return _fast(parts, response, request_data)
        return original(self, response, user_api_key_dict, request_data)

    hook._cc_gateway = True  # type: ignore[attr-defined]
    hook.__doc__ = original.__doc__
    parts["class"].async_post_call_streaming_iterator_hook = hook
    return True
