"""Routing rules under `cc-gateway serve`, with the real Claude Code CLI (2.1.332) and one fake upstream per route.

The gateway is the anthropic preset (Claude Code's ids -> `claude-*` -> the `main` fake) grown with
`add-model ... --for`: `glm-fast` for subagents and background calls, `kimi-long` for long context,
`vision` (a chat-completions route) for images, and `glm`, a text-only route without web search whose
fake answers 400 to Anthropic's web-search tool, as third-party Anthropic-compatible endpoints do.
Each test reads which fake answered.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Gateway, claude_bin, cli_env, init_gateway, run_cli, start_gateway
from fakeupstream import FakeUpstream, Fault, Received, Reply
from test_claude_code import claude_env

from cc_gateway.routing import estimate_tokens

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

ROUTES = ("main", "fast", "long", "vision", "glm")
PROVIDER_KEY = "sk-ant-api03-" + "Rt17Kq9z" * 4
ZAI_KEY = "zai-key-" + "0123456789abcdefgh"
LONG_ABOVE = 30_000  # tokens: the first Claude Code request is ~13k, each Bash turn below adds ~5k
BASH_CHARS = 20_000
BASH_TURNS = 6
NOTICE = "[cc-gateway] web search is not available on route glm"


def claude_new() -> str | None:
    """Claude Code 2.1.332 (the newest the suite installs), else whichever CLI is installed."""
    candidate = ROOT / ".cache" / "npm-new" / "bin" / "claude"
    return str(candidate) if candidate.exists() else claude_bin()


def png(size: int = 8) -> bytes:
    """A small red square as PNG bytes."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def tool_results(received: Received) -> list[str]:
    """The text of every tool result in the request's history."""
    found = []
    for message in received.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            for block in message["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    content = block.get("content")
                    parts = content if isinstance(content, list) else [{"text": str(content or "")}]
                    found.append("".join(p.get("text", "") for p in parts if isinstance(p, dict)))
    return found


def system_text(received: Received) -> str:
    system = received.get("system")
    if isinstance(system, list):
        return "".join(b.get("text", "") for b in system if isinstance(b, dict))
    return str(system or "")


def is_subagent(received: Received) -> bool:
    """Claude Code marks a subagent's requests in its billing line too (the header is not forwarded upstream)."""
    return "cc_is_subagent=true" in system_text(received)


def has_web_search(received: Received) -> bool:
    return any(str(t.get("type", "")).startswith("web_search") for t in received.get("tools") or [])


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, FakeUpstream]]:
    started = {name: FakeUpstream().start() for name in ROUTES}
    yield started
    for upstream in started.values():
        upstream.stop()


@pytest.fixture
def fresh(ups: dict[str, FakeUpstream]) -> dict[str, FakeUpstream]:
    for upstream in ups.values():
        upstream.reset()
    return ups


def anthropic_gateway(folder: Path, ups: dict[str, FakeUpstream], additions: list[list[str]], *args: str) -> Gateway:
    """The anthropic preset (Claude ids -> the main fake) grown with `add-model` calls, started."""
    init_gateway(folder, "anthropic", "--api-base", f"anthropic={ups['main'].url}",
                 "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}")  # fmt: skip
    for flags in additions:
        result = run_cli("add-model", *flags, "--dir", str(folder))
        assert result.returncode == 0, result.stderr
    env = cli_env(folder, ZAI_API_KEY=ZAI_KEY, KIMI_API_KEY="sk-kimi-0123456789abcdefgh",
                  OPENROUTER_API_KEY="sk-or-0123456789abcdefghij")  # fmt: skip
    return start_gateway(folder, *args, env=env)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, FakeUpstream]) -> Iterator[Gateway]:
    additions = [
        ["glm-fast", "--provider", "zai", "--model", "glm-5-air", "--api-base", ups["fast"].url,
         "--for", "subagent", "--for", "background"],
        ["kimi-long", "--provider", "kimi", "--model", "kimi-k3", "--api-base", ups["long"].url,
         "--for", "long-context", "--above-tokens", str(LONG_ABOVE)],
        ["vision", "--provider", "openrouter", "--model", "qwen/qwen-vl", "--api-base", f"{ups['vision'].url}/v1",
         "--for", "image"],
        ["glm", "--provider", "zai", "--model", "glm-5", "--api-base", ups["glm"].url],
    ]  # fmt: skip
    gateway = anthropic_gateway(tmp_path_factory.mktemp("routing"), ups, additions, "--log-level", "debug")
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def claude() -> str:
    path = claude_new()
    if path is None:
        pytest.skip("the Claude Code CLI is not installed")
    return path


