"""Promises cc-gateway keeps whichever LiteLLM runs behind it (1.106's behaviour, kept on 1.110's).

LiteLLM 1.110 changed three things a cc-gateway user would see (scripts/check-litellm 1.110.2 found them):
a chat-completions stream cut mid-way sends `data: [DONE]` after its error event (a client that trusts
[DONE] takes the cut answer as whole), `/v1/messages/count_tokens` forwards the upstream's failure instead
of counting locally, and LiteLLM's report of a 401 moved to the child logger `LiteLLM Proxy.stdout`. Each
test here drives cc-gateway's own code with a stand-in for LiteLLM (an ASGI app, a log record), so it
holds on any installed LiteLLM and fails without cc-gateway's fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import openai
import pytest

from cc_gateway.serve.logs import configure_logging
from cc_gateway.serve.middleware import DrainState, GatewayMiddleware

AUTH = {"Authorization": "Bearer sk-test-master-key"}


def _stand_in(status: int, body: bytes, content_type: bytes, chunks: list[bytes] | None = None):
    """An ASGI app answering every request like LiteLLM would: one status, a body (or streamed chunks)."""

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        for chunk in chunks or []:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return app


def _through_gateway(app) -> httpx.AsyncClient:
    middleware = GatewayMiddleware(app, drain=DrainState(), body_limit=1 << 20)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://gateway")


CUT_CHAT_STREAM = [
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"partial"},"finish_reason":null}]}\n\n',
    b'data: {"error": {"message": "upstream connection reset", "type": "api_error", "code": "502"}}\n\n',
]


def test_a_cut_chat_stream_stays_an_error_when_litellm_sends_done_after_it():
    """LiteLLM 1.110 ends a cut chat stream with `data: [DONE]` after the error event: cc-gateway drops it."""
    app = _stand_in(200, b"data: [DONE]\n\n", b"text/event-stream", CUT_CHAT_STREAM)

    async def scenario() -> tuple[str, str]:
        async with _through_gateway(app) as client:
            raw = await client.post("/v1/chat/completions", headers=AUTH,
                                    json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
            sdk = openai.AsyncOpenAI(base_url="http://gateway/v1", api_key="sk-test-master-key", http_client=client,
                                     max_retries=0)
            with pytest.raises(openai.APIError, match="upstream connection reset"):
                stream = await sdk.chat.completions.create(model="m", stream=True,
                                                           messages=[{"role": "user", "content": "hi"}])
                async for _chunk in stream:
                    pass
            return raw.text, raw.headers["content-type"]

    text, content_type = asyncio.run(scenario())
    assert content_type.startswith("text/event-stream")
    assert "upstream connection reset" in text and "partial" in text
    assert "[DONE]" not in text  # the client must not be told the answer was complete


def test_a_whole_chat_stream_keeps_its_done():
    """Only a [DONE] after an error event goes: a stream that finished normally is untouched."""
    whole = [CUT_CHAT_STREAM[0]]
    app = _stand_in(200, b"data: [DONE]\n\n", b"text/event-stream", whole)

    async def scenario() -> str:
        async with _through_gateway(app) as client:
            return (await client.post("/v1/chat/completions", headers=AUTH, json={"model": "m", "stream": True,
                                      "messages": [{"role": "user", "content": "hi"}]})).text

    text = asyncio.run(scenario())
    assert text == whole[0].decode() + "data: [DONE]\n\n"


def _count(status: int, body: dict, request: dict) -> httpx.Response:
    app = _stand_in(status, json.dumps(body).encode(), b"application/json")

    async def scenario() -> httpx.Response:
        async with _through_gateway(app) as client:
            return await client.post("/v1/messages/count_tokens", headers=AUTH, json=request)

    return asyncio.run(scenario())


def _messages(words: int) -> dict:
    return {"model": "claude-sonnet-5", "system": "You are terse.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "word " * words}]}],
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}]}


@pytest.mark.parametrize("status", [500, 404, 502])
def test_count_tokens_answers_a_local_estimate_when_the_upstream_cannot_count(status: int):
    """LiteLLM 1.110 forwards the upstream's failure to count (500 on demo, 404 on openai-backed)."""
    failure = {"error": {"message": "Anthropic count_tokens API failed: connection refused", "type": "api_error"}}
    short, long = _count(status, failure, _messages(10)), _count(status, failure, _messages(400))
    assert short.status_code == long.status_code == 200, short.text
    assert set(short.json()) == {"input_tokens"}
    assert 0 < short.json()["input_tokens"] < long.json()["input_tokens"]
    assert long.json()["input_tokens"] >= 400


def test_count_tokens_passes_the_upstreams_count_and_the_callers_mistakes():
    """A count the upstream made, a 401 (wrong key) and a 400 (bad request) reach the caller as they are."""
    assert _count(200, {"input_tokens": 7}, _messages(10)).json() == {"input_tokens": 7}
    refused = _count(401, {"error": {"message": "invalid gateway key", "type": "auth_error"}}, _messages(10))
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    bad = _count(500, {"error": {"message": "boom"}}, {"model": "claude-sonnet-5", "messages": []})
    assert bad.status_code == 500  # not a count request cc-gateway can estimate: the error stands


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """configure_logging rewires the root logger: put it back for the other tests."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    loggers = {name: (logging.getLogger(name).filters[:], logging.getLogger(name).level)
               for name in ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "LiteLLM Stdout Proxy", "uvicorn.error")}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, (filters, level) in loggers.items():
        logging.getLogger(name).filters[:] = filters
        logging.getLogger(name).setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False


@pytest.mark.usefixtures("logging_restored")
@pytest.mark.parametrize("logger", ["LiteLLM Proxy", "LiteLLM Proxy.stdout"])
def test_litellms_report_of_a_401_stays_out_of_the_log(logger: str, capsys: pytest.CaptureFixture[str]):
    """1.106 logs it on `LiteLLM Proxy`, 1.110 on its child `LiteLLM Proxy.stdout`: neither is printed."""
    configure_logging("info", {"LITELLM_MASTER_KEY": "sk-test-master-key"})
    report = "litellm.proxy.proxy_server.user_api_key_auth(): Exception occured - %s\nRequester IP Address:%s"
    logging.getLogger(logger).warning(report, "invalid gateway key: send the gateway key as ...", "127.0.0.1")
    logging.getLogger(logger).warning("an unrelated warning with sk-test-master-key in it")
    err = capsys.readouterr().err
    assert "user_api_key_auth" not in err
    assert "an unrelated warning with" in err and "sk-test-master-key" not in err  # others print, redacted
