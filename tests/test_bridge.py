"""The oauth-bridge end to end: openai SDK -> `cc-gateway serve` -> claude-agent-sdk -> Claude Code CLI -> fake upstream.

Only the Anthropic API is faked (tests/fakeupstream.py); the CLI is the one bundled with
claude-agent-sdk. The fake answers from callables keyed on the request's last user text, because
the CLI adds its own reminder blocks and may send side requests.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import Gateway, cli_env, init_gateway, run_cli, start_gateway, wait_until
from fakeupstream import FakeUpstream, Fault, Hang, Received, Reply

from cc_gateway.runtime.bridge.checks import BridgeSettings, startup_warnings
from cc_gateway.runtime.bridge.messages import MessageError, translate

API_KEY = "sk-ant-api03-" + "b" * 80
OAUTH_TOKEN = "sk-ant-oat01-" + "c" * 80
MAX_CONCURRENCY = 4


# --------------------------------------------------------------------------- helpers


def user_texts(received: Received) -> list[tuple[str, str]]:
    """(role, text) of each user/assistant message the upstream received, without Claude Code's reminders.

    Claude Code adds its context (environment, date) as <system-reminder> blocks in the user turn,
    or, for model ids it doesn't know, as a separate message: both are left out here.
    """
    result = []
    for message in received.get("messages") or []:
        if message.get("role") not in ("user", "assistant"):
            continue
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
        texts = [t for t in texts if not t.startswith("<system-reminder>")]
        result.append((message["role"], texts[-1] if texts else ""))
    return result


def last_user_text(received: Received) -> str:
    """The text the client wrote last."""
    turns = user_texts(received)
    return turns[-1][1] if turns else ""


def echo(**options: Any) -> Callable[[Received], Reply]:
    """Answer every generation request with 'answer to: <last user text>'."""
    return lambda received: Reply(text=f"answer to: {last_user_text(received)}", **options)


def main_requests(upstream: FakeUpstream, marker: str) -> list[Received]:
    """The generation requests whose last user text contains `marker` (not the CLI's side requests)."""
    return [r for r in upstream.requests if r.api == "messages" and marker in last_user_text(r)]


def cli_children(pid: int) -> dict[int, str]:
    """Claude Code CLI processes whose parent is `pid`: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and "claude" in command and "--output-format" in command:
            found[int(entry.name)] = command
    return found


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One oauth-bridge gateway for the module, its Claude Code CLI pointed at the fake upstream."""
    folder = tmp_path_factory.mktemp("bridge")
    init_gateway(
        folder,
        "oauth-bridge",
        "--key",
        f"ANTHROPIC_API_KEY={API_KEY}",
        "--api-base",
        f"CC_BRIDGE_ANTHROPIC_BASE_URL={upstream.url}",
    )
    home = tmp_path_factory.mktemp("bridge-home")
    env = cli_env(home, CC_BRIDGE_MAX_CONCURRENCY=str(MAX_CONCURRENCY), CC_BRIDGE_TIMEOUT="120")
    gw = start_gateway(folder, env=env, ready_timeout=180)
    yield gw
    try:
        gw.stop(timeout=60)
    except subprocess.TimeoutExpired:
        gw.process.kill()
        gw.process.wait(timeout=10)


@pytest.fixture
def client(gateway: Gateway, fresh_upstream: FakeUpstream) -> openai.OpenAI:
    """An OpenAI client on the gateway (no client-side retries), with the fake upstream reset."""
    fresh_upstream.default = echo()
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0, timeout=180)


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.claude
def test_non_streamed_answer_carries_usage(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    marker = f"plain-{uuid.uuid4().hex[:8]}"
    response = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": marker}])
    assert response.choices[0].message.content == f"answer to: {marker}"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    (request,) = main_requests(fresh_upstream, marker)
    assert request.model == "claude-sonnet-4-5-20250929"
    assert request.get("tools") == []  # no Claude Code tools offered to the model
    assert request.headers.get("x-api-key") == API_KEY


@pytest.mark.e2e
@pytest.mark.claude
def test_streamed_reply_arrives_in_several_deltas_then_finish_and_usage(
    client: openai.OpenAI, fresh_upstream: FakeUpstream
) -> None:
    text = "one two three four five six seven eight"
    fresh_upstream.default = lambda received: Reply(text=text, chunks=8, chunk_delay=0.05)
    stream = client.chat.completions.create(
        model="haiku",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1, deltas
    assert "".join(deltas) == text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens > 0 and usage[-1].prompt_tokens > 0
    assert {r.model for r in main_requests(fresh_upstream, "count")} == {"claude-haiku-4-5-20251001"}


@pytest.mark.e2e
@pytest.mark.claude
def test_system_message_arrives_as_the_system_prompt(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    system = f"You are a pirate {uuid.uuid4().hex[:8]}."
    client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "ahoy-system"}],
    )
    (request,) = main_requests(fresh_upstream, "ahoy-system")
    system_texts = [block["text"] for block in request.get("system")]
    assert system in system_texts
    for message in request.get("messages"):
        assert system not in str(message["content"])  # not glued into a user turn


