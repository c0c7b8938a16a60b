"""The multi-provider preset under `cc-gateway serve`: pool, no credential leaks, thinking hygiene, auth.

One fake upstream per provider (anthropic, zai, kimi, openrouter), so each one's received
requests can be searched separately. The module's gateway keeps its pool state between tests;
tests that rest or remove credentials come last and say so.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from conftest import claude_bin, cli_env, init_gateway, start_gateway
from fakeupstream import FakeUpstream, Fault, Received, Reply

pytestmark = pytest.mark.e2e

CANARY = "sk-ant-oat01-CANARY-client-0123456789abcdefghij"
POOL = [
    "sk-ant-oat01-CANARY-poolA-0123456789abcdefghij",
    "sk-ant-api03-poolB-0123456789abcdefghijklmn",
    "sk-ant-oat01-poolC-0123456789abcdefghijklmn",
]
STATIC = ["static-one-0123456789abcdef", "static-two-0123456789abcdef"]
PROVIDERS = ("anthropic", "zai", "kimi", "openrouter")
THIRD_PARTY = ("zai", "kimi", "openrouter")
USER = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- helpers


def credential_of(received: Received) -> str | None:
    """The Claude credential an Anthropic request carried (Bearer or x-api-key)."""
    bearer = received.headers.get("authorization", "")
    return bearer[7:] if bearer.startswith("Bearer ") else received.headers.get("x-api-key")


def everything(received: Received) -> str:
    """A request as one searchable string: path, headers and body."""
    return received.path + json.dumps(received.headers) + received.body.decode("utf-8", "replace")


def ask(gw, model: str, *, headers: dict | None = None, stream: bool = False, **body) -> httpx.Response:
    """POST /v1/messages as Claude Code does with a static token in x-litellm-api-key."""
    sent = {"x-litellm-api-key": STATIC[0], "anthropic-version": "2023-06-01", **(headers or {})}
    payload = {"model": model, "max_tokens": 64, "messages": USER, "stream": stream, **body}
    return httpx.post(f"{gw.url}/v1/messages", json=payload, headers=sent, timeout=60)


def sse_blocks(text: str) -> list[dict]:
    """The content_block_start blocks of an Anthropic SSE body, with their index."""
    starts = []
    for line in text.splitlines():
        if line.startswith("data:"):
            event = json.loads(line[5:])
            if event.get("type") == "content_block_start":
                starts.append({"index": event["index"], **event["content_block"]})
    return starts


# --------------------------------------------------------------------------- fixtures


@contextlib.contextmanager
def upstreams() -> Iterator[dict[str, FakeUpstream]]:
    """One fake upstream per provider, stopped on exit."""
    started = {name: FakeUpstream().start() for name in PROVIDERS}
    try:
        yield started
    finally:
        for upstream in started.values():
            upstream.stop()


def reset_all(started: dict[str, FakeUpstream]) -> dict[str, FakeUpstream]:
    """Clear every upstream's scripts and request log."""
    for upstream in started.values():
        upstream.reset()
    return started


@pytest.fixture(scope="module")
def ups():
    """One fake upstream per provider."""
    with upstreams() as started:
        yield started


def render(folder: Path, ups: dict, *keys: str) -> Path:
    """Render the multi-provider preset pointing at the fake upstreams."""
    bases = [
        "--api-base", f"zai={ups['zai'].url}",
        "--api-base", f"kimi={ups['kimi'].url}",
        "--api-base", f"openrouter={ups['openrouter'].url}/v1",
        "--api-base", f"anthropic={ups['anthropic'].url}",
    ]  # fmt: skip
    key_flags = [flag for key in keys for flag in ("--key", key)]
    # These tests are about the pool, credentials and fallbacks of each route: without the preset's
    # routing rules, which would send haiku ids to glm-fast (tests/test_routing_e2e.py covers those).
    return init_gateway(folder, "multi-provider", *bases, *key_flags, "--option", "rules=off")


THIRD_PARTY_KEYS = ("ZAI_API_KEY=zai-key-0123456789abcdefgh", "KIMI_API_KEY=sk-kimi-0123456789abcdefgh",
                    "OPENROUTER_API_KEY=sk-or-0123456789abcdefghij")  # fmt: skip


