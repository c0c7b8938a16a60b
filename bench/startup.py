"""Measure how long `cc-gateway --help` and friends take to start (wall time, repeated runs).

    .venv/bin/python bench/startup.py [--runs 20]

Prints the median and p90 per command, next to a bare `import typer` baseline and
`import litellm` for scale. The deterministic guard (no heavy imports) is tests/test_startup.py.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import typer' (baseline)": [sys.executable, "-c", "import typer"],
    "cc-gateway --help": [sys.executable, "-m", "cc_gateway", "--help"],
    "cc-gateway init --help": [sys.executable, "-m", "cc_gateway", "init", "--help"],
    "cc-gateway --version": [sys.executable, "-m", "cc_gateway", "--version"],
    "python -c 'import litellm' (for scale)": [sys.executable, "-c", "import litellm"],
}


def time_command(argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Run a command `runs` times; return wall times and CPU times (user+sys) in seconds."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": ""},
        )
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    """Print a small table of start-up times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"{'command':<42} {'wall median':>12} {'wall p90':>9} {'CPU median':>11}")
    for label, argv in COMMANDS.items():
        runs = 3 if "litellm" in label else args.runs
        walls, cpus = time_command(argv, runs)
        walls.sort()
        p90 = walls[min(len(walls) - 1, int(len(walls) * 0.9))]
        print(
            f"{label:<42} {statistics.median(walls) * 1000:>10.0f}ms {p90 * 1000:>7.0f}ms "
            f"{statistics.median(cpus) * 1000:>9.0f}ms"
        )


if __name__ == "__main__":
    main()
