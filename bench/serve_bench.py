"""Compare `cc-gateway serve` with plain `litellm --config` on one config in front of the fake upstream.

    .venv/bin/python bench/serve_bench.py            # full run, about 4-6 minutes
    .venv/bin/python bench/serve_bench.py --quick    # under a minute, fewer requests

Both servers run the SAME config.yaml (an `openai-backed` gateway folder made by `cc-gateway init`,
and with `--preset anthropic` an `anthropic` one) with the same environment (.env exported, local
cost map). cc-gateway runs with its default settings; LiteLLM as
`litellm --config config.yaml --port P --num_workers 1`, from a venv holding LiteLLM as a user
installs it (`litellm[proxy]` + `prisma`, same versions; made once under .cache/), or with
`--same-venv` from this venv, which also has what cc-gateway installs for speed. The fake upstream (tests/fakeupstream.py)
runs as its own process; the load generator is a separate asyncio + httpx process.

Printed as ratios cc-gateway / plain LiteLLM from the same run:
- time to ready (process start to the first 200 from /health/liveliness; started one at a time);
- requests/s, CPU per request (CPU time of the server's process tree / requests) and p50/p99 latency
  at concurrency 1 and 32, for `/v1/messages` not streamed and streamed (latency = time to first byte);
- resident memory (RSS of the process tree, and PSS, which counts pages shared by forked workers once)
  after the load (5,000 requests per server in a full run);
- CPU per request as a ratio for every round's pair of batches, and their median.
The two servers take turns batch by batch (the order flips each round) so that noise from other
work on the machine hits both alike. Absolute figures vary from run to run; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-fake-upstream-key-0123456789"
BODY = {
    "model": "claude-sonnet-5",
    "max_tokens": 32000,
    "messages": [{"role": "user", "content": "Say hello in five words."}],
}
# (label, streamed, concurrency, requests per batch: full, quick)
CASES = [
    ("messages c=1", False, 1, 200, 30),
    ("messages c=32", False, 32, 800, 120),
    ("stream TTFB c=1", True, 1, 150, 20),
    ("stream TTFB c=32", True, 32, 500, 80),
]
MEMORY_AFTER = 5000


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- load generator (own process)


async def _one(client: httpx.AsyncClient, url: str, headers: dict, body: dict, streamed: bool) -> float:
    started = time.perf_counter()
    if not streamed:
        response = await client.post(url, headers=headers, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return time.perf_counter() - started
    first = None
    async with client.stream("POST", url, headers=headers, json={**body, "stream": True}) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        tail = b""
        async for chunk in response.aiter_raw():
            if first is None and chunk:
                first = time.perf_counter() - started
            tail = (tail + chunk)[-256:]
        if b"message_stop" not in tail:
            raise RuntimeError(f"stream ended without message_stop: {tail[-120:]!r}")
    return first if first is not None else time.perf_counter() - started


async def _batch(job: dict) -> dict:
    """Send job['n'] requests with job['c'] in flight; return latencies and the wall time."""
    url = job["base"] + "/v1/messages"
    headers = {"authorization": f"Bearer {job['key']}", "anthropic-version": "2023-06-01"}
    limits = httpx.Limits(max_connections=job["c"], max_keepalive_connections=job["c"])
    latencies: list[float] = []
    errors: list[str] = []
    todo = iter(range(job["n"]))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            for _ in todo:
                try:
                    latencies.append(await _one(client, url, headers, job.get("body", BODY), job["streamed"]))
                except Exception as exc:  # counted and reported, never silently dropped
                    errors.append(f"{type(exc).__name__}: {exc}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(job["c"])))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "wall": wall, "errors": errors[:3], "error_count": len(errors)}


def loadgen_main() -> None:
    """Serve batch jobs given as JSON lines on stdin; answer each with a JSON line."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(asyncio.run(_batch(json.loads(line)))), flush=True)


