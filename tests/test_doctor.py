"""`cc-gateway doctor` against real gateways in front of the fake upstream, and on broken folders.

Two gateways serve the module: a healthy one (anthropic preset, Claude Code set up with
`setup-claude`) and a broken one (a dead upstream, a route whose key variable is unset, an openai/
route that goes to the Responses API). Set-ups that need no running gateway are checked in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Gateway, claude_bin, cli_env, free_port, init_gateway, read_env, run_cli, start_gateway
from fakeupstream import FakeUpstream, Fault

from cc_gateway import doctor
from cc_gateway.claude import versions as claude_code
from cc_gateway.doctor import gateway as doctor_gateway
from cc_gateway.gateway.folder import load_gateway

PROVIDER_KEY = "sk-ant-api03-" + "Zq7Wx3Kp" * 6
OPENAI_KEY = "sk-proj-" + "Hb4Tn8Lm" * 5
HAIKU = "claude-haiku-4-5-20251001"
OAUTH_TOKENS = ",".join(f"sk-ant-oat01-{'t0k' * 8}{i}" for i in range(2))
CHECK_KEYS = {"name", "status", "detail", "hint", "group", "latency_ms"}
REPORT_KEYS = {"version", "ok", "folder", "url", "elapsed_ms", "summary", "checks"}
BROKEN_ROUTES = """  - model_name: dead
    litellm_params:
      model: anthropic/dead-model
      api_key: os.environ/ANTHROPIC_API_KEY
      api_base: http://127.0.0.1:{dead_port}
  - model_name: spare
    litellm_params:
      model: anthropic/spare-model
      api_key: os.environ/SPARE_API_KEY
      api_base: os.environ/ANTHROPIC_API_BASE
  - model_name: gpt
    litellm_params:
      model: openai/gpt-fake
      api_key: os.environ/OPENAI_API_KEY
      api_base: {upstream}/v1
"""


def _path_env() -> str:
    """PATH with the test set-up's Claude Code CLI first."""
    binary = claude_bin()
    prefix = f"{Path(binary).parent}{os.pathsep}" if binary else ""
    return prefix + os.environ.get("PATH", "")