def run_claude(
    claude: str, gw: Gateway, tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = claude_env(gw, home)
    return subprocess.run([claude, "-p", *args], cwd=work, env=env, input=stdin, capture_output=True, text=True,
                          timeout=240)  # fmt: skip


def messages(gw: Gateway, model: str, content: object, **body: object) -> httpx.Response:
    payload = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": content}], **body}
    headers = {**gw.headers(), "anthropic-version": "2023-06-01", **body.pop("headers", {})}  # type: ignore[arg-type]
    return httpx.post(f"{gw.url}/v1/messages", json=payload, headers=headers, timeout=60)


# --------------------------------------------------------------------------- the real CLI


def growing_session(received: Received) -> Reply:
    """Ask for a Bash call printing BASH_CHARS characters, BASH_TURNS times, then finish."""
    done = len(tool_results(received))
    if "Bash" in received.tool_names and done < BASH_TURNS:
        command = f"head -c {BASH_CHARS} /dev/zero | tr '\\0' {'abcdefgh'[done]}"
        return Reply(tool="Bash", input={"command": command, "description": f"print block {done}"})
    return Reply(text=f"Finished after {done} blocks.")


def test_a_growing_session_moves_to_the_long_context_route_at_the_first_request_past_n(claude, gw, fresh, tmp_path):
    for name in ("main", "long"):
        fresh[name].default = growing_session
    result = run_claude(claude, gw, tmp_path, "Print the blocks.", "--allowedTools", "Bash")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{gw.log()[-3000:]}"
    assert f"Finished after {BASH_TURNS} blocks." in result.stdout
    turns = sorted(
        ((len(tool_results(r)), estimate_tokens(r.json), name, r) for name in ("main", "long")
         for r in fresh[name].requests if r.api == "messages" and "Bash" in r.tool_names),
        key=lambda t: t[0],
    )  # fmt: skip
    table = [(done, tokens, name) for done, tokens, name, _ in turns]
    assert [t[0] for t in turns] == list(range(BASH_TURNS + 1)), table
    assert {name for _, _, name in table} == {"main", "long"}, table  # the threshold falls inside the session
    for _, tokens, name in table:  # before N on the main route, from the first request past N on the long one
        assert name == ("long" if tokens > LONG_ABOVE else "main"), table
    errors = [(tokens - fake_count(r)) / fake_count(r) for _, tokens, _, r in turns]
    print("estimate vs the fake upstream's count:", [(tokens, fake_count(r)) for _, tokens, _, r in turns])
    assert max(map(abs, errors)) < 0.15, [round(e, 3) for e in errors]  # against the fake upstream's count
    log = gw.log()
    assert "rule=long_context" in log and "rule=-" in log
    assert re.search(r"rule long_context \(line \d+\): no: ~[\d,]+ tokens is not above 30,000", log)  # at debug
    assert re.search(r"rule long_context \(line \d+\): fired: ~[\d,]+ tokens is above 30,000", log)


def fake_count(received: Received) -> int:
    """What the fake upstream's count_tokens answers for this body."""
    body = received.json
    return len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")])) // 4


def delegating(received: Received) -> Reply:
    """The main turn calls the Agent tool once; the subagent answers; the main turn finishes."""
    if is_subagent(received):
        return Reply(text="PINEAPPLE")
    if tool_results(received):
        return Reply(text=f"The subagent said: {tool_results(received)[-1][:40]}")
    if "Agent" in received.tool_names:
        task = {"description": "say the word", "prompt": "Say PINEAPPLE.", "subagent_type": "general-purpose",
                "run_in_background": False}  # fmt: skip
        return Reply(tool="Agent", input=task)
    return Reply(text="no agent tool offered")


def test_a_subagent_run_goes_to_the_subagent_route_while_the_main_turn_stays(claude, gw, fresh, tmp_path):
    for name in ("main", "fast"):
        fresh[name].default = delegating
    result = run_claude(claude, gw, tmp_path, "Delegate to a subagent.", "--allowedTools", "Agent")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{gw.log()[-3000:]}"
    main = [r for r in fresh["main"].requests if r.api == "messages"]
    fast = [r for r in fresh["fast"].requests if r.api == "messages"]
    assert fast and all(is_subagent(r) for r in fast), [system_text(r)[:120] for r in fast]
    assert len(main) >= 2 and not any(is_subagent(r) for r in main)
    assert any("PINEAPPLE" in "".join(tool_results(r)) for r in main)
    assert "rule=subagent" in gw.log()


def test_an_image_prompt_goes_to_the_vision_route(claude, gw, fresh, tmp_path):
    fresh["vision"].default = lambda r: Reply(text="I see a red square.")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(png()).decode()}}  # fmt: skip
    prompt = {
        "type": "user",
        "message": {"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]},
    }
    result = run_claude(claude, gw, tmp_path, "--input-format", "stream-json", "--output-format", "stream-json",
                        "--verbose", stdin=json.dumps(prompt) + "\n")  # fmt: skip
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr}\n{gw.log()[-3000:]}"
    assert "I see a red square." in result.stdout
    seen = [r for r in fresh["vision"].requests if r.api == "chat"]
    assert seen and "image_url" in seen[0].body.decode()  # translated to chat completions, image and all
    assert not [r for r in fresh["main"].requests if b'"image"' in r.body]
    assert "rule=image" in gw.log()