class LoadGen:
    """The load generator process, driven over pipes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert json.loads(self.proc.stdout.readline())["ready"]

    def run(self, **job: Any) -> dict:
        """Run one batch and return its result."""
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        """Stop the process."""
        self.proc.stdin.close()
        self.proc.wait(10)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """One server under test (cc-gateway or plain LiteLLM)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    proc: subprocess.Popen | None = None
    ready_times: list[float] = field(default_factory=list)
    ready_cpu: list[float] = field(default_factory=list)
    batches: dict[str, list[dict]] = field(default_factory=dict)
    requests: int = 0
    memory: dict[str, float] = field(default_factory=dict)

    @property
    def base(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> float:
        """Start the server; return seconds until /health/liveliness answered 200."""
        started = time.perf_counter()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = started + 120
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode} while starting; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/health/liveliness", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit(f"{self.name} did not become ready in 120 s; see {log}")

    def stop(self) -> None:
        """SIGTERM the server and wait for it (SIGKILL after 30 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tree(self) -> list[psutil.Process]:
        """The server process and all its descendants."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process tree so far."""
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def measure_memory(self) -> None:
        """Record RSS and PSS (MiB) summed over the process tree."""
        rss = pss = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
        self.memory = {"rss": rss / (1 << 20), "pss": pss / (1 << 20), "processes": len(self.tree())}


