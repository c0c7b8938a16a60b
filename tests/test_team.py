"""The team gateway end to end: keys per person, the usage ledger, spend limits, the admin API.

Real `cc-gateway serve` processes on the anthropic preset, the fake upstream reporting usage (cache
tokens included), the official anthropic SDK, the real Claude Code CLI, SQLite on disk and a real
PostgreSQL server (tests/pg.py).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import httpx
import pytest
from conftest import ROOT, Gateway, cli_env, free_port, init_gateway, read_env, run_cli, start_gateway, wait_until
from fakeupstream import FakeUpstream, Reply

from cc_gateway.team import live, periods

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-provider-" + "Tm4Wq8Zr" * 4
SONNET = "claude-sonnet-5"
HAIKU = "claude-haiku-4-5-20251001"


def team_folder(path: Path, upstream: FakeUpstream, *env_lines: str) -> Path:
    """An anthropic-preset gateway on the fake upstream, made a team gateway."""
    folder = init_gateway(path, "anthropic", "--api-base", f"anthropic={upstream.url}",
                          "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}")
    with (folder / ".env").open("a") as env:
        env.write("CC_GATEWAY_TEAM=true\n" + "".join(f"{line}\n" for line in env_lines))
    return folder


def cli(folder: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a cc-gateway command on the folder."""
    result = run_cli(*args, "--dir", str(folder), env=cli_env(COLUMNS="250"))
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def add_key(folder: Path, name: str, *flags: str) -> str:
    """`keys add` and return the printed key, once a running gateway has had time to see it.

    Each worker re-reads the keys every `live.DEFAULT_INTERVAL` seconds (the README's "within one second"):
    a key used the instant the command returns may still be unknown there.
    """
    key = cli(folder, "keys", "add", name, *flags).stdout.strip()
    time.sleep(2 * live.DEFAULT_INTERVAL)
    return key


def ledger_rows(folder: Path, where: str = "1=1") -> list[sqlite3.Row]:
    """The SQLite ledger's rows (read-only)."""
    with sqlite3.connect(f"file:{folder / 'team.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return db.execute(f"SELECT * FROM ccg_usage WHERE {where} ORDER BY ts").fetchall()


def sdk(gw: Gateway, key: str, **headers: str) -> anthropic.Anthropic:
    """The official SDK with a person's key (no retries: a 429 must be seen as sent)."""
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, default_headers=headers or None)


@pytest.fixture(scope="module")
def team(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory):
    """One SQLite team gateway with three people (bob may use haiku only)."""
    folder = team_folder(tmp_path_factory.mktemp("team"), upstream)
    people = {"alice": add_key(folder, "alice"), "bob": add_key(folder, "bob", "--models", "claude-haiku-*"),
              "carol": add_key(folder, "carol")}
    gateway = start_gateway(folder)
    yield folder, gateway, people
    gateway.stop()