@pytest.fixture(scope="module")
def gw(tmp_path_factory, ups):
    """A gateway with a pool of three (two OAuth tokens, one API key), logging at debug."""
    folder = render(
        tmp_path_factory.mktemp("mp"), ups, *THIRD_PARTY_KEYS,
        f"PROXY_STATIC_TOKEN={','.join(STATIC)}", f"CLAUDE_OAUTH_TOKENS={','.join(POOL)}",
    )  # fmt: skip
    gateway = start_gateway(folder, "--log-level", "debug", env=cli_env(folder))
    yield gateway
    gateway.stop()


@pytest.fixture
def fresh(ups):
    """Reset every upstream's scripts and request log."""
    return reset_all(ups)


# --------------------------------------------------------------------------- start-up


def test_serve_warns_about_pooled_oauth_tokens(gw):
    assert "subscription OAuth token(s)" in gw.log()
    assert "Anthropic's terms" in gw.log()


# --------------------------------------------------------------------------- pool rotation


def test_rotate_round_robin_with_the_right_header_per_credential(gw, fresh):
    for _ in range(6):
        assert ask(gw, "claude-sonnet-4-5").status_code == 200
    received = fresh["anthropic"].requests
    used = [credential_of(r) for r in received]
    assert sorted(used) == sorted(POOL * 2)
    assert used[:3] == used[3:], "round-robin order repeats"
    for request in received:
        if credential_of(request).startswith("sk-ant-oat"):
            assert "x-api-key" not in request.headers
            assert "oauth-2025-04-20" in request.headers["anthropic-beta"]
        else:
            assert request.headers["x-api-key"] == POOL[1]
            assert "authorization" not in request.headers
            assert "oauth-2025-04-20" not in request.headers.get("anthropic-beta", "")
        assert not any(token in everything(request) for token in STATIC)


def test_rotate_ignores_the_clients_own_token(gw, fresh):
    response = ask(gw, "anthropic/claude-opus-4", headers={"authorization": f"Bearer {CANARY}"})
    assert response.status_code == 200
    (request,) = fresh["anthropic"].requests
    assert credential_of(request) in POOL
    assert CANARY not in everything(request)


def test_passthrough_header_forwards_the_clients_oauth_token(gw, fresh):
    headers = {"authorization": f"Bearer {CANARY}", "x-claude-token-mode": "passthrough"}
    assert ask(gw, "claude-sonnet-4-5", headers=headers).status_code == 200
    (request,) = fresh["anthropic"].requests
    assert request.headers["authorization"] == f"Bearer {CANARY}"
    assert "oauth-2025-04-20" in request.headers["anthropic-beta"]
    assert not any(token in everything(request) for token in POOL + STATIC)


def test_passthrough_forwards_an_sdk_api_key_as_x_api_key(gw, fresh):
    own = "sk-ant-api03-client-key-0123456789abcdefgh"
    client = anthropic.Anthropic(
        base_url=gw.url,
        api_key=own,
        default_headers={"x-litellm-api-key": f"Bearer {STATIC[1]}", "x-claude-token-mode": "passthrough"},
        max_retries=0,
    )
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=32, messages=USER)
    assert message.content[0].text.startswith("fake reply")
    (request,) = fresh["anthropic"].requests
    assert request.headers["x-api-key"] == own
    assert "authorization" not in request.headers


def test_passthrough_without_a_claude_credential_is_refused(gw, fresh):
    response = ask(gw, "claude-sonnet-4-5", headers={"x-claude-token-mode": "passthrough"})
    assert response.status_code == 401
    assert "passthrough" in response.json()["error"]["message"]
    assert fresh["anthropic"].requests == []


def test_unknown_token_mode_header_is_a_400_naming_it(gw, fresh):
    response = ask(gw, "claude-sonnet-4-5", headers={"x-claude-token-mode": "borrow"})
    assert response.status_code == 400
    assert "x-claude-token-mode" in response.json()["error"]["message"]


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("value", [STATIC[0], f"Bearer {STATIC[0]}", STATIC[1], f"bearer {STATIC[1]}"])
def test_static_tokens_accepted_in_x_litellm_api_key(gw, fresh, value):
    response = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": "glm", "max_tokens": 16, "messages": USER},
        headers={"x-litellm-api-key": value},
        timeout=60,
    )
    assert response.status_code == 200, response.text


