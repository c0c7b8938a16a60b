"""Issue 15: a new user's first hour — nothing lost, nothing shown, clear and early messages.

Every test drives the real CLI (`python -m cc_gateway ...`) in a subprocess, on real files, and the
gateway tests a real `cc-gateway serve` in front of the fake upstream; Claude Code's own settings
writes are imitated the way it does them (it rewrites the whole JSON file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import (
    ROOT,
    Gateway,
    claude_bin,
    cli_env,
    free_port,
    init_gateway,
    read_env,
    run_cli,
    start_gateway,
    wait_until,
)
from fakeupstream import FakeUpstream

PROVIDER_KEY = "sk-proj-" + "Vb7Qm2Xr" * 5
OTHER_SECRET = "ghp_" + "Zt5Lw8Nc" * 5  # a user's own token in Claude Code's env block
PLACEHOLDER = "sk-your-openai-key-here"


def claude_settings(home: Path) -> Path:
    return home / ".claude" / "settings.json"


def claude_code_writes(path: Path, **members: object) -> None:
    """Do what Claude Code does to its settings file: parse it, set top-level keys, write it whole again."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(members)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def set_env_value(folder: Path, name: str, value: str) -> None:
    """Set NAME=value in a gateway folder's .env (replacing its line, or a commented placeholder)."""
    env = folder / ".env"
    text = env.read_text()
    line = f"{name}={value}"
    pattern = re.compile(rf"(?m)^#?\s*{name}=.*$")
    text = pattern.sub(line, text, count=1) if pattern.search(text) else text + line + "\n"
    env.write_text(text)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return init_gateway(tmp_path / "gw", "demo", port=free_port())


# =========================================================================== 1. secrets in diffs


def test_setup_claude_masks_the_old_and_the_new_key_in_both_diffs(demo: Path, isolated_home: Path) -> None:
    first = run_cli("setup-claude", "--dir", str(demo))
    assert first.returncode == 0, first.stderr
    old_key = read_env(demo)["LITELLM_MASTER_KEY"]
    claude_code_writes(
        claude_settings(isolated_home),
        env={**json.loads(claude_settings(isolated_home).read_text())["env"], "GITHUB_TOKEN": OTHER_SECRET},
    )
    new_key = "sk-" + "N3wKeyN3wKey" * 4
    set_env_value(demo, "LITELLM_MASTER_KEY", new_key)
    for args in (["--dry-run"], []):
        shown = run_cli("setup-claude", "--dir", str(demo), *args)
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout + shown.stderr
        assert '-    "ANTHROPIC_AUTH_TOKEN"' in text and '+    "ANTHROPIC_AUTH_TOKEN"' in text  # both sides shown
        for secret in (old_key, new_key, OTHER_SECRET):
            assert secret not in text
            assert secret[8:20] not in text  # not even most of it


def test_init_and_add_model_diffs_mask_secrets_on_both_sides(tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "openai-backed", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}")
    config = folder / "config.yaml"
    literal = "sk-literal-" + "Qp4Rt6Uy" * 4
    # a hand-written route with its key inline (doctor warns about it; cc-gateway must still never print it)
    config.write_text(
        config.read_text().replace(
            "model_list:\n",
            f"model_list:\n  - model_name: inline\n    litellm_params:\n      model: openai/x\n"
            f"      api_key: {literal}\n",
            1,
        )
    )
    new_key = "sk-proj-" + "Hh9Jk2Ll" * 5
    planned = run_cli("init", "--preset", "openai-backed", "--dir", str(folder), "--yes", "--dry-run",
                      "--key", f"OPENAI_API_KEY={new_key}")
    assert planned.returncode == 0, planned.stderr
    added = run_cli("add-model", "glm", "--provider", "openai", "--model", "gpt-x", "--dir", str(folder), "--dry-run")
    assert added.returncode == 0, added.stderr
    for shown in (planned, added):
        text = shown.stdout + shown.stderr
        for secret in (PROVIDER_KEY, new_key, literal):
            assert secret not in text and secret[8:20] not in text
    assert "api_key: sk-lit" in planned.stderr  # shown masked, not dropped


# =========================================================================== 2. undo keeps what others wrote


def test_undo_keeps_what_claude_code_wrote_after_setup(demo: Path, isolated_home: Path) -> None:
    target = claude_settings(isolated_home)
    assert run_cli("setup-claude", "--dir", str(demo)).returncode == 0
    claude_code_writes(target, theme="auto")
    undone = run_cli("setup-claude", "--undo")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(target.read_text()) == {"theme": "auto"}  # env block was all ours: gone
    assert "kept" in undone.stderr.lower() or "removed" in undone.stderr.lower()


