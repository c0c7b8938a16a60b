"""The demo, anthropic and openai-backed presets end to end through `cc-gateway serve`, with the official SDKs.

Each preset's gateway starts once (module-scoped, parametrized); anthropic and openai-backed point
at the session's fake upstream with `init --api-base/--key`.
"""

from __future__ import annotations

import json
import re
import signal

import anthropic
import httpx
import openai
import pytest
from conftest import Gateway, init_gateway, start_gateway
from fakeupstream import FakeUpstream, Received, Reply

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-provider-" + "Hv5Rm8Ty" * 4
MODEL = "sonnet"  # an alias every preset has, for Claude Code's main model
CAP = 8192  # the openai-backed routes' max_output_tokens in this module
USER = [{"role": "user", "content": "What is in marker.txt?"}]
BASH_INPUT = {"command": "cat marker.txt", "description": "Show the marker"}
ANTHROPIC_TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    }
]
CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "description": "Run a shell command",
            "parameters": ANTHROPIC_TOOLS[0]["input_schema"],
        },
    }
]
THINKING = {"type": "enabled", "budget_tokens": 2048}
UPSTREAM_API = {"anthropic": "messages", "openai-backed": "chat"}


def init_flags(preset: str, up: FakeUpstream) -> list[str]:
    """Flags pointing a preset at the fake upstream."""
    if preset == "anthropic":
        return ["--api-base", f"anthropic={up.url}", "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}"]
    if preset == "openai-backed":
        return ["--api-base", f"openai={up.url}/v1", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}"]
    return []