def test_wrong_token_is_401_and_master_key_still_works(gw, fresh):
    body = {"model": "glm", "max_tokens": 16, "messages": USER}
    wrong = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-litellm-api-key": "static-nope"}, timeout=60)
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "error"
    master = httpx.post(f"{gw.url}/v1/messages", json=body, headers=gw.headers(), timeout=60)
    assert master.status_code == 200
    assert fresh["zai"].requests and all(gw.key not in everything(r) for r in fresh["zai"].requests)


# --------------------------------------------------------------------------- no credential leaks


def test_canary_never_reaches_a_third_party_upstream_or_the_log(gw, fresh):
    fresh["anthropic"].script(Fault(500, "anthropic is down"), times=None)
    client_headers = {"authorization": f"Bearer {CANARY}", "x-api-key": CANARY, "anthropic-beta": "oauth-2025-04-20"}
    for model in ("glm", "glm-fast", "kimi", "openrouter"):
        for stream in (False, True):
            response = ask(gw, model, headers=client_headers, stream=stream)
            assert response.status_code == 200, response.text
    # fallbacks: the Anthropic route fails, the pool's and the client's tokens must not follow
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "anthropic/claude-opus-4"):
        for mode in ("rotate", "passthrough"):
            response = ask(gw, model, headers={**client_headers, "x-claude-token-mode": mode})
            assert response.status_code == 200, response.text
    third_party = [r for name in THIRD_PARTY for r in fresh[name].requests]
    assert len(third_party) == 8 + 6
    for request in third_party:
        text = everything(request)
        assert "sk-ant-" not in text, request.path
        assert "oauth-2025-04-20" not in text
        assert not any(token in text for token in [*STATIC, gw.key])
    assert fresh["anthropic"].requests, "the Anthropic route was tried first"
    log = gw.log()
    assert "DEBUG" in log
    for secret in [CANARY, *POOL, *STATIC, gw.key]:
        assert secret not in log


@pytest.mark.parametrize("model", ["glm", "kimi", "claude-sonnet-4-5"])
def test_count_tokens_leaks_nothing(gw, fresh, model):
    headers = {"x-litellm-api-key": STATIC[0], "authorization": f"Bearer {CANARY}", "anthropic-version": "2023-06-01"}
    body = {"model": model, "messages": USER}
    response = httpx.post(f"{gw.url}/v1/messages/count_tokens", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 0
    if model in ("glm", "kimi"):
        upstream = fresh["zai" if model == "glm" else "kimi"]
        assert [r.api for r in upstream.requests] == ["count_tokens"], "counted upstream, with the route's key"
    for name in THIRD_PARTY:
        assert not any("sk-ant-" in everything(r) or STATIC[0] in everything(r) for r in fresh[name].requests)
    for request in fresh["anthropic"].requests:
        assert STATIC[0] not in everything(request)


def test_fallbacks_answer_from_glm_with_the_routes_own_key(gw, fresh):
    fresh["anthropic"].script(Fault(529, "overloaded"), times=None)
    haiku = ask(gw, "claude-haiku-4-5").json()
    assert haiku["content"][0]["text"] == "fake reply from glm-5-air via messages"
    opus = ask(gw, "anthropic/claude-opus-4").json()
    assert opus["content"][0]["text"] == "fake reply from glm-5 via messages"
    sonnet = ask(gw, "claude-sonnet-4-5").json()
    assert sonnet["content"][0]["text"] == "fake reply from glm-5 via messages"
    assert {r.model for r in fresh["anthropic"].requests} == {"claude-haiku-4-5", "claude-opus-4", "claude-sonnet-4-5"}
    for request in fresh["zai"].requests:
        assert request.headers.get("x-api-key") == "zai-key-0123456789abcdefgh"
        assert "authorization" not in request.headers


def test_openai_sdk_clients_keep_their_claude_token_too(gw, fresh):
    client = openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=CANARY, default_headers={"x-litellm-api-key": STATIC[0]}, max_retries=0
    )
    for model in ("glm", "kimi", "openrouter"):
        for stream in (False, True):
            reply = client.chat.completions.create(model=model, max_tokens=16, messages=USER, stream=stream)
            text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices) if stream else reply
            assert text
    third_party = [r for name in THIRD_PARTY for r in fresh[name].requests]
    assert len(third_party) == 6
    assert not any("sk-ant-" in everything(r) or STATIC[0] in everything(r) for r in third_party)