@pytest.mark.e2e
@pytest.mark.claude
def test_three_turn_conversation_keeps_order_and_roles(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": "Keep count."},
        {"role": "user", "content": "turn one"},
        {"role": "assistant", "content": "reply one"},
        {"role": "user", "content": [{"type": "text", "text": "turn two"}]},
        {"role": "assistant", "content": "reply two"},
        {"role": "user", "content": "turn three"},
    ]
    response = client.chat.completions.create(model="opus", messages=messages)
    assert response.choices[0].message.content == "answer to: turn three"
    (request,) = main_requests(fresh_upstream, "turn three")
    assert request.model == "claude-opus-4-5-20251101"
    assert user_texts(request) == [
        ("user", "turn one"),
        ("assistant", "reply one"),
        ("user", "turn two"),
        ("assistant", "reply two"),
        ("user", "turn three"),
    ]


@pytest.mark.e2e
@pytest.mark.claude
def test_eight_concurrent_requests_get_their_own_answers_within_the_process_bound(
    client: openai.OpenAI, fresh_upstream: FakeUpstream, gateway: Gateway
) -> None:
    fresh_upstream.default = echo(chunks=4, chunk_delay=0.1, delay=0.5)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(len(cli_children(gateway.process.pid)))
            time.sleep(0.05)

    def ask(number: int) -> str:
        stream = client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": f"question-{number}"}], stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
    finally:
        done.set()
        watcher.join()
    assert answers == [f"answer to: question-{n}" for n in range(8)]
    assert 1 <= max(seen) <= MAX_CONCURRENCY, seen


@pytest.mark.e2e
@pytest.mark.claude
def test_default_is_opus_and_falls_back_to_sonnet(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    first = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "who-default"}])
    assert {r.model for r in main_requests(fresh_upstream, "who-default")} == {"claude-opus-4-5-20251101"}
    assert first.choices[0].message.content == "answer to: who-default"
    fresh_upstream.script(Fault(529, "overloaded"), times=None, model="claude-opus-4-5-20251101")
    second = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "who-fallback"}])
    assert second.choices[0].message.content == "answer to: who-fallback"
    models = [r.model for r in main_requests(fresh_upstream, "who-fallback")]
    assert models[0] == "claude-opus-4-5-20251101" and models[-1] == "claude-sonnet-4-5-20250929", models


@pytest.mark.e2e
@pytest.mark.claude
def test_upstream_401_is_reported_as_an_authentication_problem(
    client: openai.OpenAI, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script(Fault(401, "invalid x-api-key"), times=None, api="messages")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "who am I"}])
    assert caught.value.status_code == 401
    assert "claude setup-token" in str(caught.value)
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert API_KEY not in str(caught.value)
    with pytest.raises(openai.AuthenticationError) as again:  # streamed, and 401 again (no cooldown "429")
        list(client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "me?"}], stream=True))
    assert "claude setup-token" in str(again.value)


@pytest.mark.e2e
@pytest.mark.claude
def test_timeout_ends_with_a_clear_error_and_no_orphan_process(
    client: openai.OpenAI, fresh_upstream: FakeUpstream, gateway: Gateway
) -> None:
    model = f"claude-hang-probe-{uuid.uuid4().hex[:8]}"
    fresh_upstream.script(Hang(seconds=90), times=None, model=model)
    during: dict[int, str] = {}
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            during.update({p: c for p, c in cli_children(gateway.process.pid).items() if model in c})
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hang"}], extra_body={"timeout": 8}
            )
    finally:
        finished.set()
        watcher.join()
    assert caught.value.status_code == 408
    assert "CC_BRIDGE_TIMEOUT" in str(caught.value)
    assert time.monotonic() - started < 60
    assert during, "the hanging Claude Code process was never seen"
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in during), 20, 0.2)
    assert not [p for p in during if Path(f"/proc/{p}").exists() and b"zombie" not in _state(p)]
    assert not [c for c in cli_children(gateway.process.pid).values() if model in c]


