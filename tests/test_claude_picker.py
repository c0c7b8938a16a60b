"""setup-claude / env / claude tell Claude Code the gateway's routes and windows (no Claude Code run here:
test_claude_latest checks what the real CLI makes of them)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli_env, init_gateway, run_cli

KEY = "sk-provider-" + "Hv3Nq8Ld" * 4


def settings_of(home: Path) -> dict:
    return json.loads((home / ".claude" / "settings.json").read_text())


def multi(tmp_path: Path) -> Path:
    folder = init_gateway(tmp_path / "gw", "multi-provider", "--key", f"ZAI_API_KEY={KEY}")
    added = run_cli("add-model", "mylocal", "--provider", "openai", "--model", "local-128k", "--api-base",
                    "http://127.0.0.1:9/v1", "--context-window", "128000", "--label", "My local", "--dir", str(folder))
    assert added.returncode == 0, added.stderr
    return folder


def test_add_model_records_the_window_and_label(tmp_path: Path) -> None:
    import yaml

    folder = multi(tmp_path)
    entry = next(e for e in yaml.safe_load((folder / "config.yaml").read_text())["model_list"]
                 if e["model_name"] == "mylocal")
    assert entry["model_info"]["max_input_tokens"] == 128000
    assert entry["model_info"]["cc_gateway_label"] == "My local"


def test_add_model_takes_a_known_models_window_from_litellms_catalogue(tmp_path: Path) -> None:
    import yaml

    folder = init_gateway(tmp_path / "gw", "demo")
    added = run_cli("add-model", "gpt", "--provider", "openai", "--model", "gpt-5", "--dir", str(folder))
    assert added.returncode == 0, added.stderr
    entry = yaml.safe_load((folder / "config.yaml").read_text())["model_list"][-1]
    assert entry["model_info"]["max_input_tokens"] == 272000


def test_setup_claude_lists_named_routes_with_their_windows(tmp_path: Path) -> None:
    folder = multi(tmp_path)
    home = tmp_path / "home"
    result = run_cli("setup-claude", "--dir", str(folder), env=cli_env(home))
    assert result.returncode == 0, result.stderr
    data = settings_of(home)
    rows = {r["model"]: r for r in data["modelPicker"]["options"]}
    assert list(rows) == ["glm", "glm-fast", "kimi", "openrouter", "mylocal"]
    assert rows["mylocal"]["label"] == "My local"
    assert rows["glm"]["label"] == "glm · Z.ai (GLM)"
    assert all(r["behavesAs"] == "claude-sonnet-5-5" for r in rows.values())
    assert data["modelSettings"] == {
        "glm": {"autoCompactWindow": 200000},
        "glm-fast": {"autoCompactWindow": 128000},
        "kimi": {"autoCompactWindow": 256000},
        "mylocal": {"autoCompactWindow": 128000},
    }
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in data["env"]


def test_a_rerun_keeps_the_users_own_rows_and_changes_nothing(tmp_path: Path) -> None:
    folder = multi(tmp_path)
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    own = {"modelPicker": {"options": [{"model": "claude-opus-5-5", "label": "Mine"}], "replaceBuiltInOptions": True},
           "modelSettings": {"claude-opus-5-5": {"effortLevel": "high"}}}
    (home / ".claude" / "settings.json").write_text(json.dumps(own, indent=2) + "\n")
    assert run_cli("setup-claude", "--dir", str(folder), env=cli_env(home)).returncode == 0
    first = (home / ".claude" / "settings.json").read_text()
    data = json.loads(first)
    assert data["modelPicker"]["replaceBuiltInOptions"] is True
    assert {"model": "claude-opus-5-5", "label": "Mine"} in data["modelPicker"]["options"]
    assert data["modelSettings"]["claude-opus-5-5"] == {"effortLevel": "high"}
    assert run_cli("setup-claude", "--dir", str(folder), env=cli_env(home)).returncode == 0
    assert (home / ".claude" / "settings.json").read_text() == first


def test_claude_serving_presets_pin_no_model_variable(tmp_path: Path) -> None:
    for preset in ("anthropic", "demo", "openai-backed"):
        folder = init_gateway(tmp_path / preset, preset, *(["--key", f"OPENAI_API_KEY={KEY}"]
                                                          if preset == "openai-backed" else []))
        result = run_cli("env", "--dir", str(folder), env=cli_env(tmp_path / "home"))
        assert result.returncode == 0, result.stderr
        assert "MODEL" not in result.stdout, (preset, result.stdout)
    pinned = run_cli("env", "--dir", str(tmp_path / "anthropic"), "--model", "claude-opus-5-5",
                     env=cli_env(tmp_path / "home"))
    assert "export ANTHROPIC_MODEL=claude-opus-5-5" in pinned.stdout


def test_openai_backed_tells_the_smaller_window_of_its_claude_routes(tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "gw", "openai-backed", "--key", f"OPENAI_API_KEY={KEY}")
    result = run_cli("env", "--dir", str(folder), env=cli_env(tmp_path / "home"))
    assert "export CLAUDE_CODE_AUTO_COMPACT_WINDOW=272000" in result.stdout, result.stdout


def test_env_pinned_to_a_route_tells_its_window(tmp_path: Path) -> None:
    folder = multi(tmp_path)
    result = run_cli("env", "--dir", str(folder), "--model", "mylocal", env=cli_env(tmp_path / "home"))
    assert "export ANTHROPIC_MODEL=mylocal" in result.stdout
    assert "export CLAUDE_CODE_AUTO_COMPACT_WINDOW=128000" in result.stdout


def test_undo_after_claude_code_wrote_takes_the_picker_back_too(tmp_path: Path) -> None:
    """Claude Code writes its own keys after setup-claude; --undo then removes cc-gateway's env block and its
    modelPicker/modelSettings keys, and keeps what Claude Code wrote."""
    folder = multi(tmp_path)
    home = tmp_path / "home"
    assert run_cli("setup-claude", "--dir", str(folder), env=cli_env(home)).returncode == 0
    target = home / ".claude" / "settings.json"
    data = settings_of(home)
    assert "modelPicker" in data and "modelSettings" in data
    target.write_text(json.dumps({**data, "theme": "auto"}, indent=2) + "\n")
    undone = run_cli("setup-claude", "--undo", env=cli_env(home))
    assert undone.returncode == 0, undone.stderr
    assert json.loads(target.read_text()) == {"theme": "auto"}