def run_doctor(
    folder: Path, home: Path, *args: str, json_output: bool = True, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run `cc-gateway doctor --dir folder` with HOME=home from an empty project folder."""
    project = home / "project"
    project.mkdir(exist_ok=True)
    flags = ["--json"] if json_output else []
    done = run_cli(
        "doctor",
        "--dir",
        str(folder),
        *flags,
        *args,
        cwd=project,
        env=cli_env(home, PATH=_path_env(), **env),
        timeout=120,
    )
    assert done.returncode in (0, 3), done.stderr
    return done, (json.loads(done.stdout) if json_output else {})


def row(report: dict, name: str) -> dict:
    """The row called `name`."""
    rows = [c for c in report["checks"] if c["name"] == name]
    assert len(rows) == 1, [c["name"] for c in report["checks"]]
    return rows[0]


def write_claude_settings(home: Path, settings: dict) -> None:
    """Write ~/.claude/settings.json and mark onboarding done."""
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))


def no_cooldowns(folder: Path) -> None:
    """Turn LiteLLM's cooldowns off: probing a failing route must not take it out for a minute."""
    config = folder / "config.yaml"
    text = config.read_text()
    if "disable_cooldowns: true" not in text:
        config.write_text(text.replace("router_settings:\n", "router_settings:\n  disable_cooldowns: true\n"))


def anthropic_folder(folder: Path, upstream: FakeUpstream) -> tuple[Path, int]:
    """Render the anthropic preset in front of the fake upstream, cooldowns off; return (folder, port)."""
    port = free_port()
    init_gateway(
        folder,
        "anthropic",
        "--api-base",
        f"anthropic={upstream.url}",
        "--key",
        f"ANTHROPIC_API_KEY={PROVIDER_KEY}",
        port=port,
    )
    no_cooldowns(folder)
    return folder, port


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def healthy(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> tuple[Gateway, Path]:
    """A gateway with nothing wrong, and a HOME where `setup-claude` pointed Claude Code at it."""
    folder, port = anthropic_folder(tmp_path_factory.mktemp("healthy"), upstream)
    home = tmp_path_factory.mktemp("healthy-home")
    done = run_cli("setup-claude", "--dir", str(folder), "--skip-onboarding", env=cli_env(home), cwd=home)
    assert done.returncode == 0, done.stderr
    gateway = start_gateway(folder, port=port)
    yield gateway, home
    gateway.stop()


@pytest.fixture(scope="module")
def healthy_report(healthy: tuple[Gateway, Path], upstream: FakeUpstream) -> tuple[subprocess.CompletedProcess, dict]:
    """One full doctor run against the healthy gateway."""
    upstream.reset()
    gateway, home = healthy
    return run_doctor(gateway.folder, home)


@pytest.fixture(scope="module")
def broken(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> tuple[Gateway, Path]:
    """A gateway on every address, with subscription tokens in .env, a dead upstream, an unset key variable and
    an openai/ route on the Responses API."""
    folder, port = anthropic_folder(tmp_path_factory.mktemp("broken"), upstream)
    config = folder / "config.yaml"
    extra = BROKEN_ROUTES.format(dead_port=free_port(), upstream=upstream.url)
    config.write_text(config.read_text().replace("model_list:\n", "model_list:\n" + extra, 1))
    with (folder / ".env").open("a") as env:
        env.write(f"OPENAI_API_KEY={OPENAI_KEY}\nCLAUDE_OAUTH_TOKENS={OAUTH_TOKENS}\n")
    home = tmp_path_factory.mktemp("broken-home")
    gateway = start_gateway(folder, "--host", "0.0.0.0", port=port)
    yield gateway, home
    gateway.stop()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder nobody serves, without routes for Claude Code's haiku id (nor a claude-* catch-all)."""
    folder = init_gateway(
        tmp_path_factory.mktemp("stopped"), "anthropic", "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}", port=free_port()
    )
    for route in ("claude-*", HAIKU):
        done = run_cli("remove-model", route, "--dir", str(folder))
        assert done.returncode == 0, done.stderr
    return folder


# --------------------------------------------------------------------------- a healthy gateway


@pytest.mark.e2e
def test_healthy_gateway_every_row_ok(healthy_report: tuple[subprocess.CompletedProcess, dict]) -> None:
    if claude_bin() is None:
        pytest.skip("the Claude Code CLI is not installed (run the test set-up)")
    done, report = healthy_report
    assert done.returncode == 0, done.stdout
    assert report["ok"] is True
    not_ok = [(c["name"], c["status"], c["detail"]) for c in report["checks"] if c["status"] != "ok"]
    assert not_ok == []
    routes = [c for c in report["checks"] if c["group"] == "Routes"]
    assert {c["name"] for c in routes} == {f"route {r.name}" for r in load_gateway(done_folder(report)).routes}
    assert all(isinstance(c["latency_ms"], int) and c["latency_ms"] >= 0 for c in routes)
    assert "as claude-" in row(report, "route claude-*")["detail"]  # the wildcard is probed with a concrete id


def done_folder(report: dict) -> Path:
    """The gateway folder a report is about."""
    return Path(report["folder"])


@pytest.mark.e2e
def test_probe_is_what_claude_code_sends(healthy: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = healthy
    done, report = run_doctor(gateway.folder, home, "--route", HAIKU)
    assert done.returncode == 0, report
    sent = [r for r in fresh_upstream.requests if r.api == "messages"]
    assert len(sent) == 1
    assert sent[0].stream is True and sent[0].tool_names == ["get_time"] and sent[0].model == HAIKU
    assert [c["name"] for c in report["checks"] if c["group"] == "Routes"] == [f"route {HAIKU}"]


@pytest.mark.e2e
def test_json_shape_is_stable(healthy_report: tuple[subprocess.CompletedProcess, dict]) -> None:
    _, report = healthy_report
    assert set(report) == REPORT_KEYS
    assert report["version"] == 1
    assert set(report["summary"]) == {"ok", "warn", "fail", "skip"}
    assert sum(report["summary"].values()) == len(report["checks"])
    groups = ["Files", "Gateway", "Routes", "Claude Code", "Known traps", "Compliance"]
    assert [g for g in groups if any(c["group"] == g for c in report["checks"])] == groups
    for check in report["checks"]:
        assert set(check) == CHECK_KEYS
        assert check["status"] in ("ok", "warn", "fail", "skip")
        assert check["detail"] and "\n" not in check["detail"] and "\n" not in check["hint"]
    assert PROVIDER_KEY not in json.dumps(report)


@pytest.mark.e2e
def test_table_on_stdout_summary_on_stderr(healthy: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = healthy
    done, _ = run_doctor(gateway.folder, home, "--no-network", json_output=False)
    assert done.returncode == 0
    assert "reachable" in done.stdout and "Known traps" in done.stdout
    assert "skip" in done.stdout  # the route probes
    assert " ok" in done.stderr and " s" in done.stderr and "fail" not in done.stderr


@pytest.mark.e2e
def test_no_network_skips_every_upstream_call(healthy: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = healthy
    done, report = run_doctor(gateway.folder, home, "--no-network")
    assert done.returncode == 0
    assert fresh_upstream.requests == []
    routes = [c for c in report["checks"] if c["group"] == "Routes"]
    assert routes and all(c["status"] == "skip" and "--no-network" in c["detail"] for c in routes)
    assert row(report, "auth")["status"] == "ok"  # the gateway itself is still checked


# --------------------------------------------------------------------------- upstream failures


@pytest.mark.e2e
def test_wrong_upstream_key(healthy: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = healthy
    fresh_upstream.script(Fault(401, message="invalid x-api-key"), times=None, model=HAIKU)
    done, report = run_doctor(gateway.folder, home, "--route", HAIKU)
    assert done.returncode == 3
    probe = row(report, f"route {HAIKU}")
    assert probe["status"] == "fail"
    assert probe["detail"] == "upstream rejects the key in ANTHROPIC_API_KEY"
    assert "ANTHROPIC_API_KEY" in probe["hint"] and str(gateway.folder / ".env") in probe["hint"]


@pytest.mark.e2e
def test_expired_oauth_token(healthy: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = healthy
    expired = "OAuth token has expired. Please obtain a new token or refresh your existing token."
    fresh_upstream.script(Fault(401, message=expired), times=None, model=HAIKU)
    done, report = run_doctor(gateway.folder, home, "--route", HAIKU)
    assert done.returncode == 3
    assert row(report, f"route {HAIKU}")["detail"] == "OAuth token expired — run claude setup-token"


@pytest.mark.e2e
def test_model_not_found_upstream(healthy: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = healthy
    fresh_upstream.script(Fault(404, message="model: claude-haiku-4-5-20251001"), times=None, model=HAIKU)
    done, report = run_doctor(gateway.folder, home, "--route", HAIKU)
    probe = row(report, f"route {HAIKU}")
    assert done.returncode == 3
    assert probe["detail"].startswith(f"model not found upstream (anthropic/{HAIKU})")
    assert f"route {HAIKU}" in probe["hint"]


@pytest.mark.e2e
def test_dead_upstream(broken: tuple[Gateway, Path]) -> None:
    gateway, home = broken
    done, report = run_doctor(gateway.folder, home, "--route", "dead")
    config = (gateway.folder / "config.yaml").read_text()
    dead_base = next(
        line.split("api_base: ")[1] for line in config.splitlines() if "api_base: http://127.0.0.1:" in line
    )
    assert done.returncode == 3
    assert row(report, "route dead")["detail"] == f"connection refused at {dead_base}"


@pytest.mark.e2e
def test_missing_variable(broken: tuple[Gateway, Path]) -> None:
    gateway, home = broken
    done, report = run_doctor(gateway.folder, home, "--route", "spare")
    assert done.returncode == 3
    variables = row(report, "variables")
    assert variables["status"] == "fail"
    assert variables["detail"] == "SPARE_API_KEY is not set (route spare answers 424)"
    assert variables["hint"] == (
        f"set SPARE_API_KEY in {gateway.folder / '.env'}; "
        "the gateway applies .env on save: the 'loaded config' row says whether it did"
    )
    assert row(report, "route spare")["detail"] == "SPARE_API_KEY is not set, so the route answers 424"


@pytest.mark.e2e
def test_upstream_without_responses_api(broken: tuple[Gateway, Path], fresh_upstream: FakeUpstream) -> None:
    gateway, home = broken
    fresh_upstream.script(Fault(404), times=None, api="responses")
    done, report = run_doctor(gateway.folder, home, "--route", "gpt")
    assert [r.api for r in fresh_upstream.requests] == ["responses"]
    probe = row(report, "route gpt")
    assert probe["detail"] == "upstream has no Responses API — keep this route on chat completions"
    assert "use_chat_completions_url_for_anthropic_messages: true" in probe["hint"]
    assert row(report, "Responses API")["status"] == "warn"  # the static trap check saw it coming
    assert done.returncode == 3


@pytest.mark.e2e
def test_subscription_tokens_beyond_loopback(broken: tuple[Gateway, Path]) -> None:
    addresses = doctor_gateway._local_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback address")
    gateway, home = broken
    done, report = run_doctor(gateway.folder, home, "--no-network")
    listen, tokens = row(report, "listen address"), row(report, "subscription tokens")
    assert done.returncode == 3
    assert (
        listen["status"] == "ok" and listen["detail"] == f"reachable at {addresses[0]} beyond loopback; keys required"
    )
    assert tokens["status"] == "fail"
    assert tokens["detail"].startswith(f"2 subscription OAuth token(s) served at {addresses[0]}, beyond loopback")
    assert tokens["hint"].startswith("serve on 127.0.0.1")
    assert "t0k" not in json.dumps(report)


@pytest.mark.e2e
def test_unknown_route_flag(broken: tuple[Gateway, Path]) -> None:
    gateway, home = broken
    done, report = run_doctor(gateway.folder, home, "--route", "nope", "--no-network")
    assert done.returncode == 3
    assert row(report, "route nope")["detail"] == "config.yaml has no route 'nope'"


# --------------------------------------------------------------------------- Claude Code set-ups


@pytest.mark.e2e
def test_stale_gateway_key_in_settings(healthy: tuple[Gateway, Path], tmp_path: Path) -> None:
    gateway, _ = healthy
    stale = "sk-" + "0ldK3y" * 6
    write_claude_settings(tmp_path, {"env": {"ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_AUTH_TOKEN": stale}})
    done, report = run_doctor(gateway.folder, tmp_path, "--no-network")
    key = row(report, "gateway key")
    assert done.returncode == 3
    assert key["status"] == "fail"
    assert key["detail"].startswith(f"ANTHROPIC_AUTH_TOKEN in {tmp_path / '.claude' / 'settings.json'} (user)")
    assert f"is not the gateway key in {gateway.folder / '.env'}" in key["detail"] and stale not in json.dumps(report)
    assert key["hint"].startswith(f"cc-gateway setup-claude --dir {gateway.folder}")


@pytest.mark.e2e
def test_settings_overridden_by_shell_variable(healthy: tuple[Gateway, Path], tmp_path: Path) -> None:
    gateway, _ = healthy
    settings = {
        "env": {"ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_AUTH_TOKEN": gateway.key},
        "model": "claude-sonnet-5",
    }
    write_claude_settings(tmp_path, settings)
    done, report = run_doctor(gateway.folder, tmp_path, "--no-network", ANTHROPIC_MODEL="gpt-4o")
    shell = row(report, "shell variables")
    assert done.returncode == 3
    assert shell["status"] == "fail"
    assert shell["detail"] == (
        f'ANTHROPIC_MODEL=gpt-4o from the shell overrides "model": "claude-sonnet-5" in '
        f"{tmp_path / '.claude' / 'settings.json'}, and the gateway has no route for it"
    )
    assert shell["hint"].startswith("unset ANTHROPIC_MODEL")
    assert row(report, "default models")["detail"].startswith("gpt-4o (main, ANTHROPIC_MODEL from the shell)")
    assert row(report, "gateway key")["status"] == "ok"


def test_gateway_down(stopped: Path, tmp_path: Path) -> None:
    port = read_env(stopped)["CC_GATEWAY_PORT"]
    done, report = run_doctor(stopped, tmp_path, "--no-network")
    reachable = row(report, "reachable")
    assert done.returncode == 3
    assert reachable["detail"] == f"nothing listens at http://127.0.0.1:{port}"
    assert reachable["hint"] == f"start it: cc-gateway serve --dir {stopped}"
    assert {row(report, n)["status"] for n in ("readiness", "auth", "listen address")} == {"skip"}


def test_default_model_not_routed(stopped: Path, tmp_path: Path) -> None:
    done, report = run_doctor(stopped, tmp_path, "--no-network")
    models = row(report, "default models")
    assert done.returncode == 3
    assert models["status"] == "fail"
    data = claude_code.known_models()  # the release the data describes: its ids, not 2.1.197's, lack a route
    main = data["default_models"]["main"]
    assert models["detail"].startswith(f"{main} (main, Claude Code {data['version']}'s default) has no route")
    assert "'model not found'" in models["detail"] and "ANTHROPIC_MODEL" in models["hint"]


# --------------------------------------------------------------------------- files and traps (in-process)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An anthropic gateway folder (not served) with a strong key."""
    return init_gateway(tmp_path / "gw", "anthropic", "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}", port=free_port())


def check(folder: Path, name: str) -> doctor.CheckResult:
    """Run doctor in-process without network and return one row."""
    options = doctor.DoctorOptions(folder=folder, network=False, home=folder.parent, environ={"PATH": ""})
    rows = [r for r in doctor.run_checks(options).results if r.name == name]
    assert len(rows) == 1
    return rows[0]


def edit(path: Path, old: str, new: str) -> None:
    """Replace text in a file (once, and it must be there)."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_config_problem_names_file_and_line(folder: Path) -> None:
    config = folder / "config.yaml"
    edit(config, "    sonnet: claude-sonnet-5", "    sonnet: claude-sonet-5")
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "claude-sonet-5" in text)
    result = check(folder, "config.yaml")
    assert result.status == "fail"
    assert result.detail == (
        f"{config}:{line}: router_settings.model_group_alias.sonnet: points at 'claude-sonet-5', no such route"
    )


def test_config_that_does_not_parse(folder: Path) -> None:
    config = folder / "config.yaml"
    config.write_text(config.read_text() + "router_settings: [\n")
    result = check(folder, "config.yaml")
    assert result.status == "fail" and f"{config}:" in result.detail and "invalid YAML" in result.detail
    assert check(folder, "variables").status == "skip"


def test_env_readable_by_others(folder: Path) -> None:
    (folder / ".env").chmod(0o644)
    result = check(folder, ".env")
    assert result.status == "fail" and "mode 0644" in result.detail and result.hint == f"chmod 600 {folder / '.env'}"


def test_placeholder_variable(folder: Path) -> None:
    edit(folder / ".env", f"ANTHROPIC_API_KEY={PROVIDER_KEY}", "ANTHROPIC_API_KEY=your-key-here")
    result = check(folder, "variables")
    assert result.status == "fail" and result.detail == "ANTHROPIC_API_KEY is still a placeholder"


def test_weak_master_key(folder: Path) -> None:
    master = read_env(folder)["LITELLM_MASTER_KEY"]
    edit(folder / ".env", master, "sk-1234")
    result = check(folder, "weak or literal keys")
    assert result.status == "fail" and "LITELLM_MASTER_KEY is a well-known key" in result.detail


def test_literal_key_in_config(folder: Path) -> None:
    edit(folder / "config.yaml", "api_key: os.environ/ANTHROPIC_API_KEY", f"api_key: {PROVIDER_KEY}")
    result = check(folder, "weak or literal keys")
    assert (
        result.status == "fail"
        and result.detail == "config.yaml holds a literal key at model_list[0].litellm_params.api_key"
    )
    assert PROVIDER_KEY not in result.detail


def test_master_key_under_litellm_settings(folder: Path) -> None:
    edit(
        folder / "config.yaml",
        "litellm_settings:\n",
        "litellm_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n",
    )
    result = check(folder, "master_key placement")
    assert result.status == "fail" and "LiteLLM ignores it" in result.detail


def test_route_name_with_1m_suffix(folder: Path) -> None:
    edit(folder / "config.yaml", "- model_name: claude-sonnet-5\n", "- model_name: claude-sonnet-5[1m]\n")
    result = check(folder, "[1m] route names")
    assert result.status == "fail" and "Claude Code strips the suffix" in result.detail
    assert result.hint == "rename it to claude-sonnet-5"


def test_lone_deployment_cooldown(folder: Path) -> None:
    assert check(folder, "lone-deployment cooldown").status == "ok"  # the preset turns cooldowns off
    edit(folder / "config.yaml", "  disable_cooldowns: true\n", "")
    result = check(folder, "lone-deployment cooldown")
    assert result.status == "warn" and "claude-sonnet-5" in result.detail and "in cooldown' for 60 s" in result.detail
    assert result.hint.startswith("add `disable_cooldowns: true` under router_settings")


def test_hook_module_missing(folder: Path) -> None:
    (folder / "cc_gateway_runtime.py").unlink()
    result = check(folder, "hook modules")
    assert result.status == "fail" and "cc_gateway_runtime.py is missing next to config.yaml" in result.detail


def test_hook_name_unknown(folder: Path) -> None:
    edit(folder / "config.yaml", "custom_auth: cc_gateway_runtime.auth", "custom_auth: cc_gateway_runtime.nosuch")
    result = check(folder, "hook modules")
    assert (
        result.status == "fail" and "cc_gateway_runtime.nosuch: cc-gateway's runtime has no 'nosuch'" in result.detail
    )


def test_oauth_tokens_pooled(folder: Path) -> None:
    tokens = ",".join(f"sk-ant-oat01-{'x' * 20}{i}" for i in range(2))
    with (folder / ".env").open("a") as env:
        env.write(f"CLAUDE_OAUTH_TOKENS={tokens}\n")
    result = check(folder, "subscription tokens")
    assert result.status == "warn" and "2 subscription OAuth tokens pooled" in result.detail


def test_doctor_does_not_import_litellm(folder: Path) -> None:
    code = (
        "import sys; from cc_gateway import doctor; "
        f"doctor.run_checks(doctor.DoctorOptions(folder=__import__('pathlib').Path({str(folder)!r}), network=False)); "
        "print('litellm' in sys.modules)"
    )
    done = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(folder.parent))
    assert done.stdout.strip() == "False", done.stderr


def test_bad_url_is_a_usage_error(folder: Path) -> None:
    done = run_cli("doctor", "--dir", str(folder), "--url", "localhost:4000", env=cli_env(folder.parent))
    assert done.returncode == 2
    assert done.stderr.startswith("error: --url 'localhost:4000': expected http(s)://host:port")


def test_port_held_by_something_else(folder: Path, fresh_upstream: FakeUpstream) -> None:
    options = doctor.DoctorOptions(folder=folder, url=fresh_upstream.url + "/v1", network=False, home=folder.parent)
    report = doctor.run_checks(options)
    reachable = next(r for r in report.results if r.name == "reachable")
    assert reachable.status == "fail"
    assert reachable.detail.startswith(f"port {fresh_upstream.port} is held by something that isn't the gateway")
    assert report.url == fresh_upstream.url


@pytest.mark.e2e
def test_gateway_started_with_another_key(healthy: tuple[Gateway, Path], tmp_path: Path) -> None:
    gateway, home = healthy
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", ".env", "cc_gateway_runtime.py"):
        (copy / name).write_bytes((gateway.folder / name).read_bytes())
    (copy / ".env").chmod(0o600)
    edit(copy / ".env", gateway.key, "sk-" + "N3wK3y" * 6)
    done, report = run_doctor(copy, home, "--no-network")
    auth = row(report, "auth")
    assert done.returncode == 3
    assert auth["detail"] == "the key in .env is refused (401): the running gateway uses another"
    assert row(report, "gateway key")["detail"].endswith(f"is not the gateway key in {copy / '.env'} (stale?)")


def test_probe_kinds_and_wildcard_ids(tmp_path: Path) -> None:
    from cc_gateway.doctor.routes import _is_bridge, probe_model

    bridge = load_gateway(init_gateway(tmp_path / "bridge", "oauth-bridge", port=free_port()))
    assert all(_is_bridge(bridge, r) for r in bridge.routes)  # OpenAI clients: probed with chat completions
    multi = load_gateway(init_gateway(tmp_path / "multi", "multi-provider", port=free_port()))
    chosen = {r.name: probe_model(multi, r) for r in multi.routes}
    assert not any(_is_bridge(multi, r) for r in multi.routes)
    assert chosen["glm"] == "glm"
    assert multi.resolve(chosen["anthropic/*"]) == "anthropic/*" and chosen["anthropic/*"].startswith(
        "anthropic/claude-"
    )
    assert multi.resolve(chosen["claude-*"]) == "claude-*"
