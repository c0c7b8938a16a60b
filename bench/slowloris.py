"""Slow clients against `cc-gateway serve`: half-open connections held while real requests are served.

    .venv/bin/python bench/slowloris.py                       # 800 half-open connections, 1 worker
    .venv/bin/python bench/slowloris.py --slow 300 --header-timeout 5

A real gateway (openai-backed, `cc-gateway init` + `serve`) in front of tests/fakeupstream.py as
its own process. Reported, in one run:
- latency p50/p99 of plain /v1/messages requests (4 clients) without slow connections, then while
  `--slow` connections (loopback) each hold half a request line, as a ratio;
- how many of the slow connections the gateway holds just after they opened and 2 s after its
  header timeout (before this hardening it held all of them, indefinitely);
- failed requests (any non-200) in both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

BODY = {"model": "claude-haiku-4-5-20251001", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


async def timed_requests(url: str, key: str, count: int, concurrency: int = 4) -> tuple[list[float], int]:
    """Send `count` plain requests; return their latencies (s) and the number that failed."""
    latencies: list[float] = []
    failed = 0
    queue = list(range(count))
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:

        async def worker() -> None:
            nonlocal failed
            while queue:
                queue.pop()
                start = time.perf_counter()
                try:
                    reply = await client.post(url + "/v1/messages", json=BODY)
                    failed += reply.status_code != 200
                except httpx.HTTPError:
                    failed += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(latencies), failed


def pct(values: list[float], q: float) -> float:
    """A percentile (0-100) of sorted values."""
    return values[min(len(values) - 1, int(len(values) * q / 100))]


def still_open(sockets: list[socket.socket]) -> int:
    """How many sockets the server has not closed (no EOF or reset readable yet)."""
    import select

    count = 0
    for sock in sockets:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            count += 1
            continue
        try:
            data = sock.recv(4096, socket.MSG_PEEK)
        except OSError:
            continue
        count += bool(data) and not data.startswith(b"HTTP/1.1 408")
    return count


def main() -> None:
    """Run both phases and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=800, help="half-open connections (loopback)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cc-slowloris-") as tmp:
        work = Path(tmp)
        fake_port, port = load.free_port(), load.free_port()
        fake = load.start_fake(fake_port, work / "fake.log")
        extra = ["--workers", "1", "--header-timeout", str(args.header_timeout)]
        gateway, key = load.start_gateway(work, "openai-backed", f"http://127.0.0.1:{fake_port}", port, extra)
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(timed_requests(url, key, 20))  # warm-up
            quiet, quiet_failed = asyncio.run(timed_requests(url, key, args.requests))
            slow = []
            opened = time.monotonic()
            for _ in range(args.slow):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                slow.append(sock)
            time.sleep(0.5)
            before, before_age = still_open(slow), time.monotonic() - opened
            loaded, loaded_failed = asyncio.run(timed_requests(url, key, args.requests))
            time.sleep(max(0.0, opened + args.header_timeout + 2 - time.monotonic()))
            after, after_age = still_open(slow), time.monotonic() - opened
            for sock in slow:
                sock.close()
        finally:
            gateway.terminate()
            gateway.wait(timeout=60)
            fake.terminate()
    print(f"plain requests, no slow clients: p50 {pct(quiet, 50) * 1000:.0f} ms, p99 {pct(quiet, 99) * 1000:.0f} ms,"
          f" {quiet_failed} failed of {len(quiet)}")  # fmt: skip
    print(f"with {args.slow} half-open connections: p50 {pct(loaded, 50) * 1000:.0f} ms, "
          f"p99 {pct(loaded, 99) * 1000:.0f} ms, {loaded_failed} failed of {len(loaded)}; "
          f"p50 ratio {pct(loaded, 50) / pct(quiet, 50):.2f}x")  # fmt: skip
    print(f"slow connections held {before_age:.1f} s after opening: {before} of {args.slow}; "
          f"{after_age:.1f} s after (header timeout {args.header_timeout:g} s): {after}")  # fmt: skip


if __name__ == "__main__":
    main()
