"""Measure `add-model`, `remove-model` and `models` as a user runs them (a fresh process each time).

    .venv/bin/python bench/routes_bench.py [--runs 10]

Renders the openai-backed preset into a temp folder, then times, per run: `add-model` (with an
alias and a fallback link), `models`, `models --json` and `remove-model` (which restores the file).
Prints the median and p90 of each, next to `cc-gateway --help` as the start-up floor.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "cc_gateway"]


def run(*args: str) -> float:
    """Run one command; return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([*CLI, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Time the route commands and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    folder = Path(tempfile.mkdtemp()) / "gw"
    subprocess.run([*CLI, "init", "--preset", "openai-backed", "--dir", str(folder), "--yes"], check=True)
    original = (folder / "config.yaml").read_text()
    add = ["add-model", "glm", "--provider", "zai", "--model", "glm-4.6", "--alias", "g", "--fallback-for", "claude-*"]
    times: dict[str, list[float]] = {name: [] for name in ("--help", "add-model", "models", "models --json", "remove")}
    for _ in range(runs):
        times["--help"].append(run("--help"))
        times["add-model"].append(run(*add, "--dir", str(folder)))
        times["models"].append(run("models", "--dir", str(folder)))
        times["models --json"].append(run("models", "--json", "--dir", str(folder)))
        times["remove"].append(run("remove-model", "glm", "--dir", str(folder)))
        assert (folder / "config.yaml").read_text() == original, "remove-model did not restore the file"
    print(f"{'command':<16} {'median':>8} {'p90':>8}   ({runs} runs)")
    for name, values in times.items():
        p90 = sorted(values)[max(0, int(len(values) * 0.9) - 1)]
        print(f"{name:<16} {statistics.median(values) * 1000:>6.0f}ms {p90 * 1000:>6.0f}ms")


if __name__ == "__main__":
    main()
