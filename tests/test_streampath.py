"""Streams LiteLLM's /v1/responses id hook would pass through unchanged take LiteLLM's own fast path."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from litellm.proxy import utils as proxy_utils
from litellm.proxy.hooks.responses_id_security import ResponsesIDSecurity
from litellm.proxy.utils import ProxyLogging

from cc_gateway.serve.litellm import streampath


async def _chunks() -> Any:
    for chunk in (b"event: message_start\n\n", b"event: message_stop\n\n"):
        yield chunk


def _run(route: str, overrides: tuple, guardrail: bool = False) -> tuple[list, list, list]:
    recorded: list = []
    fired: list = []
    caps = proxy_utils._CallbackCapabilities(iterator_overrides=overrides, has_guardrail=guardrail)
    patch = pytest.MonkeyPatch()
    patch.setattr(ProxyLogging, "callback_capabilities", staticmethod(lambda: caps))
    patch.setattr(ProxyLogging, "_record_served_stream_output", staticmethod(lambda data, chunks: recorded.append(1)))
    patch.setattr(ProxyLogging, "fire_deferred_stream_logging", staticmethod(lambda data: fired.append(1)))
    patch.setattr(proxy_utils, "_post_call_pipelines", lambda data: ())
    try:
        user = SimpleNamespace(request_route=route)

        async def collect() -> list:
            stream = ProxyLogging.async_post_call_streaming_iterator_hook(
                object.__new__(ProxyLogging), response=_chunks(), user_api_key_dict=user, request_data={}
            )
            return [chunk async for chunk in stream]

        return asyncio.run(collect()), recorded, fired
    finally:
        patch.undo()


@pytest.fixture(scope="module", autouse=True)
def installed() -> Any:
    original = ProxyLogging.async_post_call_streaming_iterator_hook
    assert streampath.install()
    assert streampath.install()  # a second install keeps the first
    yield
    ProxyLogging.async_post_call_streaming_iterator_hook = original


def test_messages_stream_skips_the_served_text_assembly() -> None:
    """Only the /v1/responses id hook overrides the iterator: /v1/messages chunks go straight through."""
    chunks, recorded, fired = _run("/v1/messages", ((ResponsesIDSecurity(), "override"),))
    assert chunks == [b"event: message_start\n\n", b"event: message_stop\n\n"]
    assert recorded == [] and fired == [1]


@pytest.mark.parametrize(
    ("route", "guardrail", "extra"),
    [("/v1/responses", False, False), ("/v1/messages", True, False), ("/v1/messages", False, True)],
)
def test_other_streams_keep_litellms_guarded_path(route: str, guardrail: bool, extra: bool) -> None:
    """A /v1/responses stream, a guardrail or another iterator hook: LiteLLM's own path, unchanged."""

    class Other(ResponsesIDSecurity):
        pass

    overrides: tuple = ((ResponsesIDSecurity(), "override"),) + (((Other(), "override"),) if extra else ())
    chunks, recorded, fired = _run(route, overrides, guardrail)
    assert chunks == [b"event: message_start\n\n", b"event: message_stop\n\n"]
    assert recorded == [1] and fired == [1]
