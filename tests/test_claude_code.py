"""The real Claude Code CLI through `cc-gateway serve`: one turn with a Bash tool call, per preset.

The fake upstream asks for a Bash command that writes a marker file; Claude Code runs it, sends
the tool result back, and the fake upstream answers with text quoting it. Claude Code's small
side requests (titles and the like) get a plain reply.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Gateway, claude_bin, claude_bin_oldest, init_gateway, start_gateway
from fakeupstream import FakeUpstream, Received, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

PROVIDER_KEY = "sk-provider-" + "Cc9Lq2Vn" * 4
TOKEN = "cc-gateway-marker-7f3a"


def tool_results(received: Received) -> list[str]:
    """Every tool result in the request's history, in any of the upstream formats."""
    found = []
    for message in received.get("messages") or received.get("input") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            found.append(_text(message.get("content")))
        elif message.get("type") == "function_call_output":
            found.append(_text(message.get("output")))
        elif isinstance(message.get("content"), list):
            found += [_text(b.get("content")) for b in message["content"] if b.get("type") == "tool_result"]
    return found


def _text(content: object) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def turn(received: Received) -> Reply:
    """Ask for the Bash call once, answer with its result after; plain text for side requests."""
    results = tool_results(received)
    if results:
        return Reply(text=f"Done. The marker file says: {results[-1].strip()}")
    if "Bash" in received.tool_names:
        command = f"echo {TOKEN} > marker.txt && cat marker.txt"
        return Reply(tool="Bash", input={"command": command, "description": "Write the marker file"})
    return Reply(text="Marker test")


UPSTREAM = {
    "anthropic": (
        "messages",
        lambda url: ["--api-base", f"anthropic={url}", "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}"],
    ),
    "openai-backed": (
        "chat",
        lambda url: ["--api-base", f"openai={url}/v1", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}"],
    ),
}


def claude_env(gateway: Gateway, home: Path) -> dict[str, str]:
    """Claude Code's environment: a fresh HOME, the gateway as its API, no non-essential traffic."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": gateway.key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


@pytest.fixture(scope="module", params=["newest", "oldest"])
def claude(request: pytest.FixtureRequest) -> str:
    """The Claude Code CLI binary: each test here runs on the newest tested and the oldest supported release."""
    path = claude_bin() if request.param == "newest" else claude_bin_oldest()
    if path is None:
        pytest.skip(f"the {request.param} Claude Code CLI is not installed (scripts/test.sh installs it)")
    return path


@pytest.mark.parametrize("preset", list(UPSTREAM))
def test_claude_code_runs_a_bash_tool_call_through_the_gateway(
    preset: str, claude: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    api, flags = UPSTREAM[preset]
    folder = init_gateway(tmp_path / "gateway", preset, *flags(upstream.url))
    gateway: Gateway = start_gateway(folder)
    try:
        upstream.reset()
        upstream.default = turn
        work, home = tmp_path / "work", tmp_path / "home"
        work.mkdir()
        home.mkdir()
        env = claude_env(gateway, home)
        result = subprocess.run(
            [claude, "-p", "Write the marker file, then tell me what it says.", "--allowedTools", "Bash"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        sent = [r for r in upstream.requests if r.api in ("chat", "responses", "messages")]
    finally:
        upstream.reset()
        assert gateway.stop() == 0
    summary = json.dumps([[r.path, r.model, r.tool_names[:3], bool(tool_results(r))] for r in sent])
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{gateway.log()[-3000:]}"
    assert f"The marker file says: {TOKEN}" in result.stdout, summary
    assert (work / "marker.txt").read_text() == f"{TOKEN}\n"
    assert {r.api for r in sent} == {api}, summary  # openai-backed: chat completions, never Responses
    assert any(tool_results(r) == [TOKEN] or TOKEN in "".join(tool_results(r)) for r in sent), summary
    assert all(gateway.key not in r.body.decode() + json.dumps(r.headers) for r in sent)


def test_claude_code_gets_the_demo_reply(claude: str, tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "gateway", "demo")
    gateway: Gateway = start_gateway(folder)
    try:
        home = tmp_path / "home"
        home.mkdir()
        env = claude_env(gateway, home)
        result = subprocess.run(
            [claude, "-p", "hello"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        assert gateway.stop() == 0
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Hello from the cc-gateway demo." in result.stdout
