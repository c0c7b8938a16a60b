"""doctor's CLI row: a Claude Code newer than cc-gateway's data matters only where its new ids would have
no route; one older than the oldest supported always does. A stand-in `claude` reports the version."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml
from conftest import cli_env, init_gateway, run_cli

from cc_gateway.claude import versions


def stand_in(tmp_path: Path, version: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / "claude"
    script.write_text(f"#!{sys.executable}\nprint('{version} (Claude Code)')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def cli_row(folder: Path, tmp_path: Path, version: str) -> dict:
    home = tmp_path / "home"
    (home / "project").mkdir(parents=True, exist_ok=True)
    path = f"{stand_in(tmp_path, version)}{os.pathsep}{os.environ['PATH']}"
    done = run_cli("doctor", "--dir", str(folder), "--json", "--no-network", cwd=home / "project",
                   env=cli_env(home, PATH=path), timeout=120)
    report = json.loads(done.stdout)
    return next(c for c in report["checks"] if c["name"] == "CLI")


def without_catch_all(folder: Path) -> Path:
    path = folder / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model_list"] = [e for e in config["model_list"] if "*" not in e["model_name"]]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.mark.parametrize("preset", ["anthropic", "openai-backed"])
def test_a_newer_claude_code_is_fine_where_families_are_routed(tmp_path: Path, preset: str) -> None:
    newer = "2.9.999"
    row = cli_row(init_gateway(tmp_path / "gw", preset), tmp_path, newer)
    assert row["status"] == "ok", row
    assert f"newer than the data's {versions.known_models()['version']}" in row["detail"]


def test_a_newer_claude_code_warns_where_its_ids_have_no_route(tmp_path: Path) -> None:
    folder = without_catch_all(init_gateway(tmp_path / "gw", "anthropic"))
    row = cli_row(folder, tmp_path, "2.9.999")
    assert row["status"] == "warn", row
    assert "no route catches" in row["detail"]


def test_the_described_release_is_ok_even_without_a_catch_all(tmp_path: Path) -> None:
    folder = without_catch_all(init_gateway(tmp_path / "gw", "anthropic"))
    row = cli_row(folder, tmp_path, versions.known_models()["version"])
    assert row["status"] == "ok", row


def test_an_older_claude_code_than_supported_warns(tmp_path: Path) -> None:
    row = cli_row(init_gateway(tmp_path / "gw", "anthropic"), tmp_path, "2.0.1")
    assert row["status"] == "warn" and "supports" in row["detail"], row