def test_undo_restores_overwritten_values_and_keeps_the_rest(demo: Path, isolated_home: Path) -> None:
    target = claude_settings(isolated_home)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"env": {"ANTHROPIC_MODEL": "mine", "MY_TOOL": "x"}, "model": "opus"}, indent=2))
    assert run_cli("setup-claude", "--dir", str(demo)).returncode == 0
    claude_code_writes(target, theme="auto", model="sonnet")
    undone = run_cli("setup-claude", "--undo")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(target.read_text()) == {
        "env": {"ANTHROPIC_MODEL": "mine", "MY_TOOL": "x"},
        "model": "sonnet",
        "theme": "auto",
    }


def test_undo_keeps_a_value_someone_changed_after_setup(demo: Path, isolated_home: Path) -> None:
    target = claude_settings(isolated_home)
    assert run_cli("setup-claude", "--dir", str(demo)).returncode == 0
    data = json.loads(target.read_text())
    data["env"]["API_TIMEOUT_MS"] = "1234"  # the user's own choice since
    target.write_text(json.dumps(data, indent=2))
    assert run_cli("setup-claude", "--undo").returncode == 0
    assert json.loads(target.read_text()) == {"env": {"API_TIMEOUT_MS": "1234"}}


def test_undo_of_an_untouched_file_is_byte_exact_and_deletes_what_it_created(demo: Path, isolated_home: Path) -> None:
    target = claude_settings(isolated_home)
    target.parent.mkdir(parents=True)
    original = '{\n    "env": {"A": "1"},   "x": [1,2]\n}'
    target.write_text(original)
    assert run_cli("setup-claude", "--dir", str(demo)).returncode == 0
    assert run_cli("setup-claude", "--undo").returncode == 0
    assert target.read_text() == original
    target.unlink()
    target.parent.rmdir()
    assert run_cli("setup-claude", "--dir", str(demo)).returncode == 0
    assert run_cli("setup-claude", "--undo").returncode == 0
    assert not (isolated_home / ".claude").exists()


# =========================================================================== 3. project scope


