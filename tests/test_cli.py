"""`cc-gateway init`, `presets` and `--version` through Typer's CliRunner: every path and error path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cc_gateway import __version__
from cc_gateway.cli import app
from cc_gateway.core.envfile import load_env_file
from cc_gateway.gateway.image import LOCK_FILE, wheel_name
from cc_gateway.gateway.presets import preset_names

runner = CliRunner()
# The rendered files, and the wheel + lock the Dockerfile installs (gateway/image.py).
GENERATED = ("config.yaml", ".env", "docker-compose.yml", "Dockerfile", "cc_gateway_runtime.py", LOCK_FILE,
             wheel_name())
OPENAI_KEY = "sk-proj-" + "a1B2c3D4" * 5


def init(folder: Path, *args: str) -> object:
    """Run `init --yes` into folder."""
    return runner.invoke(app, ["init", "--dir", str(folder), "--yes", *args])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, by relative name."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cc-gateway {__version__}"


def test_presets_lists_every_preset_with_a_description() -> None:
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [
        "demo",
        "anthropic",
        "openai-backed",
        "multi-provider",
        "oauth-bridge",
    ]
    assert all(len(line.split(maxsplit=1)[1]) > 20 for line in lines)


@pytest.mark.parametrize("preset", ["demo", "anthropic", "openai-backed", "multi-provider", "oauth-bridge"])
def test_init_renders_every_file(tmp_path: Path, preset: str) -> None:
    result = init(tmp_path, "--preset", preset)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(GENERATED)
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    env = load_env_file(tmp_path / ".env")
    assert env["LITELLM_MASTER_KEY"].startswith("sk-") and len(env["LITELLM_MASTER_KEY"]) >= 3 + 43
    assert env["LITELLM_SALT_KEY"] != env["LITELLM_MASTER_KEY"]
    # The master key is never printed in full, and config.yaml never holds it.
    assert env["LITELLM_MASTER_KEY"] not in result.stdout + result.stderr
    assert env["LITELLM_MASTER_KEY"] not in (tmp_path / "config.yaml").read_text()
    assert "master_key: os.environ/LITELLM_MASTER_KEY" in (tmp_path / "config.yaml").read_text()
    assert "cc-gateway serve" in result.stderr and "setup-claude" in result.stderr
    lock = (tmp_path / LOCK_FILE).read_text()  # the image's lock: claude-agent-sdk only where the bridge runs
    assert ("\nclaude-agent-sdk==" in lock) == (preset == "oauth-bridge") and "\nlitellm==1.106.2 " in lock
    assert f"/tmp/cc-gateway/{wheel_name()}" in (tmp_path / "Dockerfile").read_text()


def test_init_keeps_keys_out_of_output_and_config(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "openai-backed", "--key", f"OPENAI_API_KEY={OPENAI_KEY}")
    assert result.exit_code == 0, result.stderr
    assert load_env_file(tmp_path / ".env")["OPENAI_API_KEY"] == OPENAI_KEY
    assert OPENAI_KEY not in result.stdout + result.stderr
    assert OPENAI_KEY not in (tmp_path / "config.yaml").read_text()
    assert "api_key: os.environ/OPENAI_API_KEY" in (tmp_path / "config.yaml").read_text()


def test_key_from_environment_by_bare_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    result = init(tmp_path, "--preset", "openai-backed", "--key", "OPENAI_API_KEY")
    assert result.exit_code == 0, result.stderr
    assert load_env_file(tmp_path / ".env")["OPENAI_API_KEY"] == OPENAI_KEY


def test_api_base_by_provider_name_and_by_variable(tmp_path: Path) -> None:
    result = init(
        tmp_path,
        "--preset",
        "multi-provider",
        "--api-base",
        "zai=http://127.0.0.1:1/zai",
        "--api-base",
        "KIMI_API_BASE=http://127.0.0.1:1/kimi",
    )
    assert result.exit_code == 0, result.stderr
    env = load_env_file(tmp_path / ".env")
    assert env["ZAI_API_BASE"] == "http://127.0.0.1:1/zai"
    assert env["KIMI_API_BASE"] == "http://127.0.0.1:1/kimi"
    assert env["OPENROUTER_API_BASE"] == "https://openrouter.ai/api/v1"


def test_missing_required_key_is_a_commented_placeholder_and_a_warning(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "anthropic")
    assert result.exit_code == 0
    assert "# ANTHROPIC_API_KEY=" in (tmp_path / ".env").read_text()
    assert "ANTHROPIC_API_KEY" not in load_env_file(tmp_path / ".env")
    assert "ANTHROPIC_API_KEY is not set" in result.stderr


def test_rerun_with_same_answers_is_byte_identical_and_keeps_master_key(tmp_path: Path) -> None:
    assert init(tmp_path, "--preset", "openai-backed", "--key", f"OPENAI_API_KEY={OPENAI_KEY}").exit_code == 0
    before = snapshot(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    result = init(tmp_path, "--preset", "openai-backed", "--key", f"OPENAI_API_KEY={OPENAI_KEY}")
    assert result.exit_code == 0, result.stderr
    assert snapshot(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes  # identical files are not rewritten
    assert result.stderr.count("identical") == len(GENERATED)


def test_rerun_without_the_key_flag_keeps_the_key_already_in_env(tmp_path: Path) -> None:
    assert init(tmp_path, "--preset", "openai-backed", "--key", f"OPENAI_API_KEY={OPENAI_KEY}").exit_code == 0
    before = snapshot(tmp_path)
    assert init(tmp_path, "--preset", "openai-backed").exit_code == 0
    assert snapshot(tmp_path) == before


def test_changed_file_is_a_conflict_shown_and_untouched(tmp_path: Path) -> None:
    assert init(tmp_path, "--preset", "demo").exit_code == 0
    config = tmp_path / "config.yaml"
    edited = config.read_text() + "# my own note\n"
    config.write_text(edited)
    result = init(tmp_path, "--preset", "demo")
    assert result.exit_code == 1
    assert "would overwrite file(s) changed since cc-gateway wrote them" in result.stderr and "--force" in result.stderr
    assert "conflict" in result.stderr and "--dry-run" in result.stderr  # the file is named; the diff is one flag away
    assert "-# my own note" not in result.stderr
    assert config.read_text() == edited
    assert "Traceback" not in result.stderr


def test_force_overwrites_and_keeps_a_backup(tmp_path: Path) -> None:
    assert init(tmp_path, "--preset", "demo").exit_code == 0
    config = tmp_path / "config.yaml"
    edited = config.read_text() + "# my own note\n"
    config.write_text(edited)
    result = init(tmp_path, "--preset", "demo", "--force")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "config.yaml.bak").read_text() == edited
    assert "# my own note" not in config.read_text()


def test_dry_run_writes_nothing_and_masks_secrets(tmp_path: Path) -> None:
    target = tmp_path / "gw"
    result = init(target, "--preset", "openai-backed", "--key", f"OPENAI_API_KEY={OPENAI_KEY}", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert not target.exists()
    assert "+model_list:" in result.stderr and "dry run" in result.stderr
    assert OPENAI_KEY not in result.stderr
    assert "OPENAI_API_KEY=sk-pro…" in result.stderr


def test_unknown_preset_lists_valid_ones(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: unknown preset 'nope'"
    assert all(name in result.stderr for name in preset_names())
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_port_out_of_range(tmp_path: Path, port: str) -> None:
    result = init(tmp_path, "--preset", "demo", "--port", port)
    assert result.exit_code == 2
    assert "out of range" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_as_user(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    tmp_path.chmod(0o500)
    result = init(tmp_path / "gw", "--preset", "demo")
    assert result.exit_code == 1 and "permission denied" in result.stderr


def test_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = init(blocker / "gw", "--preset", "demo")
    assert result.exit_code == 1
    assert "is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_of_the_wrong_shape_warns_but_writes(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "openai-backed", "--key", "OPENAI_API_KEY=hello")
    assert result.exit_code == 0
    assert "warning: OPENAI_API_KEY does not look like a key for OpenAI" in result.stderr
    assert load_env_file(tmp_path / ".env")["OPENAI_API_KEY"] == "hello"


def test_oauth_token_of_the_wrong_shape_warns(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "oauth-bridge", "--key", "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-api03-xyz")
    assert result.exit_code == 0
    assert "does not look like an OAuth token" in result.stderr


def test_key_for_a_variable_the_preset_does_not_have(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "demo", "--key", "OPENAI_API_KEY=sk-x")
    assert result.exit_code == 2
    assert "preset demo has no variable 'OPENAI_API_KEY'" in result.stderr
    assert not any(tmp_path.iterdir())


def test_malformed_flags_are_usage_errors(tmp_path: Path) -> None:
    assert init(tmp_path, "--preset", "demo", "--api-base", "no-equals").exit_code == 2
    assert init(tmp_path, "--preset", "demo", "--option", "unknown=1").exit_code == 2
    result = init(tmp_path, "--preset", "openai-backed", "--key", "NOT_SET_ANYWHERE_VAR")
    assert result.exit_code == 2 and "not set in the environment" in result.stderr


def test_preset_options_change_the_routes(tmp_path: Path) -> None:
    result = init(tmp_path, "--preset", "openai-backed", "--option", "strong_model=gpt-4.1")
    assert result.exit_code == 0, result.stderr
    assert "model: openai/gpt-4.1" in (tmp_path / "config.yaml").read_text()


def test_compliance_notice_is_shown_for_oauth_presets(tmp_path: Path) -> None:
    result = init(tmp_path / "a", "--preset", "oauth-bridge")
    assert "reserve subscription OAuth tokens" in " ".join(result.stderr.split())
    result = init(tmp_path / "b", "--preset", "multi-provider")
    assert "passthrough" in result.stderr


def test_user_preset_directory(tmp_path: Path, isolated_home: Path) -> None:
    folder = Path(os.environ["CC_GATEWAY_HOME"]) / "presets"
    folder.mkdir(parents=True)
    broken = "description: mine\ndefault_route: a\nroutes:\n  - name: a\n    params: {model: openai/x, api_key: sk-literal}\n"
    (folder / "mine.yaml").write_text(broken)
    result = init(tmp_path, "--preset", "mine")
    assert result.exit_code == 1
    assert "routes[0].params.api_key: literal key" in result.stderr