def web_search_session(received: Received) -> Reply | Fault:
    """Claude Code's web search: load the WebSearch tool, call it, then answer; refuse the server tool."""
    if has_web_search(received):  # what a third-party Anthropic-compatible endpoint does with the server tool
        return Fault(400, "tools.0: unknown tool type 'web_search_20250305'")
    if not received.get("tools"):
        return Reply(text="Search results: nothing found.")
    results = tool_results(received)
    if "WebSearch" in received.tool_names and not any("Web search results" in r for r in results):
        return Reply(tool="WebSearch", input={"query": "cc-gateway routing rules"})
    if "ToolSearch" in received.tool_names and not results:
        return Reply(tool="ToolSearch", input={"query": "select:WebSearch"})
    return Reply(text="Search done: " + (results[-1][:300] if results else "no results"))


def test_a_web_search_request_to_a_non_anthropic_route_gets_no_upstream_400(claude, gw, fresh, tmp_path):
    fresh["glm"].default = web_search_session
    result = run_claude(claude, gw, tmp_path, "Search the web for cc-gateway.", "--model", "glm",
                        "--allowedTools", "WebSearch,ToolSearch")  # fmt: skip
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{gw.log()[-3000:]}"
    sent = [r for r in fresh["glm"].requests if r.api == "messages"]
    assert sent and not any(has_web_search(r) for r in sent)  # the tool never reached the upstream
    searched = [r for r in sent if not r.get("tools") and "Perform a web search" in json.dumps(r.get("messages"))]
    assert searched, [r.tool_names[:3] for r in sent]
    assert NOTICE in result.stdout  # the one line reached the main conversation, and the user
    assert "API Error" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- SDK-level checks


@pytest.fixture(scope="module")
def plain_gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, FakeUpstream]) -> Iterator[Gateway]:
    """The anthropic preset plus a text-only glm route, and no routing rules."""
    glm = ["glm", "--provider", "zai", "--model", "glm-5", "--api-base", ups["glm"].url]
    gateway = anthropic_gateway(tmp_path_factory.mktemp("plain"), ups, [glm])
    yield gateway
    gateway.stop()


IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png()).decode()},
}


def test_an_image_to_a_text_only_route_without_a_rule_is_refused_naming_a_route_that_takes_images(plain_gw, fresh):
    answer = messages(plain_gw, "glm", [IMAGE, {"type": "text", "text": "what is it?"}])
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("route glm does not take images (routes that take images: claude-sonnet-5, ")
    assert "claude-*); add '- image: claude-sonnet-5' to routing_rules in config.yaml" in error["message"]
    assert not fresh["glm"].requests and not fresh["main"].requests
    assert messages(plain_gw, "claude-sonnet-5-5", [IMAGE]).status_code == 200  # a route that takes them


def test_without_a_rule_the_web_search_tool_is_removed_and_the_answer_says_so(plain_gw, fresh):
    fresh["glm"].default = web_search_session
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}]
    for stream in (False, True):
        answer = messages(plain_gw, "glm", "Perform a web search for the query: x", tools=tools, stream=stream)
        assert answer.status_code == 200, answer.text
        assert NOTICE in answer.text
    assert len(fresh["glm"].requests) == 2 and not any(has_web_search(r) for r in fresh["glm"].requests)
    kept = messages(plain_gw, "claude-sonnet-5-5", "search", tools=tools)  # Anthropic runs it: left alone
    assert kept.status_code == 200 and has_web_search(fresh["main"].requests[-1]) and NOTICE not in kept.text


def test_background_calls_go_to_the_fast_route(gw, fresh):
    answer = messages(gw, "claude-haiku-5-5", "Write a 3-word title for: fixing tests")
    assert answer.status_code == 200, answer.text
    assert [r.model for r in fresh["fast"].requests] == ["glm-5-air"] and not fresh["main"].requests
    with_tools = messages(gw, "claude-haiku-5-5", "hi", tools=[{"name": "Bash", "input_schema": {"type": "object"}}])
    assert with_tools.status_code == 200 and [r.model for r in fresh["main"].requests] == ["claude-haiku-5-5"]