def test_project_scope_puts_only_the_key_in_the_local_file(demo: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    done = run_cli("setup-claude", "--dir", str(demo), "--scope", "project", cwd=project)
    assert done.returncode == 0, done.stderr
    shared = json.loads((project / ".claude" / "settings.json").read_text())["env"]
    local = json.loads((project / ".claude" / "settings.local.json").read_text())["env"]
    assert local == {"ANTHROPIC_AUTH_TOKEN": read_env(demo)["LITELLM_MASTER_KEY"]}
    assert "ANTHROPIC_BASE_URL" in shared and "ANTHROPIC_AUTH_TOKEN" not in shared
    assert "ANTHROPIC_MODEL" not in shared  # issue 13: the demo serves Claude Code's own ids, nothing is pinned


# =========================================================================== 4. one placeholder rule


def test_serve_refuses_when_the_only_key_is_a_placeholder(tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "openai-backed", "--key", f"OPENAI_API_KEY={PLACEHOLDER}")
    set_env_value(folder, "OPENAI_API_KEY", PLACEHOLDER)
    done = run_cli("serve", "--dir", str(folder), "--port", str(free_port()))
    assert done.returncode == 1
    assert "OPENAI_API_KEY" in done.stderr and "loading LiteLLM" not in done.stderr
    models = run_cli("models", "--dir", str(folder))
    assert "OPENAI_API_KEY (NOT SET)" in models.stdout


# =========================================================================== 7. / 8. serve checks before LiteLLM


def test_serve_names_a_missing_model_by_file_line_and_path_before_loading_litellm(demo: Path) -> None:
    config = demo / "config.yaml"
    lines = config.read_text().splitlines(keepends=True)
    models = [i for i, line in enumerate(lines) if re.match(r"\s+model: ", line)]
    removed_at = models[1]
    del lines[removed_at]
    config.write_text("".join(lines))
    done = run_cli("serve", "--dir", str(demo), "--port", str(free_port()))
    assert done.returncode == 1
    assert re.search(r"config\.yaml:\d+: model_list\[1\]\.litellm_params\.model: missing", done.stderr), done.stderr
    assert "loading LiteLLM" not in done.stderr and "Traceback" not in done.stderr


def test_serve_refuses_a_config_litellm_would_not_load(demo: Path) -> None:
    conf = demo / "gateway.conf"
    conf.write_text((demo / "config.yaml").read_text())
    done = run_cli("serve", "--config", str(conf), "--port", str(free_port()))
    assert done.returncode in (1, 2)
    assert "gateway.conf" in done.stderr and ".yaml" in done.stderr
    assert "loading LiteLLM" not in done.stderr and "ready" not in done.stderr


# =========================================================================== 9. init over a folder it wrote


def test_init_replaces_files_it_wrote_and_nobody_changed(demo: Path) -> None:
    key = read_env(demo)["LITELLM_MASTER_KEY"]
    before = {p.name: p.read_bytes() for p in demo.iterdir() if p.is_file()}
    done = run_cli("init", "--preset", "anthropic", "--dir", str(demo), "--yes",
                   "--key", "ANTHROPIC_API_KEY=sk-ant-api03-" + "Ab3Cd5Ef" * 10)
    assert done.returncode == 0, done.stderr
    assert read_env(demo)["LITELLM_MASTER_KEY"] == key
    assert "preset anthropic" in (demo / "config.yaml").read_text().splitlines()[0]
    assert (demo / "config.yaml.bak").read_bytes() == before["config.yaml"]
    assert "config.yaml" in done.stderr and "replace" in done.stderr
    assert "would overwrite" not in done.stderr


def test_init_over_a_user_edited_file_is_a_conflict_without_a_whole_file_diff(demo: Path) -> None:
    config = demo / "config.yaml"
    config.write_text(config.read_text() + "# my own note\n")
    done = run_cli("init", "--preset", "anthropic", "--dir", str(demo), "--yes")
    assert done.returncode != 0
    assert "config.yaml" in done.stderr and "--dry-run" in done.stderr
    assert "+++ " not in done.stderr and "@@" not in done.stderr  # no diff dumped before the error
    assert config.read_text().endswith("# my own note\n")
    assert not (demo / "config.yaml.bak").exists()


# =========================================================================== 11. small things a user sees


def test_init_help_shows_the_defaults() -> None:
    shown = run_cli("init", "--help", env=cli_env(COLUMNS="200"))
    assert "Target folder [default: current folder]" in shown.stdout
    assert "Target folder ." not in shown.stdout


def test_a_mistyped_preset_gets_a_did_you_mean(tmp_path: Path) -> None:
    done = run_cli("init", "--preset", "antropic", "--dir", str(tmp_path / "x"), "--yes")
    assert done.returncode == 2 and "did you mean 'anthropic'" in done.stderr


def test_doctor_reports_an_env_parse_error_on_the_env_row(demo: Path) -> None:
    with (demo / ".env").open("a") as env:
        env.write("NOT A VALID LINE\n")
    done = run_cli("doctor", "--dir", str(demo), "--no-network", "--json")
    rows = {row["name"]: row for row in json.loads(done.stdout)["checks"]}
    assert rows[".env"]["status"] == "fail" and ".env:" in rows[".env"]["detail"]
    assert rows["config.yaml"]["status"] == "ok"


def test_doctor_says_how_many_variables_in_good_english(demo: Path) -> None:
    done = run_cli("doctor", "--dir", str(demo), "--no-network", "--json")
    details = " ".join(row["detail"] for row in json.loads(done.stdout)["checks"])
    assert "the 1 variables" not in details and not re.search(r"\b1 variables\b", details)


# =========================================================================== 12. README Quickstart


def test_readme_quickstart_installs_claude_code_and_activates_the_venv_in_the_second_terminal() -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quickstart, re.S)
    assert len(blocks) >= 2
    assert "npm install -g @anthropic-ai/claude-code" in quickstart
    assert re.search(r"(^|&& |\n)\. \S*\.venv/bin/activate|source \S*\.venv/bin/activate", blocks[1]), blocks[1]


# =========================================================================== a real gateway: 4, 6, 10, 11

