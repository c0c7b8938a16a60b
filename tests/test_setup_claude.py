"""`setup-claude`, `env` and `claude`: every flag and error path, then the real Claude Code CLI on a real gateway."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import claude_bin, cli_env, free_port, init_gateway, read_env, run_cli, start_gateway
from typer.testing import CliRunner

from cc_gateway.claude import versions as claude_code
from cc_gateway.cli import app
from cc_gateway.cli.claude import _export_line
from cc_gateway.gateway.folder import load_gateway
from cc_gateway.gateway.presets import preset_names

runner = CliRunner()
DEMO_REPLY = "Hello from the cc-gateway demo."
UPSTREAM_KEY = "sk-ant-upstream-" + "k3y" * 10


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under folder, by relative name."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo gateway folder (rendered once per module)."""
    return init_gateway(tmp_path_factory.mktemp("demo-gw"), "demo", port=free_port())


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-provider gateway folder: static tokens."""
    return init_gateway(
        tmp_path_factory.mktemp("multi-gw"), "multi-provider", "--key", "PROXY_STATIC_TOKEN=static-token-abcdef123456"
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder, made the current folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def setup(gateway: Path, *args: str) -> object:
    """Invoke `setup-claude --dir gateway ARGS` in-process."""
    return runner.invoke(app, ["setup-claude", "--dir", str(gateway), *args])


def env_block(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())["env"]


# --------------------------------------------------------------------------- setup-claude: files


def test_user_scope_writes_every_variable_and_undo_removes_what_it_created(
    demo_dir: Path, project: Path, isolated_home: Path
) -> None:
    result = setup(demo_dir)
    assert result.exit_code == 0, result.stderr
    target = isolated_home / ".claude" / "settings.json"
    env = env_block(target)
    key = read_env(demo_dir)["LITELLM_MASTER_KEY"]
    port = read_env(demo_dir)["CC_GATEWAY_PORT"]
    assert env == {  # the demo serves Claude ids: no model variable, Claude Code's own choice goes through
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_AUTH_TOKEN": key,
        "API_TIMEOUT_MS": "600000",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # created by us and holds the key
    assert key not in result.stderr + result.stdout
    again = setup(demo_dir)
    assert again.exit_code == 0 and "unchanged" in again.stderr and "0 file(s) written" in again.stderr
    undone = runner.invoke(app, ["setup-claude", "--undo"])
    assert undone.exit_code == 0, undone.stderr
    assert "removed" in undone.stderr
    assert not (isolated_home / ".claude").exists()


def test_existing_settings_keep_unknown_keys_order_and_undo_is_byte_identical(
    demo_dir: Path, project: Path, isolated_home: Path
) -> None:
    target = isolated_home / ".claude" / "settings.json"
    target.parent.mkdir()
    original = (
        '{\n    "zeta": {"nested": [1, 2]},\n    "env": {\n        "MY_TOOL_HOME": "/opt/x",\n'
        '        "ANTHROPIC_MODEL": "old"\n    },\n    "permissions": {"allow": ["Bash(ls)"]},\n'
        '    "unknownFutureKey": true\n}'
    )
    target.write_text(original)
    target.chmod(0o644)
    result = setup(demo_dir)
    assert result.exit_code == 0, result.stderr
    data = json.loads(target.read_text())
    assert list(data) == ["zeta", "env", "permissions", "unknownFutureKey"]
    assert list(data["env"])[:2] == ["MY_TOOL_HOME", "ANTHROPIC_BASE_URL"]
    assert "ANTHROPIC_MODEL" not in data["env"]  # an old pin goes: the demo follows Claude Code's own ids
    assert data["env"]["MY_TOOL_HOME"] == "/opt/x" and data["zeta"] == {"nested": [1, 2]}
    assert '    "permissions": {"allow": ["Bash(ls)"]},\n' in target.read_text()  # untouched text
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # mode kept
    assert runner.invoke(app, ["setup-claude", "--undo"]).exit_code == 0
    assert target.read_text() == original


def test_project_scope_puts_the_key_in_the_local_file(demo_dir: Path, project: Path) -> None:
    result = setup(demo_dir, "--scope", "project")
    assert result.exit_code == 0, result.stderr
    shared, local = project / ".claude" / "settings.json", project / ".claude" / "settings.local.json"
    assert "ANTHROPIC_AUTH_TOKEN" not in env_block(shared) and "ANTHROPIC_BASE_URL" in env_block(shared)
    assert env_block(local) == {"ANTHROPIC_AUTH_TOKEN": read_env(demo_dir)["LITELLM_MASTER_KEY"]}  # the key only
    assert "usually committed" in result.stderr and "--allow-secret-in-project" in result.stderr
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    undone = runner.invoke(app, ["setup-claude", "--scope", "project", "--undo"])
    assert undone.exit_code == 0, undone.stderr
    assert snapshot(project) == {}


def test_allow_secret_in_project_writes_one_file(demo_dir: Path, project: Path) -> None:
    result = setup(demo_dir, "--scope", "project", "--allow-secret-in-project")
    assert result.exit_code == 0, result.stderr
    assert "ANTHROPIC_AUTH_TOKEN" in env_block(project / ".claude" / "settings.json")
    assert not (project / ".claude" / "settings.local.json").exists()


def test_local_scope(demo_dir: Path, project: Path) -> None:
    assert setup(demo_dir, "--scope", "local").exit_code == 0
    assert list((project / ".claude").iterdir()) == [project / ".claude" / "settings.local.json"]


def test_dry_run_masks_the_key_and_writes_nothing(demo_dir: Path, project: Path, isolated_home: Path) -> None:
    before = snapshot(isolated_home)
    result = setup(demo_dir, "--dry-run")
    assert result.exit_code == 0, result.stderr
    key = read_env(demo_dir)["LITELLM_MASTER_KEY"]
    assert key not in result.stderr and key[:6] + "…" in result.stderr
    assert '+    "ANTHROPIC_BASE_URL"' in result.stderr and "dry run: nothing written" in result.stderr
    assert snapshot(isolated_home) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{\n  "env": {\n    "A": "1"\n    "B": "2"\n  }\n}\n', ":4: invalid JSON"),
        ('{\n  "env": {},\n  // my note\n  "model": "opus"\n}\n', ":3: comment: Claude Code ignores"),
        ('{\n  "env": {"A": "1",},\n  "model": "opus"\n}\n', ":2: trailing comma"),
        ('{\n  "env": "not an object"\n}\n', ':2: "env" is not a JSON object'),
    ],
)
def test_unusable_settings_file_is_refused_with_its_line_and_left_untouched(
    demo_dir: Path, project: Path, isolated_home: Path, content: str, expected: str
) -> None:
    target = isolated_home / ".claude" / "settings.json"
    target.parent.mkdir()
    target.write_text(content)
    result = setup(demo_dir)
    assert result.exit_code == 1
    assert f"{target}{expected}" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert target.read_text() == content
    assert not (isolated_home / ".cc-gateway").exists()  # no snapshot either


def test_symlinked_user_settings_stay_a_link(demo_dir: Path, project: Path, isolated_home: Path) -> None:
    real = isolated_home / "dotfiles" / "claude.json"
    real.parent.mkdir()
    real.write_text('{"theme": "dark"}\n')
    link = isolated_home / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    assert setup(demo_dir).exit_code == 0
    assert link.is_symlink() and "ANTHROPIC_BASE_URL" in env_block(real)
    assert runner.invoke(app, ["setup-claude", "--undo"]).exit_code == 0
    assert link.is_symlink() and real.read_text() == '{"theme": "dark"}\n'


def test_skip_onboarding_merges_claude_json_and_undo_restores_it(
    demo_dir: Path, project: Path, isolated_home: Path
) -> None:
    state = isolated_home / ".claude.json"
    original = '{\n  "numStartups": 4,\n  "projects": {}\n}\n'
    state.write_text(original)
    assert setup(demo_dir, "--skip-onboarding").exit_code == 0
    data = json.loads(state.read_text())
    assert data == {"numStartups": 4, "projects": {}, "hasCompletedOnboarding": True}
    assert runner.invoke(app, ["setup-claude", "--undo"]).exit_code == 0
    assert state.read_text() == original


def test_undo_leaves_claude_json_that_claude_code_rewrote(demo_dir: Path, project: Path, isolated_home: Path) -> None:
    state = isolated_home / ".claude.json"
    assert setup(demo_dir, "--skip-onboarding").exit_code == 0
    state.write_text('{"hasCompletedOnboarding": true, "numStartups": 1}')
    result = runner.invoke(app, ["setup-claude", "--undo"])
    assert result.exit_code == 0 and "Claude Code changed it since" in result.stderr
    assert state.read_text() == '{"hasCompletedOnboarding": true, "numStartups": 1}'


def test_undo_keeps_a_file_rewritten_since_unless_forced(demo_dir: Path, project: Path, isolated_home: Path) -> None:
    target = isolated_home / ".claude" / "settings.json"
    assert setup(demo_dir).exit_code == 0
    target.write_text('{"edited": true}')
    assert runner.invoke(app, ["setup-claude", "--undo", "--force"]).exit_code == 0
    assert not target.exists()  # --force: the original (no file) comes back whatever happened since
    assert setup(demo_dir).exit_code == 0
    target.write_text('{"edited": true}')
    kept = runner.invoke(app, ["setup-claude", "--undo"])
    assert kept.exit_code == 0 and "other changes since kept" in kept.stderr
    assert target.read_text() == '{"edited": true}'  # none of cc-gateway's keys left to take back


def test_undo_with_nothing_to_undo(project: Path) -> None:
    result = runner.invoke(app, ["setup-claude", "--undo", "--scope", "local"])
    assert result.exit_code == 0 and "nothing to undo for --scope local" in result.stderr


# --------------------------------------------------------------------------- setup-claude: values


@pytest.mark.parametrize(
    ("flag", "variable"),
    [
        ("--model", "ANTHROPIC_MODEL"),
        ("--sonnet-model", "ANTHROPIC_DEFAULT_SONNET_MODEL"),
        ("--opus-model", "ANTHROPIC_DEFAULT_OPUS_MODEL"),
        ("--haiku-model", "ANTHROPIC_DEFAULT_HAIKU_MODEL"),
        ("--subagent-model", "CLAUDE_CODE_SUBAGENT_MODEL"),
    ],
)
def test_model_flags_set_their_variable(
    demo_dir: Path, project: Path, isolated_home: Path, flag: str, variable: str
) -> None:
    result = setup(demo_dir, flag, "claude-haiku-4-5-20251001")
    assert result.exit_code == 0, result.stderr
    assert env_block(isolated_home / ".claude" / "settings.json")[variable] == "claude-haiku-4-5-20251001"


def test_one_m_suffix_is_checked_without_it_and_kept(demo_dir: Path, project: Path, isolated_home: Path) -> None:
    assert setup(demo_dir, "--model", "claude-sonnet-5[1m]").exit_code == 0
    assert env_block(isolated_home / ".claude" / "settings.json")["ANTHROPIC_MODEL"] == "claude-sonnet-5[1m]"


def test_unrouted_model_is_refused_with_the_routes(multi_dir: Path, project: Path, isolated_home: Path) -> None:
    result = setup(multi_dir, "--model", "gpt-4o")
    assert result.exit_code == 2
    assert "--model 'gpt-4o': the gateway has no route for it" in result.stderr
    assert "routes: glm, glm-fast, kimi, openrouter, anthropic/*, claude-*" in " ".join(result.stderr.split())
    assert setup(multi_dir, "--haiku-model", "nope[1m]").exit_code == 2
    assert not (isolated_home / ".claude").exists()


def test_static_token_gateway_uses_the_custom_header(multi_dir: Path, project: Path, isolated_home: Path) -> None:
    result = setup(multi_dir, "--model", "kimi")
    assert result.exit_code == 0, result.stderr
    env = env_block(isolated_home / ".claude" / "settings.json")
    assert env["ANTHROPIC_CUSTOM_HEADERS"] == "x-litellm-api-key: static-token-abcdef123456"
    assert "ANTHROPIC_AUTH_TOKEN" not in env
    assert env["ANTHROPIC_MODEL"] == "kimi" and env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "glm"  # default route
    assert "claude /login" in result.stderr
    assert "static-token-abcdef123456" not in result.stderr


def test_static_token_gateway_without_a_token_is_refused(tmp_path: Path, project: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "multi-provider")
    env_path = folder / ".env"
    env_path.write_text(
        "\n".join(line for line in env_path.read_text().splitlines() if not line.startswith("PROXY_STATIC_TOKEN"))
        + "\nPROXY_STATIC_TOKEN=\n"
    )
    result = setup(folder)
    assert result.exit_code == 1 and "PROXY_STATIC_TOKEN is empty" in result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://gw.internal:8080/", "http://gw.internal:8080"),
        ("https://gw.example.com/v1", "https://gw.example.com"),
        ("http://127.0.0.1:4000/v1/", "http://127.0.0.1:4000"),
    ],
)
def test_url_flag_without_v1(demo_dir: Path, project: Path, isolated_home: Path, url: str, expected: str) -> None:
    assert setup(demo_dir, "--url", url).exit_code == 0
    assert env_block(isolated_home / ".claude" / "settings.json")["ANTHROPIC_BASE_URL"] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "gw:4000"], "expected http(s)://host:port"),
        (["--scope", "global"], "--scope 'global': expected one of user, project, local"),
        (["--endpoint", "passthrough"], "--endpoint passthrough needs the anthropic preset (this gateway is demo)"),
        (["--endpoint", "sideways"], "unknown --endpoint 'sideways'"),
    ],
)
def test_usage_errors(demo_dir: Path, project: Path, isolated_home: Path, args: list[str], message: str) -> None:
    result = setup(demo_dir, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (isolated_home / ".claude").exists()


def test_passthrough_endpoint_for_the_anthropic_preset(tmp_path: Path, project: Path, isolated_home: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "anthropic", "--key", f"ANTHROPIC_API_KEY={UPSTREAM_KEY}")
    assert setup(folder, "--endpoint", "passthrough", "--url", "http://127.0.0.1:4000").exit_code == 0
    env = env_block(isolated_home / ".claude" / "settings.json")
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000/anthropic"
    assert "ANTHROPIC_MODEL" not in env  # Anthropic itself serves Claude Code's own ids


def test_no_gateway_here(project: Path) -> None:
    result = setup(project)
    assert result.exit_code == 1
    assert "no gateway config here" in result.stderr and "cc-gateway init" in result.stderr


def test_overrides_are_reported(
    demo_dir: Path, project: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text('{"env": {"ANTHROPIC_BASE_URL": "https://elsewhere.example"}}')
    shared = project / ".claude" / "settings.json"
    shared.write_text('{\n  // a comment\n  "env": {}\n}')
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-shell-key-0000000000")
    result = setup(demo_dir)
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stderr.split())
    assert f"ANTHROPIC_BASE_URL is set to another value in {local}, which takes precedence" in text
    assert f"{shared}:2: comment; Claude Code ignores the whole file" in text
    assert "ANTHROPIC_API_KEY is set in your shell" in text
    assert "sk-ant-shell-key" not in text


def test_api_key_helper_is_reported_for_a_static_token_gateway(
    multi_dir: Path, project: Path, isolated_home: Path
) -> None:
    user = isolated_home / ".claude" / "settings.json"
    user.parent.mkdir()
    user.write_text('{"apiKeyHelper": "~/bin/get-key"}')
    result = setup(multi_dir)
    assert result.exit_code == 0
    assert f"apiKeyHelper in {user} replaces Claude Code's own login" in " ".join(result.stderr.split())
    assert json.loads(user.read_text())["apiKeyHelper"] == "~/bin/get-key"


# --------------------------------------------------------------------------- presets and Claude Code's ids


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_routes_the_ids_claude_code_requests(tmp_path: Path, preset: str) -> None:
    result = runner.invoke(app, ["init", "--preset", preset, "--dir", str(tmp_path), "--yes"])
    assert result.exit_code == 0, result.stderr
    gateway = load_gateway(tmp_path)
    for role, model in claude_code.default_model_ids().items():
        assert gateway.resolve(model), f"{preset} does not route {role} id {model}"
    assert gateway.resolve("claude-some-future-model-9"), f"{preset} has no claude-* catch-all"
    for family in claude_code.families():  # a future release's ids need no new route
        assert gateway.resolve(f"claude-{family}-9-9"), f"{preset} does not route future {family} ids"


# --------------------------------------------------------------------------- env


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("sh", "export ANTHROPIC_BASE_URL=http://127.0.0.1:"),
        ("fish", "set -gx ANTHROPIC_BASE_URL 'http://127.0.0.1:"),
        ("powershell", "$env:ANTHROPIC_BASE_URL = 'http://127.0.0.1:"),
    ],
)
def test_env_prints_every_variable(demo_dir: Path, project: Path, shell: str, expected: str) -> None:
    result = runner.invoke(app, ["env", "--dir", str(demo_dir), "--shell", shell])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(expected)
    assert len(lines) == 4 and any(read_env(demo_dir)["LITELLM_MASTER_KEY"] in line for line in lines)
    assert not [line for line in lines if "MODEL" in line]  # the demo serves Claude Code's own ids


def test_env_lines_eval_in_a_real_shell(demo_dir: Path, project: Path) -> None:
    result = runner.invoke(app, ["env", "--dir", str(demo_dir), "--model", "claude-opus-4-8[1m]"])
    script = result.stdout + 'printf "%s|%s" "$ANTHROPIC_AUTH_TOKEN" "$ANTHROPIC_MODEL"'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == read_env(demo_dir)["LITELLM_MASTER_KEY"] + "|claude-opus-4-8[1m]"


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("sh", "export V='it'\"'\"'s $HOME `x` \\n'"),
        ("fish", "set -gx V 'it\\'s $HOME `x` \\\\n'"),
        ("powershell", "$env:V = 'it''s $HOME `x` \\n'"),
    ],
)
def test_export_lines_quote_every_character(shell: str, expected: str) -> None:
    assert _export_line(shell, "V", "it's $HOME `x` \\n") == expected


def test_export_line_survives_sh() -> None:
    value = 'it\'s $HOME `x` \\n "q"'
    done = subprocess.run(
        ["sh", "-c", _export_line("sh", "V", value) + '; printf %s "$V"'], capture_output=True, text=True
    )
    assert done.stdout == value


def test_env_unknown_shell_and_settings_override_warning(demo_dir: Path, project: Path, isolated_home: Path) -> None:
    assert runner.invoke(app, ["env", "--dir", str(demo_dir), "--shell", "tcsh"]).exit_code == 2
    user = isolated_home / ".claude" / "settings.json"
    user.parent.mkdir()
    user.write_text('{"env": {"ANTHROPIC_MODEL": "from-settings"}}')
    result = runner.invoke(app, ["env", "--dir", str(demo_dir), "--model", "claude-opus-5-5"])
    assert result.exit_code == 0
    assert f"ANTHROPIC_MODEL is also set in {user}" in " ".join(result.stderr.split())


# --------------------------------------------------------------------------- claude: error paths


def test_claude_command_without_claude_installed(
    demo_dir: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(project))
    result = runner.invoke(app, ["claude", "--dir", str(demo_dir), "-p", "hi"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Claude Code is not installed")


def test_claude_command_with_the_gateway_down(demo_dir: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = project / "bin" / "claude"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    result = runner.invoke(app, ["claude", "--dir", str(demo_dir), "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "error: the gateway is not reachable at http://127.0.0.1:" in result.stderr
    assert "cc-gateway serve" in result.stderr


# --------------------------------------------------------------------------- the real Claude Code CLI


def claude_env(home: Path) -> dict[str, str]:
    """A bare environment for Claude Code: no ANTHROPIC_* from the test runner, HOME in a temp folder."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb"}


