"""What routing rules cost: the same gateway with and without `routing_rules`, CPU per request as a ratio.

    .venv/bin/python bench/routing_bench.py              # 5 rounds, about 2-3 minutes
    .venv/bin/python bench/routing_bench.py --rounds 2 --requests 100   # quicker, noisier

Two `cc-gateway serve --workers 1` processes on copies of one gateway folder (the `anthropic` preset
plus `glm-fast` and `kimi-long` routes, all answered by the fake upstream in its own process). One has
no rules; the other has seven, the token-count rule first, none of which fires on the benchmark's
request, so both send the same request to the same route and the difference is the evaluation
itself (token estimate, classification, the guards). The request is shaped like Claude Code's: a
system prompt, 20 tools, 30 tool-use turns (~60 KB, ~13k tokens). The servers take turns batch by
batch (order flipped each round); CPU is user + system time of each server's process tree divided by
its requests. Printed: each round's ratio (rules / no rules), their median, and the engine's own time
per request measured in this process, as a share of the no-rules CPU per request.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent / "tests"))

import serve_bench  # noqa: E402 - the load generator and server handling of the serve bench

RULES = """
routing_rules:
  - long_context: {above_tokens: 150000, route: kimi-long}
  - subagent: glm-fast
  - background: glm-fast
  - thinking: {route: kimi-long, effort: [max]}
  - image: claude-sonnet-5
  - web_search: claude-sonnet-5
  - match: {header: {x-team: "infra*"}, to: glm-fast}
"""


def claude_code_body(turns: int = 30) -> dict:
    """A /v1/messages body shaped like a Claude Code session's (system, tools, tool turns, thinking on)."""
    from test_routing import claude_code_like  # the shape the unit tests check the token estimate on

    body = claude_code_like(turns)
    return {**body, "model": "claude-sonnet-5", "max_tokens": 1024, "thinking": {"type": "adaptive"},
            "output_config": {"effort": "medium"}}  # fmt: skip


def make_folders(work: Path, upstream: str) -> tuple[Path, Path]:
    """The no-rules folder and a copy of it with RULES appended to config.yaml."""
    plain = serve_bench.make_folder(work, "anthropic", upstream)
    env = serve_bench.base_env(work)
    for name, provider in (("glm-fast", "zai"), ("kimi-long", "kimi")):
        subprocess.run(
            [sys.executable, "-m", "cc_gateway", "add-model", name, "--provider", provider, "--model", name,
             "--api-base", upstream, "--dir", str(plain)],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    with_rules = work / "with-rules"
    shutil.copytree(plain, with_rules)
    config = with_rules / "config.yaml"
    config.write_text(config.read_text() + RULES)
    return plain, with_rules


def engine_share(body: dict, folder: Path) -> float:
    """Seconds the engine takes per request on `body` (rules loaded from folder), in this process."""
    from cc_gateway.core.files import load_yaml
    from cc_gateway.routing import RequestView, RouteTable, evaluate, load_rules

    config = load_yaml(folder / "config.yaml")
    rules = load_rules(folder / "config.yaml", config)
    table = RouteTable(config["model_list"], (config.get("router_settings") or {}).get("model_group_alias"))
    runs = 300
    started = time.process_time()
    for _ in range(runs):
        decision = evaluate(rules, RequestView(body, {"x-claude-code-session-id": "s"}), table)
    assert decision.rule is None, decision.reason  # nothing fires: the same route as without rules
    return (time.process_time() - started) / runs


def main() -> None:
    """Run the comparison and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="requests per server per round")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    body = claude_code_body()
    port = serve_bench.free_port()
    fake = subprocess.Popen([sys.executable, str(BENCH.parent / "tests" / "fakeupstream.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    gen = serve_bench.LoadGen()
    servers: list[serve_bench.Server] = []
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp:
        work = Path(tmp)
        try:
            folders = make_folders(work, f"http://127.0.0.1:{port}")
            for label, folder in zip(("no rules", "rules"), folders, strict=True):
                env = serve_bench.base_env(work) | serve_bench.read_env_file(folder / ".env")
                server = serve_bench.Server(label, [], env, folder, serve_bench.free_port())
                server.argv = [str(Path(sys.executable).parent / "cc-gateway"), "serve", "--dir", str(folder),
                               "--port", str(server.port), "--workers", "1"]  # fmt: skip
                server.start(work / f"{label}.log")
                servers.append(server)
            report(run_rounds(gen, servers, body, args), engine_share(body, folders[1]), args)
        finally:
            for server in servers:
                server.stop()
            gen.close()
            fake.terminate()
            fake.wait(10)


def run_rounds(
    gen: serve_bench.LoadGen, servers: list, body: dict, args: argparse.Namespace
) -> list[tuple[float, float]]:
    """(no-rules, rules) CPU ms per request for each round, after a warm-up batch each."""
    for server in servers:
        gen.run(base=server.base, key=server.env["LITELLM_MASTER_KEY"], n=50, c=args.concurrency, streamed=False,
                body=body)  # fmt: skip
    rounds = []
    for index in range(args.rounds):
        cpu = {}
        for server in servers if index % 2 == 0 else servers[::-1]:
            before = server.cpu_seconds()
            result = gen.run(base=server.base, key=server.env["LITELLM_MASTER_KEY"], n=args.requests,
                             c=args.concurrency, streamed=False, body=body)  # fmt: skip
            if result["error_count"]:
                raise SystemExit(f"{server.name}: {result['error_count']} errors, e.g. {result['errors']}")
            cpu[server.name] = (server.cpu_seconds() - before) / args.requests * 1000
        rounds.append((cpu["no rules"], cpu["rules"]))
    return rounds


def report(rounds: list[tuple[float, float]], engine_seconds: float, args: argparse.Namespace) -> None:
    """Print the per-round ratios, their median and the engine's share."""
    ratios = [rules / plain for plain, rules in rounds]
    plain_ms = statistics.median(p for p, _ in rounds)
    print(f"routing rules: {args.rounds} rounds x {args.requests} requests per server, concurrency {args.concurrency}")
    for index, ((plain, rules), ratio) in enumerate(zip(rounds, ratios, strict=True), 1):
        print(f"  round {index}: CPU ms/request no rules {plain:.2f}, rules {rules:.2f}, ratio {ratio:.3f}")
    print(f"CPU per request, rules / no rules: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")  # fmt: skip
    print(f"engine alone: {engine_seconds * 1e6:.0f} us per request = "
          f"{engine_seconds * 1000 / plain_ms * 100:.1f}% of a no-rules request's {plain_ms:.2f} ms CPU")  # fmt: skip


if __name__ == "__main__":
    main()