DEAD_ROUTE = """  - model_name: dead
    litellm_params:
      model: openai/gpt-dead
      api_key: os.environ/OPENAI_API_KEY
      api_base: http://127.0.0.1:{dead_port}/v1
    model_info:
      max_output_tokens: 1000
  - model_name: spare
    litellm_params:
      model: openai/spare-model
      api_key: os.environ/SPARE_API_KEY
      api_base: os.environ/OPENAI_API_BASE
"""


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> tuple[Gateway, list]:
    """An openai-backed gateway (2 workers, log in a file) with a route to a stopped upstream and one whose
    key is still a placeholder; returns it with what the upstream received while it started."""
    folder = tmp_path_factory.mktemp("first-hour")
    init_gateway(folder, "openai-backed", "--api-base", f"openai={upstream.url}/v1",
                 "--key", f"OPENAI_API_KEY={PROVIDER_KEY}")
    config = folder / "config.yaml"
    dead_port = free_port()
    config.write_text(config.read_text().replace("model_list:\n", "model_list:\n" + DEAD_ROUTE.format(
        dead_port=dead_port), 1))
    set_env_value(folder, "SPARE_API_KEY", "sk-your-spare-key-here")
    upstream.reset()
    gateway = start_gateway(folder, "--workers", "2")
    time.sleep(1.5)  # LiteLLM's start-up jobs run just after readiness
    at_start = list(upstream.requests)
    gateway.dead_port = dead_port  # type: ignore[attr-defined]
    yield gateway, at_start
    gateway.stop()


def test_start_up_sends_nothing_upstream(gw: tuple[Gateway, list]) -> None:
    _, at_start = gw
    assert [(r.method, r.path) for r in at_start] == []


def test_log_file_has_whole_panels_and_no_banner_or_terminal_codes(gw: tuple[Gateway, list]) -> None:
    gateway, _ = gw
    log = gateway.log()
    assert "\x1b[" not in log
    assert "Proxy initialized with Config" not in log
    routes_line = next(line for line in log.splitlines() if "Routes:" in line)
    assert "spare" in routes_line and "dead" in routes_line, routes_line