def test_chat_completions_to_claude_rotate_the_pool_too(gw, fresh):
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=STATIC[0], max_retries=0)
    for stream in (False, True, False):
        reply = client.chat.completions.create(model="claude-sonnet-4-5", max_tokens=16, messages=USER, stream=stream)
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices) if stream else reply
        assert text
    assert sorted(credential_of(r) for r in fresh["anthropic"].requests) == sorted(POOL)


# --------------------------------------------------------------------------- thinking blocks

FOREIGN = {"type": "thinking", "thinking": "glm thought", "signature": "glm-signature"}
REDACTED = {"type": "redacted_thinking", "data": "opaque-from-somewhere"}


def history(*thinking_blocks: dict) -> list[dict]:
    """A conversation whose assistant turn carries the given thinking blocks."""
    assistant = [*thinking_blocks, {"type": "text", "text": "earlier answer"}]
    return [*USER, {"role": "assistant", "content": assistant}, {"role": "user", "content": "and now?"}]


@pytest.mark.parametrize("model", ["glm", "kimi", "openrouter"])
def test_thinking_blocks_are_not_sent_to_providers_that_reject_them(gw, fresh, model):
    response = ask(gw, model, messages=history(FOREIGN, REDACTED))
    assert response.status_code == 200, response.text
    text = "".join(everything(r) for name in THIRD_PARTY for r in fresh[name].requests)
    assert "earlier answer" in text
    assert "glm thought" not in text and "opaque-from-somewhere" not in text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["glm", "openrouter"])
