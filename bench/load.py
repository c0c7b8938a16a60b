"""Load `cc-gateway serve` with concurrent streamed /v1/messages and report what the clients saw.

    .venv/bin/python bench/load.py                      # 50 streams for 60 s, then 10,000 requests for RSS
    .venv/bin/python bench/load.py --seconds 10 --rss-requests 1000   # a quick look
    .venv/bin/python bench/load.py --preset openai-backed            # through LiteLLM's translation

The fake upstream runs as its own process (`tests/fakeupstream.py --chunks 64 --chunk-delay-ms 20`),
the gateway is a real `cc-gateway serve` on a folder made by `cc-gateway init`, and this process is
the client (asyncio + httpx). Reported:
- errors, incomplete streams (no message_stop) and streams whose assembled text differs from what
  the fake sends for the same request fetched directly (byte-exact check);
- the largest gap between two content chunks minus the fake's 20 ms pacing ("added gap"), and the
  same figure measured directly against the fake, for reference;
- time to first byte p50/p99 through the gateway and directly, and the difference (added TTFB);
- the gateway's resident memory (RSS of its process tree) before and after N more requests.
`tests/test_reliability.py` imports `run_streams` for its short version of the same check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHUNKS = 64
CHUNK_DELAY = 0.020
FAKE_KEY = "sk-fake-upstream-key-0123456789abcdef"
UPSTREAM_MODEL = {"anthropic": "claude-sonnet-5", "openai-backed": "gpt-5"}


@dataclass
class Stream:
    """What one client saw of one streamed request."""

    status: int = 0
    text: str = ""
    complete: bool = False  # message_stop (or [DONE]) arrived
    error: str | None = None
    ttfb: float = 0.0  # seconds to the first body byte
    gaps: list[float] = field(default_factory=list)  # seconds between consecutive content chunks


@dataclass
class Report:
    """Every stream of a run, plus the text each one should have carried."""

    streams: list[Stream]
    expected: str
    seconds: float

    @property
    def failures(self) -> list[str]:
        """One line per stream that failed, was incomplete, or differs from the expected text."""
        out = []
        for s in self.streams:
            if s.status != 200 or s.error:
                out.append(f"HTTP {s.status}: {s.error}")
            elif not s.complete:
                out.append(f"incomplete stream ({len(s.text)} chars)")
            elif s.text != self.expected:
                out.append(f"text differs: {s.text!r} != {self.expected!r}")
        return out

    @property
    def max_gap(self) -> float:
        """The largest gap between two content chunks in any stream (seconds)."""
        return max((g for s in self.streams for g in s.gaps), default=0.0)

    def gap(self, q: float) -> float:
        """A percentile (0-100) of the gaps between content chunks, in seconds."""
        values = sorted(g for s in self.streams for g in s.gaps)
        return values[min(len(values) - 1, int(len(values) * q / 100))] if values else 0.0

    def ttfb(self, q: float) -> float:
        """A percentile (0-100) of time to first byte, in seconds."""
        values = sorted(s.ttfb for s in self.streams if s.status == 200)
        return values[min(len(values) - 1, int(len(values) * q / 100))] if values else float("nan")


def content_of(event: dict) -> str | None:
    """The generated text an SSE event carries (Anthropic messages or OpenAI chat), else None."""
    if event.get("type") == "content_block_delta":
        return (event.get("delta") or {}).get("text")
    choices = event.get("choices")
    if choices:
        return (choices[0].get("delta") or {}).get("content")
    return None


async def stream_once(client: httpx.AsyncClient, url: str, headers: dict, body: dict) -> Stream:
    """Send one streamed request and record its text, completeness, TTFB and chunk gaps."""
    result, started, last = Stream(), time.perf_counter(), None
    try:
        async with client.stream("POST", url, headers=headers, json={**body, "stream": True}) as response:
            result.status = response.status_code
            async for line in response.aiter_lines():
                now = time.perf_counter()
                result.ttfb = result.ttfb or now - started
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    result.complete = True
                    continue
                event = json.loads(data)
                if event.get("type") == "error" or "error" in event:
                    result.error = json.dumps(event)[:300]
                elif event.get("type") == "message_stop":
                    result.complete = True
                piece = content_of(event)
                if piece:
                    if last is not None:
                        result.gaps.append(now - last)
                    last = now
                    result.text += piece
    except (httpx.HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def run_streams(
    url: str, headers: dict, body: dict, *, concurrency: int, seconds: float, expected: str, timeout: float = 120
) -> Report:
    """Keep `concurrency` streams in flight for `seconds`; every stream started is waited for."""
    streams: list[Stream] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                streams.append(await stream_once(client, url, headers, body))

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Report(streams, expected, time.monotonic() - started)


async def hammer(url: str, headers: dict, body: dict, *, concurrency: int, count: int) -> int:
    """Send `count` non-streamed requests, `concurrency` at a time; return how many failed."""
    failed = 0
    remaining = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal failed
            for _ in remaining:
                try:
                    response = await client.post(url, headers=headers, json=body)
                    failed += response.status_code != 200
                except httpx.HTTPError:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


# --------------------------------------------------------------------------- processes (bench only)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, deadline: float, process: subprocess.Popen) -> None:
    """Poll url until it answers 200 (or the process dies / the deadline passes)."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:4]} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready in time")