@pytest.fixture(scope="module", params=["demo", "anthropic", "openai-backed"])
def gw(request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    """A running gateway for one preset."""
    preset = request.param
    folder = init_gateway(tmp_path_factory.mktemp(preset), preset, *init_flags(preset, upstream))
    config = folder / "config.yaml"  # caps lower than Claude Code's 32000, as for an older model
    if preset == "openai-backed":
        config.write_text(config.read_text().replace("max_output_tokens: 32000", f"max_output_tokens: {CAP}"))
    if preset == "anthropic":
        info = "    model_info:\n"
        config.write_text(config.read_text().replace(info, f"{info}      max_output_tokens: {CAP}\n"))
    gateway = start_gateway(folder, "--log-level", "debug")  # the most a log can say: still no key
    gateway.preset = preset  # type: ignore[attr-defined]
    yield gateway
    assert gateway.stop(signal.SIGINT) == 0  # Ctrl-C: a clean stop


@pytest.fixture
def up(gw: Gateway, upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream, reset for this test."""
    upstream.reset()
    return upstream


@pytest.fixture
def ant(gw: Gateway) -> anthropic.Anthropic:
    """Anthropic SDK client on the gateway (the key as a bearer token, like Claude Code)."""
    return anthropic.Anthropic(base_url=gw.url, auth_token=gw.key, api_key=None, max_retries=0, timeout=60)


@pytest.fixture
def oai(gw: Gateway) -> openai.OpenAI:
    """OpenAI SDK client on the gateway."""
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.key, max_retries=0, timeout=60)


def preset(gw: Gateway) -> str:
    """The preset a gateway runs."""
    return gw.preset  # type: ignore[attr-defined]


def needs_upstream(gw: Gateway) -> None:
    """Skip for demo: its routes are mock replies, there is no upstream to script."""
    if preset(gw) == "demo":
        pytest.skip("demo answers with LiteLLM's mock_response; no upstream")


def expected_text(gw: Gateway, up: FakeUpstream) -> str:
    """The reply text the preset gives for an unscripted request."""
    if preset(gw) == "demo":
        return "Hello from the cc-gateway demo."
    return "fake reply from "


def generations(up: FakeUpstream) -> list[Received]:
    """The generation requests the upstream received."""
    return [r for r in up.requests if r.api in ("chat", "responses", "messages")]


def assert_upstream_api(gw: Gateway, up: FakeUpstream) -> None:
    """Every generation went to the preset's upstream API (openai-backed: chat completions, never Responses)."""
    if preset(gw) == "demo":
        assert up.requests == []
        return
    sent = generations(up)
    assert sent and {r.api for r in sent} == {UPSTREAM_API[preset(gw)]}
    assert all(r.path.endswith("/chat/completions" if r.api == "chat" else "/v1/messages") for r in sent)


# --------------------------------------------------------------------------- /v1/messages


def test_messages(gw: Gateway, up: FakeUpstream, ant: anthropic.Anthropic) -> None:
    reply = ant.messages.create(model=MODEL, max_tokens=1024, messages=USER)
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content[0].text.startswith(expected_text(gw, up))
    assert reply.stop_reason == "end_turn"
    assert_upstream_api(gw, up)


def test_messages_streamed(gw: Gateway, up: FakeUpstream, ant: anthropic.Anthropic) -> None:
    if preset(gw) != "demo":
        up.script(Reply(text="streamed in several pieces", chunks=5))
    with ant.messages.stream(model=MODEL, max_tokens=1024, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text
    assert text.startswith("Hello from the cc-gateway demo." if preset(gw) == "demo" else "streamed in several pieces")
    assert_upstream_api(gw, up)


@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_use_then_tool_result(
    gw: Gateway, up: FakeUpstream, ant: anthropic.Anthropic, stream: bool
) -> None:
    needs_upstream(gw)
    up.script(Reply.tool_then_text("Bash", BASH_INPUT, "the marker says: {result}"), times=None)

    def ask(messages: list) -> anthropic.types.Message:
        if not stream:
            return ant.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=ANTHROPIC_TOOLS)
        with ant.messages.stream(model=MODEL, max_tokens=1024, messages=messages, tools=ANTHROPIC_TOOLS) as s:
            return s.get_final_message()

    first = ask(USER)
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "Bash" and call.input == BASH_INPUT
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "hello-42"}
    history = [*USER, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    second = ask(history)
    assert second.stop_reason == "end_turn"
    assert second.content[-1].text == "the marker says: hello-42"
    assert_upstream_api(gw, up)
    assert generations(up)[-1].tool_result() == "hello-42"


@pytest.mark.parametrize("stream", [False, True])
def test_messages_with_thinking(gw: Gateway, up: FakeUpstream, ant: anthropic.Anthropic, stream: bool) -> None:
    if preset(gw) != "demo":
        up.script(Reply(text="thought it through", thinking="let me think", chunks=3))
    # haiku 4.5 takes `enabled` thinking as sent (LiteLLM turns it into `adaptive` for newer ids)
    kwargs = {"model": "haiku", "max_tokens": 4096, "messages": USER, "thinking": THINKING}
    if stream:
        with ant.messages.stream(**kwargs) as s:
            reply = s.get_final_message()
    else:
        reply = ant.messages.create(**kwargs)
    texts = [block.text for block in reply.content if block.type == "text"]
    assert texts and texts[-1].startswith("Hello from" if preset(gw) == "demo" else "thought it through")
    assert_upstream_api(gw, up)
    if preset(gw) == "anthropic":
        assert generations(up)[-1].get("thinking") == THINKING
        thinking = [block for block in reply.content if block.type == "thinking"]
        assert thinking and thinking[0].thinking == "let me think"


def test_count_tokens(gw: Gateway, up: FakeUpstream, ant: anthropic.Anthropic) -> None:
    counted = ant.messages.count_tokens(model=MODEL, messages=USER, tools=ANTHROPIC_TOOLS)
    assert counted.input_tokens > 0


def test_models_lists_the_routes(gw: Gateway, up: FakeUpstream) -> None:
    from cc_gateway.gateway.folder import load_gateway

    config = load_gateway(gw.folder)
    response = httpx.get(gw.url + "/v1/models", headers=gw.headers(), timeout=30)
    assert response.status_code == 200
    ids = {m["id"] for m in response.json()["data"]}
    exact = {r.name for r in config.routes if "*" not in r.name}
    assert exact and exact <= ids


# --------------------------------------------------------------------------- /v1/chat/completions


def test_chat(gw: Gateway, up: FakeUpstream, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=1024)
    assert completion.choices[0].message.content.startswith(expected_text(gw, up))
    assert completion.choices[0].finish_reason == "stop"
    assert_upstream_api(gw, up)


def test_chat_streamed(gw: Gateway, up: FakeUpstream, oai: openai.OpenAI) -> None:
    if preset(gw) != "demo":
        up.script(Reply(text="streamed in several pieces", chunks=5))
    chunks = list(oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=1024, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from the cc-gateway demo." if preset(gw) == "demo" else "streamed in several pieces")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert_upstream_api(gw, up)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_call_then_tool_result(gw: Gateway, up: FakeUpstream, oai: openai.OpenAI, stream: bool) -> None:
    needs_upstream(gw)
    up.script(Reply.tool_then_text("Bash", BASH_INPUT, "the marker says: {result}"), times=None)

    def ask(messages: list) -> tuple[str | None, list[dict], str]:
        if not stream:
            choice = oai.chat.completions.create(model=MODEL, messages=messages, tools=CHAT_TOOLS).choices[0]
            calls = [c.model_dump() for c in choice.message.tool_calls or []]
            return choice.message.content, calls, choice.finish_reason
        text, calls, finish = "", {}, ""
        for chunk in oai.chat.completions.create(model=MODEL, messages=messages, tools=CHAT_TOOLS, stream=True):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            text += delta.content or ""
            for part in delta.tool_calls or []:
                slot = calls.setdefault(part.index, {"id": "", "function": {"name": "", "arguments": ""}})
                slot["id"] = part.id or slot["id"]
                slot["function"]["name"] += (part.function and part.function.name) or ""
                slot["function"]["arguments"] += (part.function and part.function.arguments) or ""
            finish = chunk.choices[0].finish_reason or finish
        return text, list(calls.values()), finish

    _, calls, finish = ask(USER)
    assert finish == "tool_calls" and len(calls) == 1
    assert calls[0]["function"]["name"] == "Bash"
    assert json.loads(calls[0]["function"]["arguments"]) == BASH_INPUT
    call = {"id": calls[0]["id"], "type": "function", "function": calls[0]["function"]}
    history = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "hello-42"},
    ]
    text, calls, finish = ask(history)
    assert (text, calls, finish) == ("the marker says: hello-42", [], "stop")
    assert_upstream_api(gw, up)
    assert generations(up)[-1].tool_result() == "hello-42"


def test_chat_with_thinking(gw: Gateway, up: FakeUpstream, oai: openai.OpenAI) -> None:
    if preset(gw) != "demo":
        up.script(Reply(text="thought it through", thinking="let me think"))
    completion = oai.chat.completions.create(
        model=MODEL, messages=USER, max_tokens=4096, extra_body={"thinking": THINKING}
    )
    expected = "Hello from" if preset(gw) == "demo" else "thought it through"
    assert completion.choices[0].message.content.startswith(expected)
    assert_upstream_api(gw, up)


# --------------------------------------------------------------------------- what Claude Code sends


def claude_code_request(stream: bool) -> dict:
    """A /v1/messages body shaped like Claude Code 2.1's: 32000 max_tokens, thinking, cache_control, extras."""
    return {
        "model": MODEL,
        "max_tokens": 32000,
        "stream": stream,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_abc_account__session_123"},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [{**ANTHROPIC_TOOLS[0], "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
        ],
    }


