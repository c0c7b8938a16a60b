"""CPU per request of the team gateway (keys, limits, usage ledger) against the same gateway without it.

    .venv/bin/python bench/team_bench.py            # about 3-4 minutes
    .venv/bin/python bench/team_bench.py --quick    # about a minute

Three `cc-gateway serve --workers 1` processes on one `anthropic` gateway config in front of the fake
upstream (tests/fakeupstream.py, its own process), loaded in turn by serve_bench's load generator
(its own process), batch by batch, the order rotating each round:
- `off`: CC_GATEWAY_TEAM=false, the master key (no key lookup, no limit check, no ledger);
- `sqlite`: the folder's team.db, a person's key with a daily limit (looked up, checked, recorded);
- `postgres`: the same on a PostgreSQL server this script starts (tests/pg.py; skipped if not installed).
Printed: CPU ms per request (process tree) per case, and each team server's ratio to `off` per
round and their median. Also checks that every request of the team servers reached the ledger.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "tests")]

import serve_bench as sb  # noqa: E402

CASES = [  # (label, streamed, concurrency, requests per batch: full, quick)
    ("messages c=1", False, 1, 200, 40),
    ("messages c=16", False, 16, 600, 150),
    ("stream c=16", True, 16, 400, 100),
]


def cli(folder: Path, work: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a cc-gateway command on the folder; return its stdout."""
    done = subprocess.run([sys.executable, "-m", "cc_gateway", *args, "--dir", str(folder)], env=env or sb.base_env(work),
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def team_server(name: str, base: Path, work: Path, upstream: str, extra_env: dict[str, str]) -> tuple[sb.Server, str]:
    """A copy of the gateway folder set up as a team gateway; return the server and a person's key."""
    folder = sb.make_folder(work / name, "anthropic", upstream)
    with (folder / ".env").open("a") as env_file:
        for key, value in extra_env.items():
            env_file.write(f"{key}={value}\n")
    env = sb.base_env(work) | sb.read_env_file(folder / ".env")
    key = ""
    if extra_env.get("CC_GATEWAY_TEAM") != "false":
        key = cli(folder, work, "keys", "add", "bench", "--limit", "100000/day", env=env)
    server = sb.Server(name, [], env, folder, sb.free_port())
    server.argv = [str(Path(sys.executable).parent / "cc-gateway"), "serve", "--dir", str(folder),
                   "--port", str(server.port), "--workers", "1"]
    return server, key or env["LITELLM_MASTER_KEY"]


def run_batch(gen: sb.LoadGen, server: sb.Server, key: str, case: tuple, count: int) -> None:
    """One batch: CPU of the server's process tree per request."""
    label, streamed, concurrency = case[0], case[1], case[2]
    before = server.cpu_seconds()
    result = gen.run(base=server.base, key=key, streamed=streamed, c=concurrency, n=count)
    cpu = server.cpu_seconds() - before
    if result["error_count"]:
        print(f"  ! {server.name} {label}: {result['error_count']} errors, e.g. {result['errors']}", file=sys.stderr)
    server.requests += count
    server.batches.setdefault(label, []).append({"cpu_per_request": cpu / count})


def ledger_count(server: sb.Server) -> int | None:
    """Rows in the server's ledger (None for the server without one)."""
    url = server.env.get("DATABASE_URL")
    if server.env.get("CC_GATEWAY_TEAM") == "false":
        return None
    sys.path.insert(0, str(ROOT))
    from cc_gateway.team.store import Store, default_url

    with Store.open(url or default_url(server.cwd)) as store:
        return int(store.query("SELECT COUNT(*) FROM ccg_usage WHERE person = 'bench'")[0][0])


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, one round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from pg import PostgresServer, postgres_available

    print(f"machine: load average {__import__('os').getloadavg()[0]:.2f}")
    pg = None
    with tempfile.TemporaryDirectory(prefix="cc-team-bench-") as tmp:
        work = Path(tmp)
        port = sb.free_port()
        fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakeupstream.py"), "--port", str(port),
                                 "--chunks", "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        upstream = f"http://127.0.0.1:{port}"
        servers: list[tuple[sb.Server, str]] = []
        gen = sb.LoadGen()
        try:
            servers.append(team_server("off", work, work, upstream, {"CC_GATEWAY_TEAM": "false"}))
            servers.append(team_server("sqlite", work, work, upstream, {"CC_GATEWAY_TEAM": "true"}))
            if postgres_available() is None:
                pg = PostgresServer().start()
                servers.append(team_server("postgres", work, work, upstream, {"DATABASE_URL": pg.new_database()}))
            else:
                print(f"postgres skipped: {postgres_available()}", file=sys.stderr)
            for server, _ in servers:
                server.start(work / f"{server.name}.log")
            for server, key in servers:
                run_batch(gen, server, key, ("warm-up", False, 4), 40)
                run_batch(gen, server, key, ("warm-up", True, 4), 20)
            rounds = 1 if args.quick else args.rounds
            for number in range(rounds):
                order = servers[number % len(servers):] + servers[: number % len(servers)]
                for case in CASES:
                    count = case[4] if args.quick else case[3]
                    print(f"round {number + 1}/{rounds}: {case[0]} x{count}", file=sys.stderr)
                    for server, key in order:
                        run_batch(gen, server, key, case, count)
            time.sleep(1.5)  # the last flush
            print_table([s for s, _ in servers])
        finally:
            gen.close()
            for server, _ in servers:
                server.stop()
            fake.terminate()
            fake.wait(10)
            if pg is not None:
                pg.stop()


def print_table(servers: list[sb.Server]) -> None:
    """CPU ms/request per server and case, and each team server's ratio to `off`, paired by round."""
    off = servers[0]
    print("\n| case | " + " | ".join(f"{s.name} CPU ms/req" for s in servers) + " | "
          + " | ".join(f"{s.name} / off (per round; median)" for s in servers[1:]) + " |")
    print("|---" * (1 + len(servers) + len(servers) - 1) + "|")
    for case in CASES:
        label = case[0]
        cpu = [statistics.median(b["cpu_per_request"] for b in s.batches[label]) * 1000 for s in servers]
        ratios = []
        for server in servers[1:]:
            pairs = [t["cpu_per_request"] / o["cpu_per_request"]
                     for t, o in zip(server.batches[label], off.batches[label], strict=True) if o["cpu_per_request"]]
            ratios.append(" / ".join(f"{x:.3f}" for x in pairs) + f"; **{statistics.median(pairs):.3f}x**")
        print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cpu) + " | " + " | ".join(ratios) + " |")
    for server in servers[1:]:
        count = ledger_count(server)
        print(f"\n{server.name}: {count} ledger records for {server.requests} requests sent")


if __name__ == "__main__":
    main()
