"""Measure a full `cc-gateway doctor` run against a local gateway with five routes (target: under 3 s).

    .venv/bin/python bench/doctor_bench.py [--runs 10]

Starts the fake upstream (tests/fakeupstream.py) and `cc-gateway serve` on the openai-backed preset
(five routes, every probe translated to chat completions: the slowest path), points Claude Code
at it with `setup-claude` in a throw-away HOME, then times `cc-gateway doctor --json` as a user
runs it (a fresh process each time, every check and every route probe). The first run after the
gateway starts is reported apart: LiteLLM builds its clients on the first request of each route.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import claude_bin, cli_env, free_port, init_gateway, run_cli, start_gateway  # noqa: E402
from fakeupstream import FakeUpstream  # noqa: E402

OPENAI_KEY = "sk-proj-" + "Hb4Tn8Lm" * 5


def timed_doctor(folder: Path, env: dict[str, str], cwd: Path) -> tuple[float, dict]:
    """Run doctor once; return (wall seconds, report)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cc_gateway", "doctor", "--dir", str(folder), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    wall = time.perf_counter() - start
    return wall, json.loads(done.stdout)


def main() -> None:
    """Start the gateway, time doctor runs, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with FakeUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        folder, home = Path(tmp) / "gateway", Path(tmp) / "home"
        folder.mkdir()
        home.mkdir()
        port = free_port()
        init_gateway(
            folder,
            "openai-backed",
            "--api-base",
            f"openai={upstream.url}/v1",
            "--key",
            f"OPENAI_API_KEY={OPENAI_KEY}",
            port=port,
        )
        run_cli("setup-claude", "--dir", str(folder), "--skip-onboarding", env=cli_env(home), cwd=home)
        path = f"{Path(claude_bin()).parent}{os.pathsep}" if claude_bin() else ""
        env = cli_env(home, PATH=path + os.environ.get("PATH", ""))
        gateway = start_gateway(folder, port=port)
        try:
            first, report = timed_doctor(folder, env, home)
            runs = [timed_doctor(folder, env, home) for _ in range(args.runs)]
        finally:
            gateway.stop()
    walls = sorted(w for w, _ in runs)
    inner = sorted(r["elapsed_ms"] for _, r in runs)
    routes = sum(c["group"] == "Routes" for c in report["checks"])
    print(f"doctor, {len(report['checks'])} checks, {routes} route probes, {args.runs} runs (fresh process each)")
    print(f"  first run after start: {first:.2f} s wall ({report['summary']})")
    print(
        f"  wall:     median {statistics.median(walls):.2f} s, p90 {walls[int(0.9 * (len(walls) - 1))]:.2f} s, "
        f"max {walls[-1]:.2f} s (target < 3 s)"
    )
    print(f"  checks:   median {statistics.median(inner) / 1000:.2f} s (run_checks alone, no interpreter start)")
    print(f"  statuses: {runs[-1][1]['summary']}")


if __name__ == "__main__":
    main()