CLAUDE_CODE_BETAS = (
    "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,context-management-2025-06-27"
)


@pytest.mark.parametrize("stream", [False, True])
def test_claude_codes_request_shape_is_served(gw: Gateway, up: FakeUpstream, stream: bool) -> None:
    headers = {**gw.headers(), "anthropic-beta": CLAUDE_CODE_BETAS, "anthropic-version": "2023-06-01"}
    response = httpx.post(gw.url + "/v1/messages", json=claude_code_request(stream), headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    if stream:
        assert "event: message_stop" in response.text and "event: error" not in response.text
    else:
        assert response.json()["content"][-1]["text"].startswith(expected_text(gw, up))
    assert_upstream_api(gw, up)
    if preset(gw) == "demo":
        return
    sent = generations(up)[-1]
    assert gw.key not in json.dumps(sent.headers) + sent.body.decode()
    if preset(gw) == "openai-backed":
        assert sent.api == "chat"  # not /v1/responses, although the request has `thinking`
        limit = sent.get("max_completion_tokens") or sent.get("max_tokens")
        assert limit == CAP  # 32000 clamped to the route's max_output_tokens
        assert sent.get("context_management") is None and sent.get("thinking") is None  # unknown to OpenAI
        assert "cache_control" not in sent.body.decode()
    else:
        assert sent.get("max_tokens") == CAP
        assert "context-1m-2025-08-07" in sent.headers.get("anthropic-beta", "")


def test_thinking_budget_is_lowered_with_max_tokens(gw: Gateway, up: FakeUpstream) -> None:
    if preset(gw) != "anthropic":
        pytest.skip("a thinking budget reaches Anthropic-format upstreams only")
    body = {**claude_code_request(stream=False), "model": "haiku"}  # haiku 4.5 keeps `enabled` thinking
    response = httpx.post(gw.url + "/v1/messages", json=body, headers=gw.headers(), timeout=60)
    assert response.status_code == 200, response.text
    sent = generations(up)[-1]
    assert sent.get("max_tokens") == CAP
    assert sent.get("thinking") == {"type": "enabled", "budget_tokens": CAP - 1}  # was 31999: must stay below


def test_context_1m_beta_header_reaches_anthropic(gw: Gateway, up: FakeUpstream, ant: anthropic.Anthropic) -> None:
    if preset(gw) != "anthropic":
        pytest.skip("the beta header matters for the Anthropic upstream only")
    ant.messages.create(
        model=MODEL, max_tokens=1024, messages=USER, extra_headers={"anthropic-beta": "context-1m-2025-08-07"}
    )
    betas = re.split(r"\s*,\s*", generations(up)[-1].headers.get("anthropic-beta", ""))
    assert "context-1m-2025-08-07" in betas


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_a_stream_cut_halfway_ends_in_an_error(gw: Gateway, up: FakeUpstream, path: str) -> None:
    needs_upstream(gw)
    up.script(Reply(text="one two three four five six", chunks=6, mid_stream="reset"), times=None)
    body = {"model": MODEL, "max_tokens": 1024, "messages": USER, "stream": True}
    response = httpx.post(gw.url + path, json=body, headers=gw.headers(), timeout=60)
    if response.status_code != 200:  # the cut came before the status line
        assert response.status_code >= 500 and "error" in response.json()
        return
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in data and '"message_stop"' not in response.text
    assert '"error"' in data[-1], response.text


def test_debug_log_says_each_patch_engaged(gw: Gateway) -> None:
    """`serve --log-level debug` reports the state of every LiteLLM patch (serve/litellm/PATCHES)."""
    from cc_gateway.serve.litellm import PATCHES

    log = gw.log()
    for patch in PATCHES:
        assert f"patch {patch.name}: engaged" in log


def test_no_key_in_the_debug_log(gw: Gateway) -> None:
    """Runs last for each preset: everything above went through this gateway at --log-level debug."""
    log = gw.log()
    assert "DEBUG" in log and "cc_gateway.access" in log
    assert gw.key not in log
    assert PROVIDER_KEY not in log