@pytest.mark.e2e
@pytest.mark.claude
def test_a_client_that_disconnects_mid_stream_leaves_no_process(gateway: Gateway, fresh_upstream: FakeUpstream) -> None:
    model = f"claude-gone-probe-{uuid.uuid4().hex[:8]}"
    fresh_upstream.script(Reply(text="x" * 200, chunks=200, chunk_delay=0.2), times=None, model=model)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0, timeout=120)
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "long"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    running = [p for p, c in cli_children(gateway.process.pid).items() if model in c]
    assert running, "the streaming Claude Code process was not seen"
    stream.close()
    wait_until(lambda: not [c for c in cli_children(gateway.process.pid).values() if model in c], 30, 0.2)
    assert not [c for c in cli_children(gateway.process.pid).values() if model in c]


@pytest.mark.e2e
@pytest.mark.claude
def test_a_warm_spare_answers_the_next_request_and_carries_nothing_over(
    client: openai.OpenAI, fresh_upstream: FakeUpstream, gateway: Gateway
) -> None:
    model = f"claude-warm-probe-{uuid.uuid4().hex[:8]}"
    system = {"role": "system", "content": "Answer briefly."}
    client.chat.completions.create(model=model, messages=[system, {"role": "user", "content": "first-warm"}])
    spares = wait_until(lambda: [p for p, c in cli_children(gateway.process.pid).items() if model in c], 60, 0.2)
    assert len(spares) == 1, "no warm spare was started after the answer"
    time.sleep(3)  # let it finish starting
    second = client.chat.completions.create(model=model, messages=[system, {"role": "user", "content": "second-warm"}])
    assert second.choices[0].message.content == "answer to: second-warm"
    (request,) = main_requests(fresh_upstream, "second-warm")
    assert user_texts(request) == [("user", "second-warm")]  # nothing of the first request
    # used once, then closed: it exits right after its answer
    wait_until(lambda: not Path(f"/proc/{spares[0]}").exists() or b"zombie" in _state(spares[0]), 20, 0.1)
    assert not Path(f"/proc/{spares[0]}").exists() or b"zombie" in _state(spares[0])


def _state(pid: int) -> bytes:
    """A process's state line (to tell a zombie from a live process)."""
    try:
        return Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return b"zombie"