def run_cc_claude(folder: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `cc-gateway claude --dir folder ARGS` in a fresh project under `home`, with a bare environment."""
    project = home / "work"
    project.mkdir(exist_ok=True)
    env = {
        **claude_env(home),
        "PATH": f"{Path(claude_bin()).parent}{os.pathsep}/usr/bin:/bin",
        "CC_GATEWAY_HOME": str(home / ".cc-gateway"),
    }
    command = [sys.executable, "-m", "cc_gateway", "claude", "--dir", str(folder), *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def demo_gateway(demo_dir: Path):
    """The demo gateway, running on the port its .env names (so setup-claude's default URL is right)."""
    if claude_bin() is None:
        pytest.skip("Claude Code CLI not installed (see HELPERS: npm install -g --prefix .cache/npm ...)")
    port = free_port()  # chosen now, not at init time: other test runs pick ports too
    env_path = demo_dir / ".env"
    lines = [
        f"CC_GATEWAY_PORT={port}" if ln.startswith("CC_GATEWAY_PORT=") else ln
        for ln in env_path.read_text().splitlines()
    ]
    env_path.write_text("\n".join(lines) + "\n")
    gateway = start_gateway(demo_dir, port=port)
    assert gateway.process.poll() is None, gateway.log()  # ours answers, not another run's on a reused port
    yield gateway
    gateway.stop()


@pytest.mark.e2e
@pytest.mark.claude
def test_real_claude_code_reaches_the_gateway_and_undo_restores_the_project(
    demo_gateway, tmp_path: Path, isolated_home: Path
) -> None:
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    (project / "README.md").write_text("# my project\n")
    (project / ".claude" / "settings.json").write_text('{\n  "permissions": {\n    "deny": ["Bash(rm:*)"]\n  }\n}\n')
    before = snapshot(project)
    env = cli_env(isolated_home)
    done = run_cli("setup-claude", "--dir", str(demo_gateway.folder), "--scope", "project", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    answer = subprocess.run(
        [claude_bin(), "-p", "Say hello"],
        cwd=project,
        env=claude_env(isolated_home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert DEMO_REPLY in answer.stdout
    assert "POST /v1/messages" in demo_gateway.log()
    undone = run_cli("setup-claude", "--scope", "project", "--undo", cwd=project, env=env)
    assert undone.returncode == 0, undone.stderr
    assert snapshot(project) == before


@pytest.mark.e2e
@pytest.mark.claude
def test_cc_gateway_claude_runs_one_session_and_writes_no_file(
    demo_gateway, tmp_path: Path, isolated_home: Path
) -> None:
    done = run_cc_claude(demo_gateway.folder, isolated_home, "-p", "Say hello")
    project = isolated_home / "work"
    assert done.returncode == 0, done.stdout + done.stderr
    assert DEMO_REPLY in done.stdout
    assert "POST /v1/messages" in demo_gateway.log()
    assert snapshot(project) == {}
    assert not (isolated_home / ".claude" / "settings.json").exists()
    assert demo_gateway.key not in " ".join(done.stdout.split())


def test_claude_code_binary_and_version_are_found() -> None:
    binary = claude_bin()
    if binary is None:
        pytest.skip("Claude Code CLI not installed")
    path_env = {"PATH": str(Path(binary).parent), "HOME": "/nonexistent"}
    assert claude_code.find_claude(path_env) == Path(binary)
    data = claude_code.known_models()  # the suite's CLI: the oldest supported or the newest described
    assert claude_code.claude_version(Path(binary)) in (data["oldest_supported"], data["version"])
    assert claude_code.find_claude({"PATH": "/nonexistent", "HOME": "/nonexistent"}) is None


def test_layers_and_effective_env(tmp_path: Path) -> None:
    home, cwd, managed = tmp_path / "home", tmp_path / "proj", tmp_path / "managed"
    for path, text in [
        (home / ".claude" / "settings.json", '{"env": {"ANTHROPIC_MODEL": "u", "ANTHROPIC_BASE_URL": "http://u"}}'),
        (cwd / ".claude" / "settings.json", '{"env": {"ANTHROPIC_MODEL": "p"}, "apiKeyHelper": "echo k"}'),
        (cwd / ".claude" / "settings.local.json", "{not json"),
        (managed / "managed-settings.d" / "10-x.json", '{"env": {"ANTHROPIC_BASE_URL": "http://managed"}}'),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    layers = claude_code.settings_layers(cwd, home, managed)
    assert [la.scope for la in layers] == ["managed", "managed", "local", "project", "user"]
    assert layers[2].problem and "invalid JSON" in layers[2].problem
    decided = claude_code.effective_env(layers, {"ANTHROPIC_API_KEY": "shell", "ANTHROPIC_MODEL": "shell"})
    assert decided["ANTHROPIC_MODEL"].value == "p"  # a settings file beats the shell
    assert decided["ANTHROPIC_BASE_URL"].source.endswith("10-x.json")
    assert decided["ANTHROPIC_API_KEY"].source == "shell"
    assert [la.path.name for la in claude_code.api_key_helpers(layers)] == ["settings.json"]
    assert claude_code.shell_overrides({"ANTHROPIC_MODEL": "x", "HOME": "/"}) == {"ANTHROPIC_MODEL": "x"}
    assert claude_code.managed_dir("darwin") == Path("/Library/Application Support/ClaudeCode")
    assert claude_code.managed_dir("linux") == Path("/etc/claude-code")
    shutil.rmtree(managed)


@pytest.mark.e2e
@pytest.mark.claude
def test_passthrough_endpoint_uses_the_gateways_anthropic_key(fresh_upstream, gateway_factory, tmp_path: Path) -> None:
    if claude_bin() is None:
        pytest.skip("Claude Code CLI not installed")
    folder = init_gateway(
        tmp_path / "gw",
        "anthropic",
        "--key",
        f"ANTHROPIC_API_KEY={UPSTREAM_KEY}",
        "--api-base",
        f"ANTHROPIC_API_BASE={fresh_upstream.url}",
    )
    gateway = gateway_factory(folder)
    (tmp_path / "home").mkdir()
    done = run_cc_claude(folder, tmp_path / "home", "--url", gateway.url, "--endpoint", "passthrough", "-p", "hi")
    assert done.returncode == 0, done.stdout + done.stderr + gateway.log()
    messages = [r for r in fresh_upstream.requests if r.api == "messages"]
    assert messages, gateway.log()
    assert f"fake reply from {messages[-1].model} via messages" in done.stdout
    for received in messages:
        assert received.headers.get("x-api-key") == UPSTREAM_KEY
        assert gateway.key not in json.dumps(received.headers)


def test_session_conflicts_name_the_settings_that_win(demo_dir: Path, tmp_path: Path) -> None:
    from cc_gateway.claude.setup import ClientRequest, client_env, session_conflicts

    client = client_env(load_gateway(demo_dir), ClientRequest())
    home, cwd, managed = tmp_path / "home", tmp_path / "proj", tmp_path / "managed"
    user = home / ".claude" / "settings.json"
    user.parent.mkdir(parents=True)
    user.write_text('{"env": {"ANTHROPIC_AUTH_TOKEN": "other", "ANTHROPIC_MODEL": "mine"}}')
    policy = managed / "managed-settings.json"
    managed.mkdir()
    policy.write_text('{"env": {"ANTHROPIC_BASE_URL": "https://corp-gw"}}')
    messages = session_conflicts(client, cwd, home, managed)
    assert messages == [
        f"ANTHROPIC_BASE_URL is set in {policy}, which takes precedence for this session",
        f"ANTHROPIC_AUTH_TOKEN is set in {user}, which takes precedence for this session",
    ]  # ANTHROPIC_MODEL from the user file loses to --settings
