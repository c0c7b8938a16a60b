"""Measure what the multi-provider runtime adds per request, and the pool under a rate-limited credential.

    .venv/bin/python bench/pool_bench.py [--requests 200] [--concurrency 16]

One `cc-gateway serve` (multi-provider preset, pool of three credentials) in front of one fake
upstream per provider (tests/fakeupstream.py). Scenarios, each `--requests` non-streamed
/v1/messages requests at `--concurrency`:

- glm: a third-party route (credential stripping, thinking hygiene, answer stripping);
- claude rotate: the pool picks a credential per request;
- claude rotate, one credential 429: the first request on it gets 429 (Retry-After 60) and moves on
  to the next credential; the credential then rests for the whole run;
- claude passthrough: the client's own token.

Prints requests/s, median and p95 latency, and the client-visible errors of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import cli_env, init_gateway, start_gateway  # noqa: E402
from fakeupstream import FakeUpstream, Fault, Received, Reply  # noqa: E402

POOL = ["sk-ant-oat01-bench-A-" + "a" * 24, "sk-ant-api03-bench-B-" + "b" * 24, "sk-ant-oat01-bench-C-" + "c" * 24]
STATIC = "bench-static-token-0123456789"
CLIENT = "sk-ant-oat01-bench-client-" + "d" * 20


async def scenario(url: str, model: str, headers: dict, requests: int, concurrency: int) -> tuple[float, list, int]:
    """Send the requests; return (elapsed, latencies, errors)."""
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0
    body = {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    sent = {"x-litellm-api-key": STATIC, "anthropic-version": "2023-06-01", **headers}

    async with httpx.AsyncClient(timeout=120) as client:

        async def one() -> None:
            nonlocal errors
            async with limit:
                started = time.perf_counter()
                response = await client.post(f"{url}/v1/messages", json=body, headers=sent)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return time.perf_counter() - started, latencies, errors


def report(name: str, elapsed: float, latencies: list[float], errors: int) -> None:
    """Print one scenario's line."""
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{name:<34} {len(latencies) / elapsed:7.1f} req/s   median {statistics.median(ordered):6.1f} ms"
        f"   p95 {p95:6.1f} ms   errors {errors}"
    )


def main() -> None:
    """Run the scenarios against a fresh gateway."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    ups = {name: FakeUpstream().start() for name in ("anthropic", "zai", "kimi", "openrouter")}
    folder = Path(tempfile.mkdtemp(prefix="pool-bench-"))
    flags = [f"--api-base={name}={up.url}" for name, up in ups.items() if name != "openrouter"]
    flags += [f"--api-base=openrouter={ups['openrouter'].url}/v1", "--key", "ZAI_API_KEY=zai-bench-0123456789abcdef"]
    flags += ["--key", f"PROXY_STATIC_TOKEN={STATIC}", "--key", f"CLAUDE_OAUTH_TOKENS={','.join(POOL)}"]
    init_gateway(folder, "multi-provider", *flags)
    gateway = start_gateway(folder, "--log-level", "warning", env=cli_env(folder))
    try:
        asyncio.run(scenario(gateway.url, "glm", {}, 20, 4))  # warm-up: each route's client starts lazily
        asyncio.run(scenario(gateway.url, "claude-sonnet-4-5", {}, 20, 4))
        runs = [
            ("glm (third party)", "glm", {}),
            ("claude rotate", "claude-sonnet-4-5", {}),
            ("claude passthrough", "claude-sonnet-4-5", {"authorization": f"Bearer {CLIENT}",
                                                          "x-claude-token-mode": "passthrough"}),
        ]  # fmt: skip
        for name, model, headers in runs:
            report(name, *asyncio.run(scenario(gateway.url, model, headers, args.requests, args.concurrency)))

        def rate_limit_b(received: Received) -> Reply | Fault:
            if received.headers.get("x-api-key") == POOL[1]:
                return Fault(429, "bench", headers={"retry-after": "60"})
            return Reply(text="ok")

        ups["anthropic"].reset()
        ups["anthropic"].script(rate_limit_b, times=None)
        result = asyncio.run(scenario(gateway.url, "claude-sonnet-4-5", {}, args.requests, args.concurrency))
        report("claude rotate, one credential 429", *result)
        used_b = sum(r.headers.get("x-api-key") == POOL[1] for r in ups["anthropic"].requests)
        print(f"requests that reached the rate-limited credential: {used_b}")
    finally:
        gateway.stop()
        for up in ups.values():
            up.stop()


if __name__ == "__main__":
    main()