@pytest.mark.e2e
@pytest.mark.claude
def test_images_are_passed_as_image_blocks(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [
        {"type": "text", "text": "describe-image"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
    ]
    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": content}])
    requests = [r for r in fresh_upstream.requests if "describe-image" in str(r.get("messages"))]
    assert requests
    blocks = requests[0].get("messages")[-1]["content"]
    images = [b for b in blocks if b.get("type") == "image"]
    assert images == [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": pixel}}]


@pytest.mark.e2e
@pytest.mark.claude
def test_unsupported_content_is_a_clear_400(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": [audio]}])
    assert "input_audio" in str(caught.value) and "not supported" in str(caught.value)
    assert not [r for r in fresh_upstream.requests if r.api == "messages"]


# --------------------------------------------------------------------------- compliance notice


def test_init_prints_the_terms_notice(tmp_path: Path) -> None:
    result = run_cli(
        "init", "--preset", "oauth-bridge", "--dir", str(tmp_path), "--yes", "--key",
        f"CLAUDE_CODE_OAUTH_TOKEN={OAUTH_TOKEN}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Agent SDK" in result.stderr and "ANTHROPIC_API_KEY" in result.stderr
    assert OAUTH_TOKEN not in result.stderr


def test_serve_warns_at_start_only_when_the_bridge_runs_on_an_oauth_token(tmp_path: Path) -> None:
    from cc_gateway.serve import preflight as serve

    saved = dict(os.environ)
    try:
        oauth = init_gateway(tmp_path / "oauth", "oauth-bridge", "--key", f"CLAUDE_CODE_OAUTH_TOKEN={OAUTH_TOKEN}")
        warnings = serve.preflight(serve.ServeOptions(folder=oauth)).warnings
        assert any("Anthropic's terms" in w and "ANTHROPIC_API_KEY" in w for w in warnings), warnings
        os.environ.clear()
        os.environ.update(saved)
        api = init_gateway(tmp_path / "api", "oauth-bridge", "--key", f"ANTHROPIC_API_KEY={API_KEY}")
        assert not any("terms" in w for w in serve.preflight(serve.ServeOptions(folder=api)).warnings)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_startup_warnings_name_the_missing_credential_and_ignore_other_presets() -> None:
    config = {"model_list": [{"model_name": "sonnet", "litellm_params": {"model": "claude-agent/claude-x"}}]}
    (missing,) = startup_warnings(config, {})
    assert "claude setup-token" in missing and "ANTHROPIC_API_KEY" in missing
    other = {"model_list": [{"model_name": "sonnet", "litellm_params": {"model": "anthropic/claude-x"}}]}
    assert startup_warnings(other, {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH_TOKEN}) == []


def test_an_api_key_wins_over_an_oauth_token() -> None:
    both = BridgeSettings.from_env({"ANTHROPIC_API_KEY": API_KEY, "CLAUDE_CODE_OAUTH_TOKEN": OAUTH_TOKEN})
    assert both.credential_name == "ANTHROPIC_API_KEY" and not both.on_oauth_token
    assert BridgeSettings.from_env({"CLAUDE_CODE_OAUTH_TOKEN": OAUTH_TOKEN}).on_oauth_token


# --------------------------------------------------------------------------- message translation


def test_translate_splits_system_history_and_prompt() -> None:
    conversation = translate(
        [
            {"role": "system", "content": "first"},
            {"role": "developer", "content": [{"type": "text", "text": "second"}]},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
        ]
    )
    assert conversation.system == "first\n\nsecond"
    assert [(t.role, t.content[0]["text"]) for t in conversation.history] == [("user", "q1"), ("assistant", "a1")]
    assert conversation.prompt == [{"type": "text", "text": "q2"}]


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": "assistant", "content": "hi"}], "last message must come from the user"),
        ([{"role": "user", "content": "x"}, {"role": "tool", "content": "r", "tool_call_id": "1"}], "runs no tools"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}], "http"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}],
            "tiff",
        ),
    ],
)
def test_translate_refuses_what_the_bridge_cannot_answer(messages: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        translate(messages)


def test_a_claude_login_is_used_without_its_refresh_token(tmp_path: Path) -> None:
    from cc_gateway.runtime.bridge.process import _cli_env

    login = tmp_path / "user" / ".claude" / ".credentials.json"
    login.parent.mkdir(parents=True)
    login.write_text('{"claudeAiOauth": {"accessToken": "sk-ant-oat01-abc", "refreshToken": "sk-ant-ort01-xyz"}}')
    settings = BridgeSettings.from_env({"HOME": str(tmp_path / "user")})
    assert settings.credential_name == "LOGIN" and settings.on_oauth_token
    throwaway = tmp_path / "throwaway"
    (throwaway / ".claude").mkdir(parents=True)
    env = _cli_env(settings, throwaway, None)
    copied = (throwaway / ".claude" / ".credentials.json").read_text()
    assert "sk-ant-oat01-abc" in copied and "refreshToken" not in copied
    assert "sk-ant-ort01-xyz" in login.read_text()  # the login itself is untouched
    assert env["HOME"] == str(throwaway) and env["CLAUDE_CONFIG_DIR"] == str(throwaway / ".claude")


def test_a_request_offering_tools_is_refused() -> None:
    from cc_gateway.runtime.bridge.provider import BridgeFailure, Call

    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(BridgeFailure, match="runs no tools") as caught:
        Call("claude-x", [{"role": "user", "content": "hi"}], {"tools": [tool]}, None)
    assert caught.value.status == 400
    Call("claude-x", [{"role": "user", "content": "hi"}], {"tools": [tool], "tool_choice": "none"}, None)


def test_no_credential_answers_401_naming_setup_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from cc_gateway.runtime.bridge.provider import BridgeFailure, Call

    monkeypatch.delenv("CLAUDE_CODE_OAUTH_TOKEN", raising=False)  # HOME is a fresh folder: no login either
    call = Call("claude-x", [{"role": "user", "content": "hi"}], {}, None)
    with pytest.raises(BridgeFailure, match="claude setup-token") as caught:
        asyncio.run(anext(call.deltas()))
    assert caught.value.status == 401
