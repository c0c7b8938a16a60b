"""The file machinery every writing command uses: atomic writes, backups, plans, parse errors."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until

from cc_gateway.core.errors import ConfigError, ConflictError
from cc_gateway.core.files import (
    Action,
    FileSpec,
    apply_plan,
    atomic_write,
    backup,
    load_yaml,
    parse_json,
    plan_files,
)


def test_atomic_write_creates_with_mode_and_keeps_existing_mode(tmp_path: Path) -> None:
    secret = tmp_path / "sub" / ".env"
    atomic_write(secret, "A=1\n", mode=0o600)
    assert secret.read_text() == "A=1\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    plain = tmp_path / "x.txt"
    plain.write_text("old")
    plain.chmod(0o640)
    atomic_write(plain, "new")
    assert stat.S_IMODE(plain.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_follows_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    atomic_write(link, '{"a": 1}')
    assert link.is_symlink()
    assert real.read_text() == '{"a": 1}'


def test_backup_never_overwrites_a_different_backup(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("one")
    first = backup(target)
    assert first.name == "config.yaml.bak" and first.read_text() == "one"
    assert backup(target) == first  # same content: same backup
    target.write_text("two")
    second = backup(target)
    assert second.name == "config.yaml.bak.1" and second.read_text() == "two"
    assert first.read_text() == "one"


def test_plan_classifies_and_apply_refuses_conflicts(tmp_path: Path) -> None:
    same, changed, new = tmp_path / "same", tmp_path / "changed", tmp_path / "new"
    same.write_text("s")
    changed.write_text("mine")
    plan = plan_files({same: FileSpec("s"), changed: FileSpec("theirs"), new: FileSpec("n")})
    assert [c.action for c in plan.changes] == [Action.IDENTICAL, Action.CONFLICT, Action.CREATE]
    assert "-mine" in plan.changes[1].diff() and "+theirs" in plan.changes[1].diff()
    with pytest.raises(ConflictError):
        apply_plan(plan)
    assert changed.read_text() == "mine" and not new.exists()  # nothing written at all
    backups = apply_plan(plan, force=True)
    assert changed.read_text() == "theirs" and new.read_text() == "n"
    assert [b.read_text() for b in backups] == ["mine"]


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: a\n    litellm_params: {model: x\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert str(caught.value).startswith(f"{path}:4: invalid YAML")


def test_json_error_names_file_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_json('{\n  "env": {\n    "A": 1,\n  }\n}', "settings.json")
    assert str(caught.value).startswith("settings.json:4: invalid JSON")


_WRITER = """
import sys
from pathlib import Path
from cc_gateway.core.files import atomic_write
atomic_write(Path(sys.argv[1]), "x" * (400 * 1024 * 1024))
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    original = "model_list: []\n"
    target.write_text(original)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)])
    temp = wait_until(
        lambda: [p for p in tmp_path.iterdir() if p.name.startswith(".config.yaml.") and p.stat().st_size > 0],
        30,
        0.001,
    )
    assert temp, "the writer never started writing its temp file"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert target.read_text() == original
