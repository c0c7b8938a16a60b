"""settings.py: JSON-with-comments parsing, the minimal merge, and byte-identical undo snapshots."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cc_gateway.claude import settings
from cc_gateway.core import jsonedit
from cc_gateway.core.errors import ConfigError, GatewayError

ENV = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4000", "ANTHROPIC_AUTH_TOKEN": "sk-gw"}

# (name, before, updates, after): `section="env"` merges, the rest of the file kept byte for byte.
MERGE_CASES = [
    (
        "new file",
        None,
        ENV,
        '{\n  "env": {\n    "ANTHROPIC_BASE_URL": "http://127.0.0.1:4000",\n    "ANTHROPIC_AUTH_TOKEN": "sk-gw"\n  }\n}\n',
    ),
    (
        "no env block: appended after the unknown keys, their order kept",
        '{\n  "zeta": 1,\n  "permissions": {"allow": ["Bash(ls)"]},\n  "alpha": [1, 2]\n}\n',
        ENV,
        '{\n  "zeta": 1,\n  "permissions": {"allow": ["Bash(ls)"]},\n  "alpha": [1, 2],\n  "env": {\n'
        '    "ANTHROPIC_BASE_URL": "http://127.0.0.1:4000",\n    "ANTHROPIC_AUTH_TOKEN": "sk-gw"\n  }\n}\n',
    ),
    (
        "env block with the user's own variables: ours replaced or appended, theirs kept in place",
        '{\n    "env": {\n        "MY_VAR": "x",\n        "ANTHROPIC_BASE_URL": "https://old",\n        "Z": "z"\n    },\n'
        '    "model": "opus"\n}',
        ENV,
        '{\n    "env": {\n        "MY_VAR": "x",\n        "ANTHROPIC_BASE_URL": "http://127.0.0.1:4000",\n'
        '        "Z": "z",\n        "ANTHROPIC_AUTH_TOKEN": "sk-gw"\n    },\n    "model": "opus"\n}',
    ),
    (
        "comments and odd spacing survive",
        '// my settings\n{\n  /* keep me */ "env": { // inline\n    "A": "1" // trailing note\n  }\n}\n',
        {"B": "2"},
        '// my settings\n{\n  /* keep me */ "env": { // inline\n    "A": "1",\n    "B": "2" // trailing note\n  }\n}\n',
    ),
    (
        "single-line object stays on one line",
        '{"env": {"A": "1"}, "x": true}',
        {"B": "2"},
        '{"env": {"A": "1", "B": "2"}, "x": true}',
    ),
    (
        "empty object",
        "{}\n",
        {"A": "1"},
        '{\n  "env": {\n    "A": "1"\n  }\n}\n',
    ),
    (
        "empty env object",
        '{\n  "env": {}\n}\n',
        {"A": "1"},
        '{\n  "env": {\n    "A": "1"\n  }\n}\n',
    ),
    (
        "CRLF line endings kept",
        '{\r\n  "env": {\r\n    "A": "1"\r\n  }\r\n}\r\n',
        {"B": "2"},
        '{\r\n  "env": {\r\n    "A": "1",\r\n    "B": "2"\r\n  }\r\n}\r\n',
    ),
    (
        "tab indentation kept",
        '{\n\t"env": {\n\t\t"A": "1"\n\t}\n}\n',
        {"B": "2"},
        '{\n\t"env": {\n\t\t"A": "1",\n\t\t"B": "2"\n\t}\n}\n',
    ),
    (
        "None removes a middle key",
        '{\n  "env": {\n    "A": "1",\n    "B": "2",\n    "C": "3"\n  }\n}\n',
        {"B": None},
        '{\n  "env": {\n    "A": "1",\n    "C": "3"\n  }\n}\n',
    ),
    (
        "None removes the last key",
        '{\n  "env": {\n    "A": "1",\n    "B": "2"\n  }\n}\n',
        {"B": None},
        '{\n  "env": {\n    "A": "1"\n  }\n}\n',
    ),
    (
        "None for an absent key changes nothing",
        '{"env": {"A": "1"}}',
        {"Q": None},
        '{"env": {"A": "1"}}',
    ),
    (
        "same values: byte-identical",
        '{ "env" : { "A" : "1" } }',
        {"A": "1"},
        '{ "env" : { "A" : "1" } }',
    ),
    (
        "non-ASCII and escapes kept as written",
        '{"note": "caf\\u00e9 ✓", "env": {"A": "1"}}',
        {"A": "2"},
        '{"note": "caf\\u00e9 ✓", "env": {"A": "2"}}',
    ),
]


@pytest.mark.parametrize(("before", "updates", "after"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_merge_env_block(before: str | None, updates: dict, after: str) -> None:
    merged = jsonedit.merge(before, updates, section="env")
    assert merged == after
    assert jsonedit.merge(merged, updates, section="env") == merged  # idempotent


def test_merge_top_level_key_keeps_everything_else() -> None:
    before = '{\n  "numStartups": 3,\n  "projects": {"/x": {"a": 1}},\n  "theme": "dark"\n}\n'
    after = jsonedit.merge(before, {"hasCompletedOnboarding": True})
    assert after == before.replace('"theme": "dark"\n', '"theme": "dark",\n  "hasCompletedOnboarding": true\n')
    assert list(json.loads(after)) == ["numStartups", "projects", "theme", "hasCompletedOnboarding"]


def test_merge_nested_value_is_indented_one_level_deeper() -> None:
    out = jsonedit.merge('{\n    "a": 1\n}\n', {"B": "2"}, section="env")
    assert out == '{\n    "a": 1,\n    "env": {\n        "B": "2"\n    }\n}\n'


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('{\n  "env": {\n    "A": "1"\n    "B": "2"\n  }\n}', 4, "expected ',' or '}'"),
        ('{\n  "env": {"A": 1,\n}', 3, "unexpected end of file"),
        ('{\n  "a": tru\n}', 2, "expected a value"),
        ("{\n  /* open\n}", 2, "unterminated /* comment"),
        ('{"a": 1}\n{"b": 2}', 2, "unexpected text after the end"),
        ("{\n  a: 1\n}", 2, "expected a quoted key"),
    ],
)
def test_invalid_json_names_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        jsonedit.merge(text, {"A": "1"}, section="env", path="s.json")
    assert str(caught.value).startswith(f"s.json:{line}: invalid JSON: {message}")


def test_env_that_is_not_an_object_is_refused_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r'^s.json:3: "env" is not a JSON object'):
        jsonedit.merge('{\n  "a": 1,\n  "env": "x"\n}', {"A": "1"}, section="env", path="s.json")


def test_top_level_array_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a JSON object at the top level"):
        jsonedit.merge("[1, 2]", {"A": "1"}, section="env", path="s.json")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1}', None),
        ('{\n  // note\n  "a": 1\n}', "line 2: comment"),
        ('{\n  "a": 1 /* x */\n}', "line 2: comment"),
        ('{\n  "a": [1, 2,],\n  "b": 1\n}', "line 2: trailing comma"),
        ('{"a": "http://x//y /* not a comment */"}', None),
    ],
)
def test_strict_json_problem_locates_comments_and_trailing_commas(text: str, problem: str | None) -> None:
    assert jsonedit.parse(text).strict_json_problem == problem


def test_parse_values_match_json() -> None:
    text = '{"a": [1, -2.5e3, true, false, null, "s\\n"], "b": {"c": {}}, "a2": []}'
    assert jsonedit.parse(text).value == json.loads(text)


# --------------------------------------------------------------------------- snapshots and undo


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_undo_restores_original_bytes_and_mode(tmp_path: Path, state: Path) -> None:
    target = tmp_path / "settings.json"
    original = b'{\r\n  "keep": "me" // odd\r\n}'
    target.write_bytes(original)
    target.chmod(0o640)
    settings.write_with_snapshot(state, target, jsonedit.merge(original.decode(), ENV, section="env"))
    settings.write_with_snapshot(state, target, jsonedit.merge(target.read_text(), {"X": "1"}, section="env"))
    assert target.read_bytes() != original
    assert settings.restore(state, target) == "restored"
    assert target.read_bytes() == original
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert settings.restore(state, target) == "nothing"  # snapshot consumed


def test_snapshot_is_private_and_taken_once(tmp_path: Path, state: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text("{}")
    first = settings.write_with_snapshot(state, target, '{"a": 1}')
    second = settings.write_with_snapshot(state, target, '{"a": 2}')
    assert first is not None and second is None
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert json.loads(first.read_text())["original"] == "{}"


def test_undo_removes_a_file_and_folders_we_created(tmp_path: Path, state: Path) -> None:
    target = tmp_path / "proj" / ".claude" / "settings.local.json"
    (tmp_path / "proj").mkdir()
    settings.write_with_snapshot(state, target, '{"env": {}}\n', private=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert settings.restore(state, target) == "removed"
    assert list((tmp_path / "proj").iterdir()) == []


def test_undo_keeps_a_created_folder_that_now_holds_other_files(tmp_path: Path, state: Path) -> None:
    target = tmp_path / ".claude" / "settings.json"
    settings.write_with_snapshot(state, target, "{}\n")
    (tmp_path / ".claude" / "other.json").write_text("x")
    settings.restore(state, target)
    assert not target.exists() and (tmp_path / ".claude" / "other.json").read_text() == "x"


def test_undo_refuses_when_edited_since_unless_forced(tmp_path: Path, state: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text('{"a": 1}')
    settings.write_with_snapshot(state, target, '{"a": 2}')
    target.write_text('{"a": 3}')
    with pytest.raises(GatewayError, match="changed since cc-gateway wrote it"):
        settings.restore(state, target)
    assert target.read_text() == '{"a": 3}'
    assert settings.restore(state, target, force=True) == "restored"
    assert target.read_text() == '{"a": 1}'


def test_symlinked_settings_file_is_edited_through_the_link(tmp_path: Path, state: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "claude-settings.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{\n  "theme": "dark"\n}\n')
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    settings.write_with_snapshot(state, link, jsonedit.merge(link.read_text(), {"A": "1"}, section="env"))
    assert link.is_symlink() and json.loads(dotfiles.read_text())["env"] == {"A": "1"}
    # the snapshot is keyed by the real file: the link and the target are one file
    assert settings.snapshot_file(state, link) == settings.snapshot_file(state, dotfiles)
    assert settings.restore(state, link) == "restored"
    assert link.is_symlink() and dotfiles.read_text() == '{\n  "theme": "dark"\n}\n'


def test_read_settings_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "settings.json").mkdir()
    with pytest.raises(GatewayError, match="is a folder"):
        settings.read_settings(tmp_path / "settings.json")


def test_damaged_snapshot_is_reported(tmp_path: Path, state: Path) -> None:
    target = tmp_path / "s.json"
    where = settings.snapshot_file(state, target)
    where.parent.mkdir(parents=True)
    where.write_text("not json")
    with pytest.raises(ConfigError, match="undo snapshot is damaged"):
        settings.restore(state, target)


def test_snapshot_key_depends_on_the_resolved_path(tmp_path: Path, state: Path) -> None:
    os.chdir(tmp_path)
    assert settings.snapshot_file(state, Path("a.json")) == settings.snapshot_file(state, tmp_path / "a.json")
    assert settings.snapshot_file(state, tmp_path / "a.json") != settings.snapshot_file(state, tmp_path / "b.json")
