"""Measure the oauth-bridge's own overhead: time to first token through gateway + bridge minus the CLI alone.

    .venv/bin/python bench/bridge_bench.py [--runs 8]

Both paths talk to the same fake Anthropic upstream (tests/fakeupstream.py, reply streamed in 8 parts):

- direct: the Claude Code CLI bundled with claude-agent-sdk, run as
  `claude -p PROMPT --output-format stream-json --include-partial-messages ...` (a fresh process per
  run, the way the bridge starts one), timed from spawn to the first text delta on stdout;
- SDK alone: the bridge's own CliProcess (claude-agent-sdk, same options) in this process, no
  LiteLLM, no HTTP: tells the SDK's share of the overhead from the gateway's;
- bridge, cold: openai SDK -> `cc-gateway serve` (oauth-bridge) with CC_BRIDGE_WARM=0, so every
  request starts its own CLI;
- bridge, warm: the same with CC_BRIDGE_WARM=1 (default): after each answer the bridge starts a spare
  CLI for the request the client most likely sends next; runs pause so the spare is ready, as
  between a person's messages. Measured for a stateless client (same system prompt, new question)
  and for a chat (the history grows by one exchange each run).

Prints the median and p90 of each and the overhead (bridge median minus direct median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import cli_env, init_gateway, start_gateway  # noqa: E402
from fakeupstream import FakeUpstream, Reply  # noqa: E402

API_KEY = "sk-ant-api03-" + "Qx7Lm2Pw" * 10
MODEL = "claude-sonnet-4-5-20250929"
PAUSE = 4.0  # seconds between runs: a spare CLI is ready by then


def bundled_cli() -> str:
    """Path of the Claude Code CLI that claude-agent-sdk bundles."""
    import claude_agent_sdk

    return str(Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude")


def direct_ttft(upstream: FakeUpstream, home: Path) -> float:
    """Seconds from spawning the CLI to its first text delta."""
    env = cli_env(
        home,
        ANTHROPIC_BASE_URL=upstream.url,
        ANTHROPIC_API_KEY=API_KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    command = [bundled_cli(), "-p", "hello", "--output-format", "stream-json", "--verbose"]
    command += ["--include-partial-messages", "--model", MODEL, "--tools", "", "--max-turns", "1"]
    command += ["--setting-sources=", "--system-prompt", "Be brief."]
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=home) as cli:
        for line in cli.stdout:
            event = json.loads(line).get("event") or {}
            if (event.get("delta") or {}).get("type") == "text_delta":
                first = time.perf_counter() - start
                break
        else:
            raise RuntimeError("the CLI printed no text delta")
        cli.stdout.read()
    return first


def sdk_ttft(upstream: FakeUpstream) -> float:
    """Seconds to the first text delta through the bridge's own CLI handling, without LiteLLM or HTTP."""
    import asyncio

    from cc_gateway.runtime.bridge.checks import BridgeSettings
    from cc_gateway.runtime.bridge.messages import translate
    from cc_gateway.runtime.bridge.process import CliProcess, Launch

    settings = BridgeSettings.from_env({"ANTHROPIC_API_KEY": API_KEY, "CC_BRIDGE_ANTHROPIC_BASE_URL": upstream.url})
    conversation = translate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}])

    async def once() -> float:
        start = time.perf_counter()
        process = CliProcess(settings, Launch(MODEL, conversation, None))
        try:
            await process.start()
            async for message in process.ask(conversation.prompt):
                if ((getattr(message, "event", None) or {}).get("delta") or {}).get("type") == "text_delta":
                    return time.perf_counter() - start
            raise RuntimeError("no text delta")
        finally:
            await process.close()

    return asyncio.run(once())


def bridge_ttft(client: openai.OpenAI, messages: list[dict[str, str]]) -> tuple[float, str]:
    """Seconds from sending a streamed request to its first content chunk, and the whole answer."""
    start = time.perf_counter()
    first, text = None, ""
    for chunk in client.chat.completions.create(model="sonnet", messages=messages, stream=True):
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            first = first or time.perf_counter() - start
            text += delta
    return first, text


def run_gateway(tmp: Path, upstream: FakeUpstream, warm: str, runs: int) -> dict[str, list[float]]:
    """Start an oauth-bridge gateway with CC_BRIDGE_WARM=warm and time stateless and chat requests."""
    folder = init_gateway(
        tmp / f"gateway-{warm}", "oauth-bridge", "--key", f"ANTHROPIC_API_KEY={API_KEY}",
        "--api-base", f"CC_BRIDGE_ANTHROPIC_BASE_URL={upstream.url}",
    )  # fmt: skip
    home = tmp / f"home-{warm}"
    home.mkdir()
    gateway = start_gateway(folder, env=cli_env(home, CC_BRIDGE_WARM=warm), ready_timeout=180)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0)
    figures: dict[str, list[float]] = {"stateless": [], "chat": []}
    try:
        system = {"role": "system", "content": "Be brief."}
        bridge_ttft(client, [system, {"role": "user", "content": "warm-up"}])  # LiteLLM's first-request set-up
        time.sleep(PAUSE)
        for number in range(runs):
            figures["stateless"].append(bridge_ttft(client, [system, {"role": "user", "content": f"q{number}"}])[0])
            time.sleep(PAUSE)
        chat = [system]
        for number in range(runs):
            chat.append({"role": "user", "content": f"turn {number}"})
            seconds, answer = bridge_ttft(client, chat)
            figures["chat"].append(seconds)
            chat.append({"role": "assistant", "content": answer})
            time.sleep(PAUSE)
    finally:
        gateway.stop()
    return figures


def summary(values: list[float]) -> str:
    """Median and p90 in milliseconds."""
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(values) * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms"


def main() -> None:
    """Time the direct CLI and the bridge (cold and warm); print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with FakeUpstream() as upstream, tempfile.TemporaryDirectory() as name:
        upstream.default = Reply(text="a reply that the fake upstream streams in eight parts", chunks=8)
        tmp = Path(name)
        direct_home = tmp / "direct-home"
        direct_home.mkdir()
        direct_ttft(upstream, direct_home)  # first run warms the page cache for the 200+ MB binary
        direct = [direct_ttft(upstream, direct_home) for _ in range(args.runs)]
        sdk = [sdk_ttft(upstream) for _ in range(args.runs)]
        cold = run_gateway(tmp, upstream, "0", args.runs)
        warm = run_gateway(tmp, upstream, "1", args.runs)
    base = statistics.median(direct)
    print(f"time to first token, {args.runs} runs each (fake upstream, {os.cpu_count()} CPUs)")
    print(f"  direct CLI (-p, stream-json)       {summary(direct)}")
    rows = [
        ("SDK alone (bridge's CliProcess)", sdk),
        ("bridge cold, stateless", cold["stateless"]),
        ("bridge cold, chat", cold["chat"]),
        ("bridge warm, stateless", warm["stateless"]),
        ("bridge warm, chat", warm["chat"]),
    ]
    for label, values in rows:
        overhead = (statistics.median(values) - base) * 1000
        print(f"  {label:<34} {summary(values)}   overhead {overhead:+6.0f} ms")


if __name__ == "__main__":
    main()