def test_reasoning_from_third_parties_never_reaches_the_client(gw, fresh, model, stream):
    upstream = fresh["zai" if model == "glm" else "openrouter"]
    upstream.script(Reply(text="the answer", thinking="private reasoning", chunks=3))
    response = ask(gw, model, stream=stream)
    assert response.status_code == 200
    assert "private reasoning" not in response.text
    assert "the answer" in response.text.replace('"', "") or "the answer" in _joined_text(response.text)
    if stream:
        blocks = sse_blocks(response.text)
        assert [b["type"] for b in blocks] == ["text"]
        assert [b["index"] for b in blocks] == [0]
    else:
        assert [b["type"] for b in response.json()["content"]] == ["text"]


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_content_never_reaches_chat_clients(gw, fresh, stream):
    fresh["openrouter"].script(Reply(text="chat answer", thinking="private chain", chunks=3))
    body = {"model": "openrouter", "max_tokens": 32, "messages": USER, "stream": stream}
    response = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=gw.headers(), timeout=60)
    assert response.status_code == 200
    assert "private chain" not in response.text
    if stream:
        chunks = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data: {")]
        deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
        assert "".join(d.get("content") or "" for d in deltas) == "chat answer"
        assert not any(d.get("reasoning_content") for d in deltas)
    else:
        assert response.json()["choices"][0]["message"]["content"] == "chat answer"


def _joined_text(sse: str) -> str:
    parts = []
    for line in sse.splitlines():
        if line.startswith("data:"):
            delta = json.loads(line[5:]).get("delta") or {}
            parts.append(delta.get("text", ""))
    return "".join(parts)


def test_sdk_stream_from_glm_has_no_thinking_and_valid_indices(gw, fresh):
    fresh["zai"].script(Reply(text="streamed answer", thinking="hidden", chunks=4))
    client = anthropic.Anthropic(base_url=gw.url, api_key=STATIC[0], max_retries=0)
    with client.messages.stream(model="glm", max_tokens=64, messages=USER) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "streamed answer"


def test_only_signatures_seen_from_anthropic_go_back_to_anthropic(gw, fresh):
    fresh["anthropic"].script(Reply(text="claude answer", thinking="claude thought", signature="SIG-anthropic-1"))
    first = ask(gw, "claude-sonnet-4-5", stream=True)
    assert "SIG-anthropic-1" in first.text, "the client keeps Anthropic's own thinking blocks"
    signed = {"type": "thinking", "thinking": "claude thought", "signature": "SIG-anthropic-1"}
    second = ask(gw, "claude-sonnet-4-5", messages=history(signed, FOREIGN, REDACTED))
    assert second.status_code == 200
    sent = fresh["anthropic"].requests[-1].json["messages"][1]["content"]
    assert [b.get("signature") for b in sent if b["type"] == "thinking"] == ["SIG-anthropic-1"]
    assert all(b["type"] != "redacted_thinking" for b in sent)


def run_claude(home: Path, gw, *args: str, mode: str = "rotate") -> subprocess.CompletedProcess[str]:
    """Run the real Claude Code CLI against the gateway with a subscription-style token (the canary)."""
    project = home / "project"
    project.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TERM": "dumb",
        "ANTHROPIC_BASE_URL": gw.url,
        "ANTHROPIC_AUTH_TOKEN": CANARY,
        "ANTHROPIC_CUSTOM_HEADERS": f"x-litellm-api-key: {STATIC[0]}\nx-claude-token-mode: {mode}",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    command = [claude_bin(), "-p", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.claude
def test_claude_code_glm_turn_with_thinking_then_claude_turn(gw, fresh, tmp_path):
    if claude_bin() is None:
        pytest.skip("Claude Code CLI not installed")
    fresh["zai"].script(Reply(text="glm says hi", thinking="glm private thinking", signature="glm-sig"))
    first = run_claude(tmp_path, gw, "say hi", "--model", "glm")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "glm says hi" in first.stdout
    second = run_claude(tmp_path, gw, "--continue", "and again", "--model", "claude-sonnet-4-5", mode="passthrough")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "fake reply from claude-sonnet-4-5" in second.stdout
    (to_anthropic,) = [r for r in fresh["anthropic"].requests if r.api == "messages"]
    assert to_anthropic.headers["authorization"] == f"Bearer {CANARY}", "passthrough: the user's own login"
    assert "glm says hi" in everything(to_anthropic), "the history went along"
    assert "glm private thinking" not in everything(to_anthropic) and "glm-sig" not in everything(to_anthropic)
    for request in fresh["zai"].requests:
        assert "sk-ant-" not in everything(request)
        assert STATIC[0] not in everything(request)


def test_thinking_is_turned_off_when_the_last_turn_loses_its_thinking_block(gw, fresh):
    tool_turn = [FOREIGN, {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]
    messages = [
        *USER,
        {"role": "assistant", "content": tool_turn},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
    ]
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    response = ask(gw, "claude-sonnet-4-5", messages=messages, tools=tools, thinking=thinking, max_tokens=2048)
    assert response.status_code == 200, response.text
    (sent,) = fresh["anthropic"].requests
    assert [b["type"] for b in sent.json["messages"][1]["content"]] == ["tool_use"]
    assert "thinking" not in sent.json, "Anthropic would reject a thinking request whose tool turn has no thinking"
    assert "dropped thinking blocks Anthropic did not sign" in gw.log()


# --------------------------------------------------------------------------- 429 / 401 (these change pool state)


def by_credential(table: dict[str, Reply | Fault]):
    """An upstream script answering per credential, logging (time, credential) of each request."""
    seen: list[tuple[float, str]] = []
    lock = threading.Lock()

    def respond(received: Received):
        credential = credential_of(received)
        with lock:
            seen.append((time.monotonic(), credential))
        return table.get(credential) or Reply(text=f"ok from {credential[-6:]}")

    return respond, seen


def test_429_rests_a_credential_for_retry_after_then_it_returns(gw, fresh):
    respond, seen = by_credential({POOL[1]: Fault(429, "slow down", headers={"retry-after": "3"})})
    fresh["anthropic"].script(respond, times=None)
    for _ in range(6):
        response = ask(gw, "claude-sonnet-4-5")
        assert response.status_code == 200, response.text
    assert [c for _, c in seen].count(POOL[1]) == 1, "rested after its first 429"
    assert "got 429: resting it for 3s" in gw.log()
    time.sleep(3.5)
    fresh["anthropic"].reset()
    for _ in range(3):
        ask(gw, "claude-sonnet-4-5")
    assert POOL[1] in {credential_of(r) for r in fresh["anthropic"].requests}, "back after the rest"


def test_32_concurrent_requests_with_one_credential_rate_limited(gw, fresh):
    respond, seen = by_credential({POOL[2]: Fault(429, "slow down", headers={"retry-after": "20"})})
    fresh["anthropic"].script(respond, times=None)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda _: ask(gw, "claude-sonnet-4-5"), range(32)))
    assert [r.status_code for r in responses] == [200] * 32
    assert all(r.json()["content"][0]["text"].startswith("ok from") for r in responses)
    resting = [t for t, c in seen if c == POOL[2]]
    assert 1 <= len(resting) <= 11, "only first picks reach it: a rested credential is never retried"
    ok = [c for _, c in seen if c != POOL[2]]
    assert len(ok) == 32
    after = [t for t in resting if t > resting[0] + 2.0]
    assert after == [], "nothing used the resting credential after its rest began"
    for _ in range(4):
        assert ask(gw, "claude-sonnet-4-5").status_code == 200
    assert [c for _, c in seen].count(POOL[2]) == len(resting)


def test_passthrough_429_keeps_retry_after_without_the_router_sleeping_on_it(gw, fresh):
    fresh["anthropic"].script(Fault(429, "your own limit", headers={"retry-after": "30"}), times=None)
    headers = {"authorization": f"Bearer {CANARY}", "x-claude-token-mode": "passthrough"}
    started = time.monotonic()
    response = ask(gw, "claude-sonnet-4-5", headers=headers, disable_fallbacks=True)
    elapsed = time.monotonic() - started
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert elapsed < 20, "LiteLLM's retry did not wait out the 30 s Retry-After"
    assert {credential_of(r) for r in fresh["anthropic"].requests} == {CANARY}
    assert (
        ask(gw, "claude-sonnet-4-5", headers=headers).json()["content"][0]["text"].startswith("fake reply from glm-5")
    )


def test_401_removes_a_credential_and_names_it_by_fingerprint(gw, fresh):
    from cc_gateway.runtime.multi_provider.pool import fingerprint

    respond, seen = by_credential({POOL[0]: Fault(401, "invalid x-api-key")})
    fresh["anthropic"].script(respond, times=None)
    for _ in range(5):
        assert ask(gw, "claude-sonnet-4-5").status_code == 200
    assert [c for _, c in seen].count(POOL[0]) == 1
    log = gw.log()
    assert f"credential {fingerprint(POOL[0])} was rejected by Anthropic (401)" in log
    assert POOL[0] not in log


def test_all_resting_answers_429_with_the_soonest_retry_after_or_falls_back(gw, fresh):
    table = {token: Fault(429, "busy", headers={"retry-after": str(40 + i)}) for i, token in enumerate(POOL)}
    respond, seen = by_credential(table)
    fresh["anthropic"].script(respond, times=None)
    live = set(POOL[1:])  # POOL[0] was removed by the 401 test; earlier rests may still run
    for _ in range(30):  # the concurrency test's 20 s rest may still run: wait it out
        if live <= {c for _, c in seen}:
            break
        ask(gw, "claude-sonnet-4-5")
        time.sleep(1)
    assert live <= {c for _, c in seen}
    fresh["anthropic"].reset()
    refused = ask(gw, "claude-sonnet-4-5", disable_fallbacks=True)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 41
    assert refused.json()["error"]["type"] == "rate_limit_error"
    fallback = ask(gw, "claude-sonnet-4-5")
    assert fallback.json()["content"][0]["text"] == "fake reply from glm-5 via messages"
    assert fresh["anthropic"].requests == [], "no resting credential was used"