def make_folder(work: Path, preset: str, upstream: str) -> Path:
    """Create a gateway folder with `cc-gateway init --yes` pointing at the fake upstream."""
    folder = work / preset
    if preset == "openai-backed":
        extra = ["--api-base", f"openai={upstream}/v1", "--key", f"OPENAI_API_KEY={FAKE_KEY}"]
    else:
        extra = ["--api-base", f"anthropic={upstream}", "--key", f"ANTHROPIC_API_KEY={FAKE_KEY}"]
    subprocess.run(
        [sys.executable, "-m", "cc_gateway", "init", "--yes", "--preset", preset, "--dir", str(folder), *extra],
        check=True,
        env=base_env(work),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return folder


def base_env(work: Path) -> dict[str, str]:
    """An environment isolated from the user's home (both servers get the same one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OPENAI_", "ANTHROPIC_"))}
    env.update(
        HOME=str(work / "home"),
        CC_GATEWAY_HOME=str(work / "home" / "cc-gateway"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def plain_litellm(venv: Path | None) -> Path:
    """The `litellm` command to compare with: from a venv holding LiteLLM as a user installs it.

    That venv gets `litellm[proxy]` and `prisma` at the versions this venv has (the brief's install)
    plus cc-gateway itself without its dependencies (the config names cc-gateway's hook modules), so
    it lacks what cc-gateway adds for speed (opentelemetry-sdk, httptools). It is made once and kept.
    None: this venv's own `litellm`, which has those too (the conservative comparison).
    """
    if venv is None:
        return Path(sys.executable).parent / "litellm"
    command = venv / "bin" / "litellm"
    if command.exists():
        return command
    versions = {name: importlib.metadata.version(name) for name in ("litellm", "prisma")}
    print(f"making the plain LiteLLM venv {venv} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"litellm[proxy]=={versions['litellm']}", f"prisma=={versions['prisma']}"], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    return command


def servers_for(folder: Path, work: Path, serve_args: list[str], litellm_command: Path) -> tuple[Server, Server]:
    """The two servers on the folder's config, each on a free port."""
    env = base_env(work) | read_env_file(folder / ".env")
    bin_dir = Path(sys.executable).parent
    gateway = Server("cc-gateway", [], env, folder, free_port())
    gateway.argv = [
        str(bin_dir / "cc-gateway"),
        "serve",
        "--dir",
        str(folder),
        "--port",
        str(gateway.port),
        *serve_args,
    ]
    litellm = Server("litellm", [], env, folder, free_port())
    litellm.argv = [
        str(litellm_command),
        "--config",
        str(folder / "config.yaml"),
        "--port",
        str(litellm.port),
        "--num_workers",
        "1",
    ]
    return gateway, litellm


# --------------------------------------------------------------------------- the run


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def run_batch(gen: LoadGen, server: Server, case: tuple, count: int) -> None:
    """One batch against one server, recording throughput, latency and CPU per request."""
    label, streamed, concurrency = case[0], case[1], case[2]
    cpu_before = server.cpu_seconds()
    result = gen.run(base=server.base, key=server.env["LITELLM_MASTER_KEY"], streamed=streamed, c=concurrency, n=count)
    cpu = server.cpu_seconds() - cpu_before
    if result["error_count"]:
        print(f"  ! {server.name} {label}: {result['error_count']} errors, e.g. {result['errors']}", file=sys.stderr)
    server.requests += count
    done = max(1, len(result["latencies"]))
    result.update(cpu_per_request=cpu / count, rps=done / result["wall"])
    server.batches.setdefault(label, []).append(result)


def summarize(server: Server, label: str) -> dict[str, float]:
    """Pool a case's batches: median rps and CPU/request over batches, latency quantiles over all requests."""
    batches = server.batches[label]
    latencies = [x for b in batches for x in b["latencies"]]
    return {
        "rps": statistics.median(b["rps"] for b in batches),
        "cpu_ms": statistics.median(b["cpu_per_request"] for b in batches) * 1000,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
    }


def measure_ready(servers: tuple[Server, Server], trials: int, logs: Path) -> None:
    """Start each server `trials` times, one at a time, alternating the order; leave the last start running."""
    for trial in range(trials):
        last = trial == trials - 1
        for server in servers if trial % 2 == (trials - 1) % 2 else servers[::-1]:
            server.ready_times.append(server.start(logs / f"{server.name}.log"))
            server.ready_cpu.append(server.cpu_seconds())
            if not last:
                server.stop()


def bench_preset(preset: str, args: argparse.Namespace, work: Path, upstream: str, gen: LoadGen) -> None:
    """Run every measurement for one preset and print its table."""
    folder = make_folder(work, preset, upstream)
    servers = servers_for(folder, work, args.serve_arg, args.litellm_command)
    trials = 1 if args.quick else args.ready_trials
    print(f"\n[{preset}] time to ready: {trials} start(s) each ...", file=sys.stderr)
    try:
        measure_ready(servers, trials, work)
        for server in servers:  # warm up: first requests pay one-time imports and connection set-up
            run_batch(gen, server, ("warm-up", False, 4), 16 if args.quick else 40)
            run_batch(gen, server, ("warm-up", True, 4), 8 if args.quick else 20)
        rounds = 1 if args.quick else args.rounds
        for number in range(rounds):
            for case in CASES:
                count = case[4] if args.quick else case[3]
                print(f"[{preset}] round {number + 1}/{rounds}: {case[0]} x{count}", file=sys.stderr)
                for server in servers if number % 2 == 0 else servers[::-1]:
                    run_batch(gen, server, case, count)
        target = 0 if args.quick else args.memory_after
        for server in servers:
            while server.requests < target:
                run_batch(gen, server, ("top-up", False, 32), min(500, target - server.requests))
            server.measure_memory()
    finally:
        for server in servers:
            server.stop()
    print_table(preset, *servers)


def ratio(a: float, b: float) -> str:
    """a / b as '0.83x'."""
    return f"{a / b:.2f}x" if b else "n/a"


def print_table(preset: str, gateway: Server, litellm: Server) -> None:
    """Print the markdown table of figures and ratios."""
    rows = []
    g_ready, l_ready = statistics.median(gateway.ready_times), statistics.median(litellm.ready_times)
    rows.append(("time to ready (s)", g_ready, l_ready, ratio(g_ready, l_ready)))
    g_cpu, l_cpu = statistics.median(gateway.ready_cpu), statistics.median(litellm.ready_cpu)
    rows.append(("CPU to ready (s, process tree)", g_cpu, l_cpu, ratio(g_cpu, l_cpu)))
    for case in CASES:
        g, lt = summarize(gateway, case[0]), summarize(litellm, case[0])
        rows.append((f"{case[0]}: requests/s", g["rps"], lt["rps"], ratio(g["rps"], lt["rps"])))
        rows.append((f"{case[0]}: CPU ms/request", g["cpu_ms"], lt["cpu_ms"], ratio(g["cpu_ms"], lt["cpu_ms"])))
        rows.append((f"{case[0]}: p50 ms", g["p50_ms"], lt["p50_ms"], ratio(g["p50_ms"], lt["p50_ms"])))
        rows.append((f"{case[0]}: p99 ms", g["p99_ms"], lt["p99_ms"], ratio(g["p99_ms"], lt["p99_ms"])))
    for kind in ("rss", "pss"):
        g_mem, l_mem = gateway.memory[kind], litellm.memory[kind]
        label = f"{kind.upper()} MiB after {gateway.requests}/{litellm.requests} requests"
        rows.append((label, g_mem, l_mem, ratio(g_mem, l_mem)))
    workers = gateway.memory["processes"]
    print(f"\n### {preset} (cc-gateway: {workers} process(es); litellm: {litellm.memory['processes']})\n")
    shown = [" / ".join(f"{t:.1f}" for t in s.ready_times) for s in (gateway, litellm)]
    print(f"each start, s: cc-gateway {shown[0]}; litellm {shown[1]}\n")
    print("| measure | cc-gateway | litellm | cc-gateway / litellm |")
    print("|---|---:|---:|---:|")
    for name, g_value, l_value, r in rows:
        print(f"| {name} | {g_value:.1f} | {l_value:.1f} | {r} |")
    print("\nCPU per request, paired by round (each round runs the two servers back to back):\n")
    for case in CASES:
        pairs = paired_cpu_ratios(gateway, litellm, case[0])
        shown = " / ".join(f"{x:.2f}" for x in pairs)
        print(f"- {case[0]}: {shown} (median {statistics.median(pairs):.2f}x)")
    sys.stdout.flush()


def paired_cpu_ratios(gateway: Server, litellm: Server, label: str) -> list[float]:
    """cc-gateway / litellm CPU per request for each round's pair of batches (slow drift cancels out)."""
    pairs = zip(gateway.batches[label], litellm.batches[label], strict=True)
    return [g["cpu_per_request"] / lt["cpu_per_request"] for g, lt in pairs if lt["cpu_per_request"]]


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one round, one start (< 1 min)")
    parser.add_argument("--preset", action="append", choices=["openai-backed", "anthropic"], help="repeatable")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every case (full run)")
    parser.add_argument("--ready-trials", type=int, default=3, help="starts of each server for time to ready")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `cc-gateway serve` argument")
    parser.add_argument("--chunks", type=int, default=8, help="content chunks per streamed upstream reply")
    parser.add_argument("--memory-after", type=int, default=MEMORY_AFTER, help="requests before measuring memory")
    parser.add_argument(
        "--baseline-venv",
        type=Path,
        default=ROOT / ".cache" / "bench-plain-litellm",
        help="venv of the plain LiteLLM to compare with (made on first use)",
    )
    parser.add_argument(
        "--same-venv",
        action="store_true",
        help="compare with this venv's litellm (it has cc-gateway's speed-ups installed too)",
    )
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main()
        return
    args.litellm_command = plain_litellm(None if args.same_venv else args.baseline_venv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    print(f"plain LiteLLM: {args.litellm_command}")
    with tempfile.TemporaryDirectory(prefix="cc-serve-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        fake = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "fakeupstream.py"),
                "--port",
                str(port),
                "--chunks",
                str(args.chunks),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gen = LoadGen()
        try:
            for preset in args.preset or ["openai-backed"]:
                bench_preset(preset, args, work, f"http://127.0.0.1:{port}", gen)
        finally:
            gen.close()
            fake.terminate()
            fake.wait(10)


if __name__ == "__main__":
    main()