def test_a_placeholder_key_is_warned_at_start_and_its_route_answers_424(
    gw: tuple[Gateway, list], upstream: FakeUpstream
) -> None:
    gateway, _ = gw
    assert "route spare is unavailable until SPARE_API_KEY is set" in gateway.log()
    upstream.reset()
    reply = httpx.post(f"{gateway.url}/v1/messages", headers=gateway.headers(), timeout=30,
                       json={"model": "spare", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 424 and "SPARE_API_KEY" in reply.text  # issue 13: 424, not retried
    assert reply.headers["x-should-retry"] == "false"
    assert upstream.requests == []
    assert "sk-your-spare" not in gateway.log()


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_api_hello_is_answered_without_a_key(gw: tuple[Gateway, list], method: str) -> None:
    gateway, _ = gw
    reply = httpx.request(method, f"{gateway.url}/api/hello", timeout=10)
    assert reply.status_code == 200
    line = wait_until(lambda: [x for x in gateway.log().splitlines() if f"{method} /api/hello" in x], 10)
    assert line and "status=200" in line[-1] and "status=401" not in gateway.log().split("/api/hello")[-1]


def test_doctor_names_a_stopped_upstream_and_the_log_stays_short(gw: tuple[Gateway, list]) -> None:
    gateway, _ = gw
    before = len(gateway.log().splitlines())
    done = run_cli("doctor", "--dir", str(gateway.folder), "--url", gateway.url, "--route", "dead", "--json",
                   timeout=120)
    rows = {row["name"]: row for row in json.loads(done.stdout)["checks"]}
    probe = rows["route dead"]
    assert probe["status"] == "fail"
    assert f"connection refused at http://127.0.0.1:{gateway.dead_port}/v1" in probe["detail"]  # type: ignore[attr-defined]
    new = gateway.log().splitlines()[before:]
    assert not any("Traceback" in line for line in new), "\n".join(new[:40])
    failed = [line for line in new if "model=dead" in line]
    assert len(failed) >= 1 and all("status=5" in line for line in failed)
    assert len(new) <= 3 * len(failed) + 2, "\n".join(new)  # about one line per request


@pytest.mark.skipif(claude_bin() is None, reason="Claude Code CLI not installed")
def test_claude_codes_hello_is_not_an_auth_failure(gw: tuple[Gateway, list], tmp_path: Path) -> None:
    newest = ROOT / ".cache" / "npm-new" / "bin" / "claude"
    binary = str(newest) if newest.exists() else claude_bin()
    gateway, _ = gw
    before = len(gateway.log())
    env = cli_env(tmp_path, ANTHROPIC_BASE_URL=gateway.url, ANTHROPIC_AUTH_TOKEN=gateway.key,
                  ANTHROPIC_MODEL="claude-sonnet-5")
    subprocess.run([binary, "-p", "say hi", "--model", "claude-sonnet-5"], env=env, cwd=tmp_path,
                   capture_output=True, text=True, timeout=120)
    log = gateway.log()[before:]
    assert "status=401" not in log, log


# =========================================================================== 11. Ctrl-C while loading


def test_double_ctrl_c_while_loading_exits_quietly(tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "openai-backed", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}")
    log = folder / "serve.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "cc_gateway", "serve", "--dir", str(folder), "--port", str(free_port())],
            env=cli_env(), stdout=handle, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
    try:
        assert wait_until(lambda: "Waiting for application startup" in log.read_text(), 90, 0.01)
        process.send_signal(signal.SIGINT)
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert "CancelledError" not in text and "Traceback" not in text, text
    assert code in (0, 130), text


def test_sha_of_written_files_is_recorded_without_secrets(demo: Path, isolated_home: Path) -> None:
    key = read_env(demo)["LITELLM_MASTER_KEY"]
    hashed = hashlib.sha256((demo / ".env").read_bytes()).hexdigest()
    places = [*demo.rglob("*"), *isolated_home.rglob("*")]
    records = [p for p in places if p.is_file() and hashed in p.read_text(errors="replace")]
    assert records, "init keeps a record of what it wrote"
    for record in records:
        assert key not in record.read_text()
        assert os.stat(record).st_mode & 0o077 == 0


# =========================================================================== 4. one weak-key and placeholder rule


def test_serve_doctor_and_init_agree_on_a_short_master_key(demo: Path) -> None:
    short = "sk-Ab3Cd5Ef7Gh9"  # sk- but under 20 characters: serve refuses it
    set_env_value(demo, "LITELLM_MASTER_KEY", short)
    served = run_cli("serve", "--dir", str(demo), "--port", str(free_port()))
    assert served.returncode == 1 and "LITELLM_MASTER_KEY" in served.stderr
    checked = run_cli("doctor", "--dir", str(demo), "--no-network", "--json")
    rows = {row["name"]: row for row in json.loads(checked.stdout)["checks"]}
    assert rows["key shapes"]["status"] == "fail" and "LITELLM_MASTER_KEY" in rows["key shapes"]["detail"]
    assert run_cli("init", "--preset", "demo", "--dir", str(demo), "--yes", "--force").returncode == 0
    assert read_env(demo)["LITELLM_MASTER_KEY"] != short  # init replaces it too


def test_setup_claude_refuses_a_placeholder_master_key(demo: Path) -> None:
    set_env_value(demo, "LITELLM_MASTER_KEY", "changeme")
    done = run_cli("setup-claude", "--dir", str(demo), "--dry-run")
    assert done.returncode == 1 and "placeholder" in done.stderr and "changeme" not in done.stdout


def test_no_spinner_left_among_log_lines_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the spinner stops before the server and its workers log: a Ctrl-C while the config
    loads leaves no spinner fragment in front of a log line or on the prompt."""
    import pty
    import select

    folder = init_gateway(tmp_path / "gw", "openai-backed", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}")
    pid, fd = pty.fork()
    if pid == 0:  # the child: serve on a terminal
        os.environ.update(cli_env(), TERM="xterm", COLUMNS="120")
        os.execv(sys.executable, [sys.executable, "-m", "cc_gateway", "serve", "--dir", str(folder),
                                  "--port", str(free_port()), "--workers", "2"])
    output, sent, deadline = b"", False, time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and b"Waiting for application startup" in output:
                os.write(fd, b"\x03")
                sent = True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode("utf-8", "replace")
    assert sent, text
    after_logs = text[text.index("uvicorn.error"):]
    assert not re.search("[\u2800-\u28ff]", after_logs), after_logs  # no spinner frame once the server logs


def test_project_scope_removes_copies_an_older_run_left_in_the_local_file(demo: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    port = read_env(demo)["CC_GATEWAY_PORT"]
    local_file = project / ".claude" / "settings.local.json"
    local_file.write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "MINE": "x"}}))
    done = run_cli("setup-claude", "--dir", str(demo), "--scope", "project", cwd=project)
    assert done.returncode == 0, done.stderr
    local = json.loads(local_file.read_text())["env"]
    assert local == {"MINE": "x", "ANTHROPIC_AUTH_TOKEN": read_env(demo)["LITELLM_MASTER_KEY"]}