@pytest.fixture
def up(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


def test_three_people_interleaved_streamed_and_not_are_attributed_exactly(team, up: FakeUpstream) -> None:
    folder, gw, people = team
    up.default = lambda received: Reply(text="answer " * 20, chunks=4, cache_read=120, cache_write=30)
    seen: dict[str, list[tuple[int, int, int, int]]] = {name: [] for name in people}
    errors: list[BaseException] = []

    def person(name: str) -> None:
        try:
            client = sdk(gw, people[name], **{"X-Claude-Code-Session-Id": f"session-{name}",
                                             "x-claude-code-agent-id": f"agent-{name}"})
            model = HAIKU if name == "bob" else SONNET
            for i in range(6):
                body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": f"{name} {i} " * (i + 1)}]}
                if i % 2:
                    with client.messages.stream(**body) as stream:
                        usage = stream.get_final_message().usage
                else:
                    usage = client.messages.create(**body).usage
                seen[name].append((usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
                                   usage.cache_creation_input_tokens))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=person, args=(name,)) for name in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    rows = wait_until(lambda: (r := ledger_rows(folder, "session_id LIKE 'session-%'")) and len(r) >= 18 and r, 10)
    assert len(rows) == 18
    for name, usages in seen.items():
        mine = [r for r in rows if r["person"] == name]
        assert len(mine) == 6 and {r["session_id"] for r in mine} == {f"session-{name}"}
        assert {r["agent_id"] for r in mine} == {f"agent-{name}"}
        assert sorted(bool(r["stream"]) for r in mine) == [False] * 3 + [True] * 3
        sums = [sum(u[i] for u in usages) for i in range(4)]
        assert [sum(r[c] for r in mine) for c in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                   "cache_write_tokens")] == sums
        assert all(r["status"] == 200 and r["cost"] > 0 for r in mine)
        assert {r["route"] for r in mine} == {HAIKU if name == "bob" else SONNET}
    # the upstream's own figures: cache tokens as scripted, output as it counted them
    assert sum(r["cache_read_tokens"] for r in rows) == 18 * 120


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "x-litellm-api-key"])
def test_a_person_key_works_in_every_header(team, up: FakeUpstream, header: str) -> None:
    _, gw, people = team
    value = f"Bearer {people['carol']}" if header == "authorization" else people["carol"]
    answer = httpx.post(f"{gw.url}/v1/messages", headers={header: value},
                        json={"model": SONNET, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
    assert answer.status_code == 200, answer.text


def test_a_model_outside_the_allowlist_is_403_naming_the_allowed_routes(team, up: FakeUpstream) -> None:
    _, gw, people = team
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        sdk(gw, people["bob"]).messages.create(model=SONNET, max_tokens=16, messages=[{"role": "user", "content": "x"}])
    message = caught.value.body["error"]["message"]
    assert message == f"model '{SONNET}' is not allowed for bob; allowed routes: {HAIKU}"
    assert not [r for r in up.requests if r.model.endswith(SONNET)]


def test_person_keys_cannot_use_admin_routes_and_read_only_their_usage(team, up: FakeUpstream) -> None:
    _, gw, people = team
    alice = {"Authorization": f"Bearer {people['alice']}"}
    assert httpx.get(f"{gw.url}/v1/organizations/spend_limits", headers=alice).status_code == 403
    assert httpx.get(f"{gw.url}/key/list", headers=alice).status_code == 403
    own = httpx.get(f"{gw.url}/cc-gateway/usage", headers=alice, params={"since": "1d"})
    assert own.status_code == 200 and own.json()["person"] == "alice"
    assert {r["name"] for r in own.json()["rows"]} <= {"alice"}
    other = httpx.get(f"{gw.url}/cc-gateway/usage", headers=alice, params={"person": "bob"})
    assert other.status_code == 403


def test_admin_api_speaks_the_spend_limits_wire_shape(team, up: FakeUpstream) -> None:
    folder, gw, _ = team
    admin = gw.headers()
    made = httpx.post(f"{gw.url}/v1/organizations/spend_limits", headers=admin,
                      json={"scope": {"type": "user", "user_id": "carol"}, "amount": "5000", "period": "weekly"})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["type"] == "spend_limit" and body["id"].startswith("spl_") and body["amount"] == "5000"
    assert body["scope"] == {"type": "user", "user_id": "carol"} and body["period"] == "weekly"
    again = httpx.post(f"{gw.url}/v1/organizations/spend_limits", headers=admin,
                       json={"scope": {"type": "user", "user_id": "carol"}, "amount": "6000", "period": "weekly"})
    assert again.json()["id"] == body["id"] and again.json()["amount"] == "6000"  # upsert on (scope, period)
    listed = httpx.get(f"{gw.url}/v1/organizations/spend_limits", headers=admin).json()
    assert body["id"] in [x["id"] for x in listed["data"]] and listed["has_more"] is False
    assert "$60.00/week" in cli(folder, "keys", "list").stdout
    unknown = httpx.post(f"{gw.url}/v1/organizations/spend_limits", headers=admin,
                         json={"scope": {"type": "user", "user_id": "nobody"}, "amount": "1", "period": "daily"})
    assert unknown.status_code == 404 and "no key for 'nobody'" in unknown.json()["error"]["message"]
    negative = httpx.post(f"{gw.url}/v1/organizations/spend_limits", headers=admin,
                          json={"scope": {"type": "organization"}, "amount": "-5", "period": "daily"})
    assert negative.status_code == 400
    gone = httpx.delete(f"{gw.url}/v1/organizations/spend_limits/{body['id']}", headers=admin)
    assert gone.json() == {"id": body["id"], "type": "spend_limit_deleted"}
    keys = httpx.get(f"{gw.url}/cc-gateway/keys", headers=admin).json()["data"]
    assert {k["name"] for k in keys} >= {"alice", "bob", "carol"} and all("key" not in k for k in keys)


def test_limit_reached_gives_429_with_the_message_and_no_retry(team, up: FakeUpstream) -> None:
    folder, gw, _ = team
    key = add_key(folder, "dave", "--limit", "0.01/day")
    client = sdk(gw, key)
    big = "word " * 8000  # ~10k input tokens at $2/M: $0.02, past the limit in one request
    client.messages.create(model=SONNET, max_tokens=16, messages=[{"role": "user", "content": big}])
    wait_until(lambda: ledger_rows(folder, "person = 'dave'"), 5)
    spent = sum(r["cost"] for r in ledger_rows(folder, "person = 'dave'"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=SONNET, max_tokens=16, messages=[{"role": "user", "content": "again"}])
    now = datetime.now(UTC)
    resets = periods.format_reset(periods.period_end("day", now))
    assert caught.value.body["error"]["message"] == (
        f"spend limit $0.01/day reached for dave (spent ${spent:,.2f}); resets {resets}")
    headers = caught.value.response.headers
    assert headers["x-should-retry"] == "false"
    expected = (periods.period_end("day", now) - now).total_seconds()
    assert abs(int(headers["retry-after"]) - expected) < 30
    cli(folder, "keys", "limit", "dave", "5/day")  # an admin raises it: served again within a second
    assert wait_until(lambda: _status(gw, key) == 200, 3)


def _status(gw: Gateway, key: str, model: str = SONNET) -> int:
    return httpx.post(f"{gw.url}/v1/messages", headers={"x-api-key": key},
                      json={"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
                      timeout=60).status_code


def _requests_after(gw: Gateway, key: str, since: float, seconds: float = 2.0) -> list[tuple[float, int]]:
    """Send requests for `seconds` after `since`: (when each was sent, relative to `since`; its status)."""
    seen: list[tuple[float, int]] = []
    deadline = since + 10  # a loaded machine may take long to answer: go on until one is sent after 1 s
    while (sent := time.monotonic()) < since + seconds or (not any(o >= 1.0 for o, _ in seen) and sent < deadline):
        seen.append((sent - since, _status(gw, key)))
        time.sleep(0.02)
    return seen


def _revoked_within_a_second(*replicas: Gateway, key: str, since: float) -> None:
    """Every request sent a second or more after `since`, on every replica, got 401."""
    results: dict[int, list[tuple[float, int]]] = {}
    threads = [threading.Thread(target=lambda i=i, gw=gw: results.__setitem__(i, _requests_after(gw, key, since)))
               for i, gw in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for seen in results.values():
        late = [status for offset, status in seen if offset >= 1.0]
        assert late and set(late) == {401}, seen
    assert len(results) == len(replicas)


def test_revoked_and_expired_keys_get_401_within_a_second(team, up: FakeUpstream) -> None:
    folder, gw, _ = team
    key = add_key(folder, "erin")
    assert wait_until(lambda: _status(gw, key) == 200, 3)
    cli(folder, "keys", "revoke", "erin")
    _revoked_within_a_second(gw, key=key, since=time.monotonic())
    short = add_key(folder, "frank", "--expires", "1m")
    assert wait_until(lambda: _status(gw, short) == 200, 3)


def test_usage_report_table_json_csv_and_url(team, up: FakeUpstream) -> None:
    folder, gw, people = team
    sdk(gw, people["alice"]).messages.create(model=SONNET, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    wait_until(lambda: ledger_rows(folder, "person = 'alice'"), 5)
    table = cli(folder, "usage", "--since", "1d").stdout
    assert "alice" in table and "total" in table and "cache hit" in table
    data = json.loads(cli(folder, "usage", "--by", "model", "--json").stdout)
    assert data["by"] == "model" and data["total"]["requests"] >= 1
    csv_text = cli(folder, "usage", "--by", "day", "--csv").stdout
    assert csv_text.splitlines()[0].startswith("day,requests,input_tokens")
    remote = json.loads(cli(folder, "usage", "--url", gw.url, "--person", "alice", "--json").stdout)
    assert remote["person"] == "alice" and [r["name"] for r in remote["rows"]] == ["alice"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["keys", "add", "zed", "--limit", "5/fortnight"], "unknown period 'fortnight'"),
        (["keys", "add", "zed", "--limit", "-5/day"], "negative"),
        (["keys", "revoke", "nobody"], "no key for 'nobody'"),
        (["keys", "limit", "nobody", "5/day"], "no key for 'nobody'"),
        (["usage", "--by", "colour"], "--by 'colour'"),
    ],
)
def test_bad_input_is_one_line(team, args: list[str], words: str) -> None:
    folder, _, _ = team
    result = cli(folder, *args, ok=False)
    assert result.returncode == 2, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:") and words in first and "Traceback" not in result.stderr
    assert "zed" not in cli(folder, "keys", "list").stdout


def test_serve_refuses_an_unreachable_database_url(upstream: FakeUpstream, tmp_path: Path) -> None:
    folder = team_folder(tmp_path / "gw", upstream, f"DATABASE_URL=postgresql://u:pw-secret-9@127.0.0.1:{free_port()}/x")
    result = run_cli("serve", "--dir", str(folder), "--port", str(free_port()), timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[0].startswith("error: cannot reach the team store DATABASE_URL=postgresql://u:***@127.0.0.1")
    assert "pw-secret-9" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_two_replicas_on_one_postgres_share_revocations_and_limits(upstream: FakeUpstream, tmp_path: Path,
                                                                   pg_url: str, gateway_factory) -> None:
    folder = team_folder(tmp_path / "gw", upstream, f"DATABASE_URL={pg_url}")
    key = add_key(folder, "gina", "--limit", "0.01/day")
    first, second = gateway_factory(folder), gateway_factory(folder)
    upstream.reset()
    assert _status(first, key) == 200 and _status(second, key) == 200
    big = "word " * 8000  # $0.02 on the first replica ...
    sdk(first, key).messages.create(model=SONNET, max_tokens=8, messages=[{"role": "user", "content": big}])
    assert wait_until(lambda: _status(second, key) == 429, 3)  # ... blocks on the second
    cli(folder, "keys", "limit", "gina", "100/day")
    assert wait_until(lambda: _status(second, key) == 200, 3)
    cli(folder, "keys", "revoke", "gina")
    _revoked_within_a_second(first, second, key=key, since=time.monotonic())


def test_kill_9_mid_load_loses_only_the_last_flush_and_corrupts_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    folder = team_folder(tmp_path / "gw", upstream)
    key = add_key(folder, "hank")
    gw = start_gateway(folder, "--workers", "1")
    upstream.reset()
    done: list[tuple[str, float]] = []  # (tag, when its response was complete)
    stop = threading.Event()

    def load(worker: int) -> None:
        client = httpx.Client(timeout=30)
        i = 0
        while not stop.is_set() and i < 2000:
            tag = f"w{worker}-{i}"
            try:
                answer = client.post(f"{gw.url}/v1/messages", headers={"x-api-key": key, "X-Claude-Code-Session-Id": tag},
                                     json={"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                done.append((tag, time.monotonic()))
            i += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    os.killpg(gw.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(30)
    gw.process.wait(10)
    with sqlite3.connect(folder / "team.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        recorded = {row[0] for row in db.execute("SELECT session_id FROM ccg_usage")}
    finished = [(tag, at) for tag, at in done if at <= killed]
    lost = [tag for tag, _ in finished if tag not in recorded]
    older = [tag for tag, at in finished if at < killed - 1.0 and tag not in recorded]
    assert len(finished) > 20
    assert not older, f"records older than a second were lost: {older[:5]} of {len(finished)}"
    print(f"kill -9: {len(finished)} answered, {len(lost)} not recorded (all within the last second)")


def test_init_team_add_model_prices_and_setup_claude_key(upstream: FakeUpstream, tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "anthropic", "--team", "--api-base", f"anthropic={upstream.url}",
                          "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}")
    env_text = (folder / ".env").read_text()
    assert "CC_GATEWAY_TEAM=true" in env_text and "# DATABASE_URL=" in env_text
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    again = run_cli("init", "--preset", "anthropic", "--dir", str(folder), "--yes", "--port",
                    read_env(folder)["CC_GATEWAY_PORT"])
    assert again.returncode == 0, again.stderr  # a rerun keeps the team gateway, byte for byte
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    cli(folder, "add-model", "cheap", "--provider", "openai", "--model", "gpt-cheap", "--price-in", "0.5",
        "--price-out", "1.5")
    config = (folder / "config.yaml").read_text()
    assert "input_cost_per_token: 5.0e-07" in config and "output_cost_per_token: 1.5e-06" in config
    bad = cli(folder, "add-model", "x", "--provider", "openai", "--model", "y", "--price-in", "-1", ok=False)
    assert bad.returncode == 2 and "--price-in -1.0" in bad.stderr
    key = add_key(folder, "ivy")
    gw = start_gateway(folder)
    try:
        home, work = tmp_path / "home", tmp_path / "elsewhere"  # a teammate: no gateway folder there
        work.mkdir()
        env = cli_env(home, COLUMNS="250")
        done = subprocess.run([sys.executable, "-m", "cc_gateway", "setup-claude", "--key", key, "--url", gw.url],
                              cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        settings = json.loads((home / ".claude" / "settings.json").read_text())["env"]
        assert settings["ANTHROPIC_AUTH_TOKEN"] == key and settings["ANTHROPIC_BASE_URL"] == gw.url
        assert gw.key not in (home / ".claude" / "settings.json").read_text()
        assert key not in done.stderr + done.stdout  # shown masked
        wrong = subprocess.run([sys.executable, "-m", "cc_gateway", "setup-claude", "--key", "sk-" + "x" * 40,
                                "--url", gw.url], cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1 and "refused the key: HTTP 401" in wrong.stderr
    finally:
        gw.stop()
    doctor = cli(folder, "doctor", "--json", ok=False)
    rows = {r["name"]: r for r in json.loads(doctor.stdout)["checks"]}
    assert rows["team store"]["status"] == "ok" and "writable" in rows["team store"]["detail"]
    assert rows["route prices"]["status"] == "ok"  # cheap has its own price; the Claude routes LiteLLM's


def test_doctor_flags_routes_without_prices(upstream: FakeUpstream, tmp_path: Path) -> None:
    folder = team_folder(tmp_path / "gw", upstream)
    cli(folder, "add-model", "mystery", "--provider", "openai", "--model", "no-such-model-anywhere")
    doctor = cli(folder, "doctor", "--json", ok=False)
    rows = {r["name"]: r for r in json.loads(doctor.stdout)["checks"]}
    assert rows["route prices"]["status"] == "warn" and "mystery" in rows["route prices"]["detail"]
    assert "--price-in" in rows["route prices"]["hint"]


@pytest.mark.claude
def test_claude_code_shows_the_limit_message_mid_session(upstream: FakeUpstream, tmp_path: Path) -> None:
    claude = ROOT / ".cache" / "npm-new" / "bin" / "claude"
    if not claude.exists():
        pytest.skip("Claude Code 2.1.332 is not installed under .cache/npm-new")
    folder = team_folder(tmp_path / "gw", upstream)
    key = add_key(folder, "jules", "--limit", "0.01/day")
    gw = start_gateway(folder)
    upstream.reset()
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "ANTHROPIC_BASE_URL": gw.url,
           "ANTHROPIC_AUTH_TOKEN": key, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    try:
        first = subprocess.run([str(claude), "-p", "say hi"], cwd=work, env=env, capture_output=True, text=True,
                               timeout=180)
        assert first.returncode == 0, first.stdout + first.stderr  # under the limit when it started
        wait_until(lambda: ledger_rows(folder, "person = 'jules' AND status = 200"), 5)
        time.sleep(1.0)  # the spend snapshot is re-read every 0.5 s
        second = subprocess.run([str(claude), "-p", "--continue", "and again"], cwd=work, env=env,
                                capture_output=True, text=True, timeout=180)
        spent = sum(r["cost"] or 0 for r in ledger_rows(folder, "person = 'jules'"))
        sent = [r for r in upstream.requests if r.api == "messages"]
    finally:
        gw.stop()
    resets = periods.format_reset(periods.period_end("day", datetime.now(UTC)))
    message = f"spend limit $0.01/day reached for jules (spent ${spent:,.2f}); resets {resets}"
    assert spent > 0.01
    assert second.returncode != 0
    assert message in second.stdout + second.stderr, second.stdout + second.stderr
    attempts = [r for r in ledger_rows(folder, "person = 'jules' AND status = 429")]
    assert len(attempts) == 1  # x-should-retry: false: Claude Code did not retry
    assert len(sent) == len(ledger_rows(folder, "person = 'jules' AND status = 200"))  # nothing past the limit


def test_overshoot_is_bounded_by_the_requests_in_flight(
    up: FakeUpstream, tmp_path: Path, gateway_factory
) -> None:
    """Measured: how far past its limit a person gets with 8 requests in flight when it is crossed.

    One worker: there the bound is exactly the requests in flight. Each further worker (like a replica)
    sees the others' spend within one refresh interval, which the README states on top of this bound.
    """
    folder = team_folder(tmp_path / "gw", up)
    key = add_key(folder, "kim", "--limit", "0.10/day")
    gw = gateway_factory(folder, "--workers", "1")
    up.default = lambda received: Reply(text="ok", delay=0.3)
    big = "word " * 8000  # ~$0.02 of input per request
    statuses: list[int] = []

    def client() -> None:
        for _ in range(20):
            answer = httpx.post(f"{gw.url}/v1/messages", headers={"x-api-key": key}, timeout=60,
                                json={"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": big}]})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                return

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    time.sleep(1.0)
    rows = ledger_rows(folder, "person = 'kim' AND status = 200")
    spent, each = sum(r["cost"] for r in rows), max(r["cost"] for r in rows)
    overshoot = spent - 0.10
    print(f"overshoot: limit $0.10, spent ${spent:.4f} in {len(rows)} requests of ${each:.4f}: "
          f"+${overshoot:.4f} = {overshoot / each:.1f} request(s) (8 in flight)")
    assert statuses.count(429) == 8
    assert 0 <= overshoot <= 8 * each + 1e-9  # at most the requests in flight when the limit was crossed


def test_a_graceful_stop_writes_every_record(upstream: FakeUpstream, tmp_path: Path) -> None:
    folder = team_folder(tmp_path / "gw", upstream)
    key = add_key(folder, "lee")
    gw = start_gateway(folder, "--workers", "2")
    upstream.reset()
    for i in range(20):
        assert httpx.post(f"{gw.url}/v1/messages", headers={"x-api-key": key, "X-Claude-Code-Session-Id": f"s{i}"},
                          json={"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
                          timeout=60).status_code == 200
    assert gw.stop() == 0  # SIGTERM at once: the last flush happens on the way out of each worker
    assert len(ledger_rows(folder, "person = 'lee'")) == 20