def start_fake(port: int, log: Path) -> subprocess.Popen:
    """Start tests/fakeupstream.py as its own process, pacing 64 chunks 20 ms apart."""
    command = [sys.executable, str(ROOT / "tests" / "fakeupstream.py"), "--port", str(port)]
    command += ["--chunks", str(CHUNKS), "--chunk-delay-ms", str(CHUNK_DELAY * 1000)]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/v1/models", time.monotonic() + 30, process)
    return process


def start_gateway(work: Path, preset: str, fake: str, port: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """`cc-gateway init` a folder pointing at the fake, then `cc-gateway serve` it; return (process, key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "LITELLM_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["HOME"] = str(work)
    folder = work / "gateway"
    provider, key_var, base = {
        "anthropic": ("anthropic", "ANTHROPIC_API_KEY", fake),
        "openai-backed": ("openai", "OPENAI_API_KEY", f"{fake}/v1"),
    }[preset]
    cli = [sys.executable, "-m", "cc_gateway"]
    init = [*cli, "init", "--preset", preset, "--dir", str(folder), "--yes", "--port", str(port)]
    init += ["--api-base", f"{provider}={base}", "--key", f"{key_var}={FAKE_KEY}"]
    subprocess.run(init, env=env, check=True, capture_output=True)
    key = next(line.split("=", 1)[1] for line in (folder / ".env").read_text().splitlines()
               if line.startswith("LITELLM_MASTER_KEY="))  # fmt: skip
    serve = [*cli, "serve", "--dir", str(folder), "--port", str(port), *extra]
    process = subprocess.Popen(serve, env=env, stdout=(work / "serve.log").open("w"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", time.monotonic() + 180, process)
    return process, key


def rss_mb(pid: int) -> tuple[float, int]:
    """Resident memory of a process and its children, in MiB, and how many processes that is."""
    import psutil

    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    return sum(p.memory_info().rss for p in tree) / 2**20, len(tree)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its children."""
    import psutil

    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


# --------------------------------------------------------------------------- the bench


def ms(seconds: float) -> str:
    """Seconds as a millisecond figure."""
    return f"{seconds * 1000:.0f} ms"


def print_report(label: str, report: Report) -> None:
    """One block of figures for a run."""
    failures = report.failures
    print(f"{label}: {len(report.streams)} streams in {report.seconds:.0f} s, {len(failures)} failed")
    for line in sorted(set(failures))[:5]:
        print(f"  - {line}")
    print(f"  TTFB p50 {ms(report.ttfb(50))}, p99 {ms(report.ttfb(99))}")
    print(f"  gap between chunks: p50 {ms(report.gap(50))}, p99 {ms(report.gap(99))}, "
          f"p99.9 {ms(report.gap(99.9))}, max {ms(report.max_gap)} (pacing {ms(CHUNK_DELAY)})")  # fmt: skip


def expected_text(fake: str, preset: str) -> str:
    """What the fake sends for the gateway's upstream request, fetched directly (the reference)."""
    path, body = direct_request(fake, preset)
    return asyncio.run(fetch_text(fake + path, {}, body))


async def fetch_text(url: str, headers: dict, body: dict) -> str:
    """The text of one streamed response."""
    async with httpx.AsyncClient(timeout=60) as client:
        return (await stream_once(client, url, headers, body)).text


def direct_request(fake: str, preset: str) -> tuple[str, dict]:
    """The request the gateway sends upstream for the bench's /v1/messages (path, body)."""
    model = UPSTREAM_MODEL[preset]
    if preset == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 256, "messages": BODY["messages"]}
    return "/v1/chat/completions", {"model": model, "messages": BODY["messages"]}


