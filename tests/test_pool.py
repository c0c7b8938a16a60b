"""Unit tests of the credential pool and the multi-provider hygiene helpers (no proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from cc_gateway.core.errors import ConfigError
from cc_gateway.runtime.multi_provider import pool
from cc_gateway.runtime.multi_provider.pool import Credential, CredentialPool, MemoryState, PoolError

OAUTH = "sk-ant-oat01-AAAAAAAAAAAAAAAAAAAAAAAA"
KEY = "sk-ant-api03-BBBBBBBBBBBBBBBBBBBBBBBB"
OAUTH2 = "sk-ant-oat01-CCCCCCCCCCCCCCCCCCCCCCCC"


def run(coro):
    return asyncio.run(coro)


# --------------------------------------------------------------------------- parsing


def test_parse_tokens_keeps_order_and_drops_duplicates():
    assert [c.value for c in pool.parse_tokens(f" {OAUTH} ,{KEY},{OAUTH}")] == [OAUTH, KEY]
    assert pool.parse_tokens("") == [] and pool.parse_tokens(None) == [] and pool.parse_tokens("   ") == []


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (",", "holds no credential"),
        (f"{OAUTH},,{KEY}", "entry 2 is empty"),
        (f"{OAUTH},", "entry 2 is empty"),
        ("short", "entry 1"),
        (f'"{OAUTH}"', "entry 1"),
        (f"{OAUTH} {KEY}", "entry 1"),
    ],
)
def test_parse_tokens_rejects_malformed_lists_naming_the_variable(raw, needle):
    with pytest.raises(ConfigError) as caught:
        pool.parse_tokens(raw)
    assert "CLAUDE_OAUTH_TOKENS" in str(caught.value) and needle in str(caught.value)
    assert OAUTH not in str(caught.value) and KEY not in str(caught.value)


def test_modes():
    assert pool.parse_mode("") is None and pool.parse_mode(" Rotate ") == "rotate"
    with pytest.raises(ConfigError, match="CLAUDE_TOKEN_MODE='share' is not a token mode"):
        pool.parse_mode("share")


def test_choose_mode_precedence(monkeypatch):
    monkeypatch.delenv("CLAUDE_TOKEN_MODE", raising=False)
    assert pool.choose_mode(None, 2) == "rotate"
    assert pool.choose_mode(None, 0) == "passthrough"
    assert pool.choose_mode("rotate", 0) == "passthrough", "nothing to rotate"
    monkeypatch.setenv("CLAUDE_TOKEN_MODE", "passthrough")
    assert pool.choose_mode(None, 2) == "passthrough"
    assert pool.choose_mode("rotate", 2) == "rotate", "the header wins"
    with pytest.raises(ConfigError, match="x-claude-token-mode"):
        pool.choose_mode("both", 2)


def test_cooldown_and_retry_after():
    assert pool.parse_cooldown(None) == 60 and pool.parse_cooldown("5") == 5
    for bad in ("0", "-1", "nan", "soon", "999999"):
        with pytest.raises(ConfigError, match="CLAUDE_POOL_COOLDOWN_SECONDS"):
            pool.parse_cooldown(bad)
    assert pool.parse_retry_after("7", 60) == 7
    assert pool.parse_retry_after(None, 60) == 60
    assert pool.parse_retry_after("garbage", 60) == 60
    assert pool.parse_retry_after("0", 60) == 60
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < pool.parse_retry_after(date, 60) <= 31


def test_fingerprint_is_short_stable_and_not_the_value():
    fp = pool.fingerprint(OAUTH)
    assert fp == pool.fingerprint(OAUTH) != pool.fingerprint(KEY)
    assert fp.startswith("fp-") and len(fp) == 15 and OAUTH[10:] not in fp
    assert OAUTH not in repr(Credential(OAUTH))


# --------------------------------------------------------------------------- headers


def test_oauth_goes_as_bearer_with_the_beta_and_no_api_key():
    headers = pool.with_credential(
        {"X-Api-Key": "client", "Authorization": "Bearer client", "anthropic-beta": "a,b"}, Credential(OAUTH)
    )
    assert headers == {"authorization": f"Bearer {OAUTH}", "anthropic-beta": "a,b,oauth-2025-04-20"}


def test_api_key_goes_as_x_api_key_without_the_oauth_beta():
    headers = pool.with_credential(
        {"authorization": "Bearer x", "anthropic-beta": "oauth-2025-04-20,c"}, Credential(KEY)
    )
    assert headers == {"x-api-key": KEY, "anthropic-beta": "c"}
    assert pool.with_credential({"anthropic-beta": "oauth-2025-04-20"}, Credential(KEY)) == {"x-api-key": KEY}


# --------------------------------------------------------------------------- the pool


def make_pool(*values: str, cooldown: float = 60) -> CredentialPool:
    return CredentialPool([Credential(v) for v in values], MemoryState(), cooldown)


def test_round_robin():
    credentials = make_pool(OAUTH, KEY, OAUTH2)
    picked = [run(credentials.acquire()).value for _ in range(6)]
    assert picked == [OAUTH, KEY, OAUTH2] * 2


def test_429_rests_for_retry_after_else_the_cooldown():
    credentials = make_pool(OAUTH, KEY, cooldown=120)

    async def scenario():
        await credentials.report(Credential(OAUTH), 429, "30")
        picks = [(await credentials.acquire()).value for _ in range(4)]
        rests, _ = await credentials.state.load([pool.fingerprint(OAUTH)])
        await credentials.report(Credential(KEY), 429, None)
        rests_key, _ = await credentials.state.load([pool.fingerprint(KEY)])
        return picks, rests, rests_key

    picks, rests, rests_key = run(scenario())
    assert picks == [KEY] * 4
    assert 28 < rests[pool.fingerprint(OAUTH)] - time.time() <= 30
    assert 118 < rests_key[pool.fingerprint(KEY)] - time.time() <= 120


def test_all_resting_raises_with_the_soonest_rest():
    credentials = make_pool(OAUTH, KEY)

    async def scenario():
        await credentials.report(Credential(OAUTH), 429, "50")
        await credentials.report(Credential(KEY), 429, "20")
        await credentials.acquire()

    with pytest.raises(PoolError) as caught:
        run(scenario())
    assert caught.value.retry_after in (19, 20)
    assert "rate-limited" in str(caught.value)


def test_a_rest_ends():
    credentials = make_pool(OAUTH)

    async def scenario():
        await credentials.report(Credential(OAUTH), 429, "0.2")
        with pytest.raises(PoolError):
            await credentials.acquire()
        await asyncio.sleep(0.3)
        return (await credentials.acquire()).value

    assert run(scenario()) == OAUTH


def test_401_removes_for_good_and_is_logged_by_fingerprint(caplog):
    credentials = make_pool(OAUTH, KEY)

    async def scenario():
        await credentials.report(Credential(OAUTH), 401)
        return [(await credentials.acquire()).value for _ in range(3)]

    with caplog.at_level("ERROR", logger="cc_gateway.pool"):
        assert run(scenario()) == [KEY] * 3
    assert pool.fingerprint(OAUTH) in caplog.text and OAUTH not in caplog.text
    run(credentials.report(Credential(KEY), 401))
    with pytest.raises(PoolError, match="rejected by Anthropic") as caught:
        run(credentials.acquire())
    assert caught.value.retry_after is None


def test_acquire_skips_excluded():
    credentials = make_pool(OAUTH, KEY)
    assert {run(credentials.acquire(exclude={pool.fingerprint(OAUTH)})).value for _ in range(3)} == {KEY}


def test_validate_environment(monkeypatch):
    warnings = pool.validate_environment({"CLAUDE_OAUTH_TOKENS": f"{OAUTH},{KEY}"})
    assert len(warnings) == 1 and "1 subscription OAuth token(s)" in warnings[0]
    assert pool.validate_environment({"CLAUDE_OAUTH_TOKENS": KEY}) == []
    assert "is empty" in pool.validate_environment({"CLAUDE_TOKEN_MODE": "rotate"})[0]
    with pytest.raises(ConfigError, match="REDIS_URL"):
        pool.validate_environment({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A private redis-server on a free port, without persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                pool.check_redis(url, timeout=1)
                break
            except ConfigError:
                assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.redis
def test_redis_state_is_shared_between_pools(tmp_path):
    with redis_server(tmp_path) as url:

        async def scenario():
            one = CredentialPool([Credential(OAUTH), Credential(KEY)], pool.RedisState(url))
            two = CredentialPool([Credential(OAUTH), Credential(KEY)], pool.RedisState(url))
            await one.report(Credential(OAUTH), 429, "30")
            await one.report(Credential(KEY), 401)
            with pytest.raises(PoolError) as caught:
                await two.acquire()
            return caught.value

        error = run(scenario())
        assert 28 <= error.retry_after <= 30


# --------------------------------------------------------------------------- hygiene helpers


@pytest.fixture(scope="module")
def hygiene():
    from cc_gateway.runtime.multi_provider import hygiene

    return hygiene


def test_scrub_headers_removes_every_claude_credential(hygiene):
    headers = {
        "Authorization": "Bearer sk-ant-oat01-x",
        "x-api-key": "anything",
        "x-custom": "sk-ant-api03-y",
        "anthropic-beta": "oauth-2025-04-20,fine-grained",
        "anthropic-version": "2023-06-01",
    }
    assert hygiene.scrub_headers(headers) == {"anthropic-beta": "fine-grained", "anthropic-version": "2023-06-01"}


def test_client_credential_is_never_a_gateway_key(hygiene, monkeypatch):
    monkeypatch.setenv("PROXY_STATIC_TOKEN", "static-a,static-b")
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master-0123456789abcdef")
    assert hygiene.client_credential({"authorization": "Bearer static-b"}) is None
    assert hygiene.client_credential({"authorization": "Bearer sk-master-0123456789abcdef"}) is None
    found = hygiene.client_credential({"authorization": "Bearer static-a", "x-api-key": KEY})
    assert found is not None and found.value == KEY
    assert hygiene.client_credential({"authorization": f"Bearer {OAUTH}"}).value == OAUTH


def test_without_thinking_reports_a_loss_in_the_last_assistant_turn(hygiene):
    thinking = {"type": "thinking", "thinking": "t", "signature": "s"}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "a"}]},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "d"}]},
    ]
    out, last_lost = hygiene._without_thinking(messages)
    assert out == [messages[0], {"role": "assistant", "content": [{"type": "text", "text": "a"}]}, messages[2]]
    assert last_lost
    kept, lost = hygiene._without_thinking(messages[:3], keep=lambda b: b.get("signature") == "s")
    assert kept == messages[:3] and not lost


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


STREAM = sse(
    {"type": "message_start", "message": {"content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "secret"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "answer"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_stop"},
)


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_sse_filter_drops_thinking_and_renumbers_whatever_the_chunking(hygiene, size):
    flt = hygiene.SseThinkingFilter(drop=True)
    out = b"".join(flt.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)) + flt.flush()
    events = [json.loads(line[5:]) for line in out.decode().splitlines() if line.startswith("data:")]
    assert b"secret" not in out and b"SIG" not in out
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_stop",
    ]
    assert {e["index"] for e in events if "index" in e} == {0}


def test_sse_filter_collects_anthropic_signatures_untouched(hygiene):
    flt = hygiene.SseThinkingFilter(drop=False)
    assert flt.feed(STREAM) + flt.flush() == STREAM
    assert flt.marks == [hygiene.block_mark({"signature": "SIG"})]


def test_strip_response_removes_thinking_and_reasoning(hygiene):
    message = {"content": [{"type": "thinking", "thinking": "x", "signature": "s"}, {"type": "text", "text": "a"}]}
    assert hygiene.strip_response(message)["content"] == [{"type": "text", "text": "a"}]
    chat = {
        "choices": [
            {"message": {"content": "a", "reasoning_content": "x", "provider_specific_fields": {"reasoning": "x"}}}
        ]
    }
    assert hygiene.strip_response(chat)["choices"][0]["message"] == {"content": "a", "provider_specific_fields": {}}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-haiku-4-5", ["glm-fast"]),
        ("claude-sonnet-4-5", ["glm"]),
        ("anthropic/claude-opus-4", ["glm"]),
        ("glm", None),
        ("exact", None),
    ],
)
def test_wildcard_fallbacks_first_match_wins(hygiene, model, expected):
    fallbacks = [{"claude-haiku-*": ["glm-fast"]}, {"anthropic/*": ["glm"]}, {"claude-*": ["glm"]}, {"exact": ["x"]}]
    assert hygiene.wildcard_fallbacks(model, fallbacks) == expected


def test_pool_keeps_serving_from_memory_when_redis_goes_away(caplog):
    state = pool.RedisState(f"redis://127.0.0.1:{free_port()}/0")
    credentials = CredentialPool([Credential(OAUTH), Credential(KEY)], state)

    async def scenario():
        await credentials.report(Credential(OAUTH), 429, "30")
        return [(await credentials.acquire()).value for _ in range(3)]

    with caplog.at_level("WARNING", logger="cc_gateway.pool"):
        assert run(scenario()) == [KEY] * 3
    assert "REDIS_URL" in caplog.text and "memory" in caplog.text