BODY = {"model": "claude-sonnet-5", "max_tokens": 256, "messages": [{"role": "user", "content": "hello"}]}


def main() -> None:
    """Run the load, print the figures, exit 1 if any stream failed or the added gap is over 200 ms."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="anthropic", choices=sorted(UPSTREAM_MODEL))
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rss-requests", type=int, default=10_000)
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `serve` argument (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cc-load-") as tmp:
        work = Path(tmp)
        fake_port, gw_port = free_port(), free_port()
        fake_proc = start_fake(fake_port, work / "fake.log")
        fake = f"http://127.0.0.1:{fake_port}"
        gw_proc, key = start_gateway(work, args.preset, fake, gw_port, args.serve_arg)
        try:
            ok = bench(args, fake, f"http://127.0.0.1:{gw_port}", key, gw_proc.pid)
        finally:
            gw_proc.terminate()
            gw_proc.wait(timeout=60)
            fake_proc.terminate()
    sys.exit(0 if ok else 1)


def bench(args: argparse.Namespace, fake: str, gateway: str, key: str, pid: int) -> bool:
    """The measurements; returns whether the gateway met the bar."""
    expected = expected_text(fake, args.preset)
    path, body = direct_request(fake, args.preset)
    print(f"preset {args.preset}, {args.concurrency} concurrent streams, {CHUNKS} chunks {ms(CHUNK_DELAY)} apart")
    direct = asyncio.run(
        run_streams(
            fake + path, {}, body, concurrency=args.concurrency, seconds=min(args.seconds, 15), expected=expected
        )
    )
    print_report("direct to the fake upstream", direct)
    headers = {"Authorization": f"Bearer {key}"}
    rss_before, processes = rss_mb(pid)
    warm = asyncio.run(
        run_streams(gateway + "/v1/messages", headers, BODY, concurrency=args.concurrency, seconds=5, expected=expected)
    )  # LiteLLM imports parts of itself on first use: warm up before measuring
    print_report("warm-up through cc-gateway (not in the figures below)", warm)
    cpu_before = cpu_seconds(pid)
    report = asyncio.run(
        run_streams(gateway + "/v1/messages", headers, BODY, concurrency=args.concurrency, seconds=args.seconds,
                    expected=expected)
    )  # fmt: skip
    print_report("through cc-gateway", report)
    busy = (cpu_seconds(pid) - cpu_before) / report.seconds
    print(f"  gateway CPU: {busy:.2f} cores busy on average ({os.cpu_count()} on this machine)")
    added_gap = report.max_gap - CHUNK_DELAY
    print(f"  added gap (max gap - pacing): {ms(added_gap)}; direct: {ms(direct.max_gap - CHUNK_DELAY)}")
    print(f"  added TTFB: p50 {ms(report.ttfb(50) - direct.ttfb(50))}, p99 {ms(report.ttfb(99) - direct.ttfb(99))}")
    rss_mid, _ = rss_mb(pid)
    started = time.monotonic()
    failed = asyncio.run(hammer(gateway + "/v1/messages", headers, BODY, concurrency=args.concurrency,
                                count=args.rss_requests))  # fmt: skip
    rss_after, _ = rss_mb(pid)
    print(f"{args.rss_requests} more requests (not streamed) in {time.monotonic() - started:.0f} s, {failed} failed")
    print(f"  RSS of the gateway ({processes} process(es)): {rss_before:.0f} MiB before the load, {rss_mid:.0f} MiB after the streams, "
          f"{rss_after:.0f} MiB after the requests (growth {rss_after - rss_mid:+.0f} MiB)")  # fmt: skip
    return not warm.failures and not report.failures and not failed and added_gap < 0.200


if __name__ == "__main__":
    main()
