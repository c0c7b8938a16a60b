"""`cc-gateway add-model`, `remove-model` and `models`: every flag and refusal, comments kept, and the
new routes answering under a real `cc-gateway serve` (e2e)."""

from __future__ import annotations

import difflib
import json
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cc_gateway.cli import app
from cc_gateway.core.envfile import load_env_file
from cc_gateway.gateway.folder import load_gateway
from cc_gateway.gateway.presets import preset_names
from cc_gateway.gateway.providers import load_providers

runner = CliRunner()

# A config written by hand: comments in many places, an indentless model_list, quoted values,
# inline comments, a commented-out route, a flow-style mapping and a trailing comment.
HAND_WRITTEN = textwrap.dedent(
    """\
    # My gateway. Edited by hand; please keep these notes.

    model_list:
    # the main model
    - model_name: "claude-sonnet-4-5-20250929"   # what Claude Code asks for
      litellm_params:
        model: anthropic/claude-sonnet-4-5-20250929
        api_key: os.environ/ANTHROPIC_API_KEY    # never inline
      model_info: {max_output_tokens: 64000}
    # the small model
    - model_name: claude-haiku-4-5-20251001
      litellm_params:
        model: anthropic/claude-haiku-4-5-20251001
        api_key: os.environ/ANTHROPIC_API_KEY
    # - model_name: disabled-route      (kept for later)
    #   litellm_params: {model: openai/gpt-4o}

    general_settings:
      master_key: os.environ/LITELLM_MASTER_KEY  # from .env

    litellm_settings:
      drop_params: true
      # Claude Code's thinking must not send chat upstreams to /v1/responses
      use_chat_completions_url_for_anthropic_messages: true

    router_settings:
      num_retries: 1   # keep retries low
      model_group_alias:
        # short names
        sonnet: claude-sonnet-4-5-20250929
      fallbacks:
        - claude-sonnet-4-5-20250929:
            - claude-haiku-4-5-20251001
    # end of file
    """
)
ENV = "# keys\nLITELLM_MASTER_KEY=sk-" + "m" * 40 + "\nANTHROPIC_API_KEY=sk-ant-api03-" + "a" * 40 + "\n"


def cli(*args: str) -> object:
    """Run cc-gateway in-process; stdout and stderr stay apart."""
    return runner.invoke(app, list(args))


def add(folder: Path, name: str, provider: str, model: str, *extra: str) -> object:
    """Run `add-model` and require success."""
    result = cli("add-model", name, "--provider", provider, "--model", model, *extra, "--dir", str(folder))
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def preset_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An openai-backed gateway rendered once per module (copied by `gw`)."""
    folder = tmp_path_factory.mktemp("template") / "gw"
    result = runner.invoke(app, ["init", "--preset", "openai-backed", "--dir", str(folder), "--yes", "--port", "4999"])
    assert result.exit_code == 0, result.stderr
    return folder


@pytest.fixture
def gw(preset_folder: Path, tmp_path: Path) -> Path:
    """A fresh copy of the rendered openai-backed gateway."""
    return Path(shutil.copytree(preset_folder, tmp_path / "gw"))


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    """A gateway folder with the hand-written config."""
    folder = tmp_path / "hand"
    folder.mkdir()
    (folder / "config.yaml").write_text(HAND_WRITTEN)
    (folder / ".env").write_text(ENV)
    (folder / ".env").chmod(0o600)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a folder, to prove a refusal changed nothing."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def route(folder: Path, name: str) -> dict:
    """The model_list entry called `name` (PyYAML, as LiteLLM reads it)."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    return next(e for e in config["model_list"] if e["model_name"] == name)


def removed_lines(before: str, after: str) -> list[str]:
    """Lines of `before` that `after` dropped or changed."""
    diff = difflib.ndiff(before.splitlines(), after.splitlines())
    return [line[2:] for line in diff if line.startswith("- ")]


# --------------------------------------------------------------------------- add-model


def test_add_model_writes_a_route_claude_code_can_use(gw: Path) -> None:
    before_env = (gw / ".env").read_text()
    before_config = (gw / "config.yaml").read_text()
    result = cli("add-model", "glm", "--provider", "zai", "--model", "glm-4.6", "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    assert route(gw, "glm") == {
        "model_name": "glm",
        "litellm_params": {
            "model": "anthropic/glm-4.6",
            "api_key": "os.environ/ZAI_API_KEY",
            "api_base": "os.environ/ZAI_API_BASE",
        },
        "model_info": {"max_output_tokens": 32000, "max_input_tokens": 200000, "cc_gateway_provider": "zai"},
    }
    env_text = (gw / ".env").read_text()
    assert env_text.startswith(before_env)  # appended only
    assert "\n# Z.ai (GLM) API key\n# ZAI_API_KEY=\n" in env_text
    assert load_env_file(gw / ".env")["ZAI_API_BASE"] == "https://api.z.ai/api/anthropic"
    assert stat.S_IMODE((gw / ".env").stat().st_mode) == 0o600
    assert (gw / "config.yaml.bak").read_text() == before_config
    assert "ZAI_API_KEY is not set" in result.stderr
    assert "added route glm" in result.stderr


def test_backup_is_made_once_before_the_first_change(gw: Path) -> None:
    original = (gw / "config.yaml").read_text()
    add(gw, "a", "zai", "m")
    add(gw, "b", "zai", "m")
    assert (gw / "config.yaml.bak").read_text() == original
    assert sorted(p.name for p in gw.glob("config.yaml.bak*")) == ["config.yaml.bak"]


def test_chat_endpoint_route_stays_on_chat_completions(hand: Path) -> None:
    (hand / "config.yaml").write_text(
        HAND_WRITTEN.replace(
            "  # Claude Code's thinking must not send chat upstreams to /v1/responses\n"
            "  use_chat_completions_url_for_anthropic_messages: true\n",
            "",
        )
    )
    args = ("--provider", "openai-compatible", "--model", "qwen3", "--api-base", "http://127.0.0.1:8000/v1")
    result = cli("add-model", "local", *args, "--key-env", "LOCAL_KEY", "--max-tokens", "8000", "--dir", str(hand))
    assert result.exit_code == 0, result.stderr
    entry = route(hand, "local")
    assert entry["litellm_params"] == {
        "model": "openai/qwen3",
        "api_key": "os.environ/LOCAL_KEY",
        "api_base": "os.environ/OPENAI_COMPATIBLE_API_BASE",
    }
    assert entry["model_info"] == {
        "supports_reasoning": False,
        "max_output_tokens": 8000,
        "cc_gateway_provider": "openai-compatible",
    }
    config = yaml.safe_load((hand / "config.yaml").read_text())
    assert config["litellm_settings"] == {"drop_params": True, "use_chat_completions_url_for_anthropic_messages": True}
    env = load_env_file(hand / ".env")
    assert env["OPENAI_COMPATIBLE_API_BASE"] == "http://127.0.0.1:8000/v1"
    assert "# LOCAL_KEY=" in (hand / ".env").read_text()


def test_comments_and_layout_survive_add_then_remove(hand: Path) -> None:
    original = (hand / "config.yaml").read_text()
    result = add(
        hand,
        "glm",
        "zai",
        "glm-4.6",
        "--alias",
        "g",
        "--alias",
        "glm-latest",
        "--fallback-for",
        "claude-sonnet-4-5-20250929",
    )
    edited = (hand / "config.yaml").read_text()
    assert removed_lines(original, edited) == []  # only additions: every comment and line is still there
    added = [line for line in difflib.ndiff(original.splitlines(), edited.splitlines()) if line.startswith("+ ")]
    assert added == [
        "+ # zai: anthropic/glm-4.6 (added by cc-gateway add-model)",
        "+ - model_name: glm",
        "+   litellm_params:",
        "+     model: anthropic/glm-4.6",
        "+     api_key: os.environ/ZAI_API_KEY",
        "+     api_base: os.environ/ZAI_API_BASE",
        "+   model_info:",
        "+     max_output_tokens: 32000",
        "+     max_input_tokens: 200000",  # LiteLLM's catalogue knows zai/glm-4.6
        "+     cc_gateway_provider: zai",
        "+     g: glm",
        "+     glm-latest: glm",
        "+         - glm",  # at the column of the list it joins
    ]
    config = yaml.safe_load(edited)
    assert config["router_settings"]["fallbacks"] == [
        {"claude-sonnet-4-5-20250929": ["claude-haiku-4-5-20251001", "glm"]}
    ]
    result = cli("remove-model", "glm", "--dir", str(hand))
    assert result.exit_code == 0, result.stderr
    assert (hand / "config.yaml").read_text() == original  # byte for byte
    assert "removed alias g" in result.stderr and "removed alias glm-latest" in result.stderr
    assert "removed glm from the fallbacks of claude-sonnet-4-5-20250929" in result.stderr


def test_generated_config_round_trips_byte_for_byte(gw: Path) -> None:
    original = (gw / "config.yaml").read_text()
    args = ("--provider", "kimi", "--model", "kimi-k2", "--alias", "k", "--fallback-for", "claude-*")
    assert cli("add-model", "kimi", *args, "--dir", str(gw)).exit_code == 0
    assert removed_lines(original, (gw / "config.yaml").read_text()) == []
    assert cli("remove-model", "kimi", "--dir", str(gw)).exit_code == 0
    assert (gw / "config.yaml").read_text() == original


def test_crlf_line_ends_and_an_unterminated_last_line_survive(tmp_path: Path) -> None:
    original = "model_list:\r\n  - model_name: a   # keep\r\n    litellm_params:\r\n      model: openai/x\r\n"
    original += "router_settings:\r\n  num_retries: 1"
    (tmp_path / "config.yaml").write_bytes(original.encode())
    (tmp_path / ".env").write_bytes(b"# keys\r\nLITELLM_MASTER_KEY=sk-xyz\r\n")
    add(tmp_path, "b", "zai", "glm-4.6", "--alias", "bb")
    edited = (tmp_path / "config.yaml").read_bytes().decode()
    assert removed_lines(original, edited) == []
    assert edited.endswith("  num_retries: 1\r\n  model_group_alias:\r\n    bb: b\r\n")
    assert "\n" not in edited.replace("\r\n", "")  # every line still ends in CRLF
    assert "\n" not in (tmp_path / ".env").read_bytes().decode().replace("\r\n", "")
    assert cli("remove-model", "b", "--dir", str(tmp_path)).exit_code == 0
    assert (tmp_path / "config.yaml").read_bytes().decode() == original + "\r\n"


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_round_trips_byte_for_byte(tmp_path: Path, preset: str) -> None:
    init = runner.invoke(app, ["init", "--preset", preset, "--dir", str(tmp_path), "--yes", "--port", "4997"])
    assert init.exit_code == 0, init.stderr
    original = (tmp_path / "config.yaml").read_text()
    first = yaml.safe_load(original)["model_list"][0]["model_name"]
    add(tmp_path, "new-route", "zai", "glm-4.6", "--alias", "nr", "--fallback-for", first)
    edited = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert edited["router_settings"]["model_group_alias"]["nr"] == "new-route"
    assert any("new-route" in item.get(first, []) for item in edited["router_settings"]["fallbacks"])
    assert cli("remove-model", "new-route", "--dir", str(tmp_path)).exit_code == 0
    assert (tmp_path / "config.yaml").read_text() == original


def test_dry_run_prints_the_diff_and_writes_nothing(gw: Path) -> None:
    before = snapshot(gw)
    result = cli("add-model", "glm", "--provider", "zai", "--model", "glm-4.6", "--dry-run", "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    assert snapshot(gw) == before
    assert "+  - model_name: glm" in result.stderr
    assert "+# ZAI_API_KEY=" in result.stderr
    assert load_env_file(gw / ".env")["LITELLM_MASTER_KEY"] not in result.stderr  # .env context lines are masked
    assert "dry run: nothing written" in result.stderr


def test_replace_swaps_the_route_and_keeps_its_comment_and_aliases(hand: Path) -> None:
    result = add(hand, "claude-haiku-4-5-20251001", "deepseek", "deepseek-chat", "--replace")
    text = (hand / "config.yaml").read_text()
    assert "# the small model\n- model_name: claude-haiku-4-5-20251001\n  litellm_params:\n" in text
    assert route(hand, "claude-haiku-4-5-20251001")["litellm_params"]["model"] == "anthropic/deepseek-chat"
    assert route(hand, "claude-haiku-4-5-20251001")["model_info"]["max_output_tokens"] == 8192
    assert yaml.safe_load(text)["router_settings"]["fallbacks"] == [
        {"claude-sonnet-4-5-20250929": ["claude-haiku-4-5-20251001"]}
    ]
    assert "replaced route claude-haiku-4-5-20251001" in result.stderr


def test_force_repoints_an_existing_alias(hand: Path) -> None:
    args = ("add-model", "glm", "--provider", "zai", "--model", "glm-4.6", "--alias", "sonnet", "--dir", str(hand))
    refused = cli(*args)
    assert refused.exit_code == 2
    assert "alias 'sonnet' already points at route 'claude-sonnet-4-5-20250929'" in refused.stderr
    result = cli(*args, "--force")
    assert result.exit_code == 0, result.stderr
    aliases = yaml.safe_load((hand / "config.yaml").read_text())["router_settings"]["model_group_alias"]
    assert aliases == {"sonnet": "glm"}
    assert "  model_group_alias:\n    # short names\n    sonnet: glm\n" in (hand / "config.yaml").read_text()


def test_env_values_already_there_are_never_touched(gw: Path) -> None:
    env_path = gw / ".env"
    env_path.write_text(
        env_path.read_text() + "ZAI_API_KEY=zai-real-value-0123456789\nZAI_API_BASE=https://eu.example/api\n"
    )
    before = env_path.read_text()
    result = cli("add-model", "glm", "--provider", "zai", "--model", "glm-4.6", "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    assert env_path.read_text() == before  # both already there: .env is not rewritten
    assert route(gw, "glm")["litellm_params"]["api_base"] == "os.environ/ZAI_API_BASE"
    assert "zai-real-value" not in result.stderr + result.stdout
    assert ".env: added" not in result.stderr


def test_a_different_api_base_gets_its_own_variable(gw: Path) -> None:
    env_path = gw / ".env"
    env_path.write_text(env_path.read_text() + "ZAI_API_BASE=https://eu.example/api\n")
    result = add(gw, "glm-cn", "zai", "glm-4.6", "--api-base", "https://cn.example/api")
    assert "ZAI_API_BASE in .env already points at https://eu.example/api; route glm-cn reads GLM_CN_API_BASE" in (
        result.stderr
    )
    assert route(gw, "glm-cn")["litellm_params"]["api_base"] == "os.environ/GLM_CN_API_BASE"
    env = load_env_file(env_path)
    assert env["ZAI_API_BASE"] == "https://eu.example/api"
    assert env["GLM_CN_API_BASE"] == "https://cn.example/api"


def test_a_commented_placeholder_is_filled_in_place(gw: Path) -> None:
    env_path = gw / ".env"
    env_path.write_text(env_path.read_text() + "# Z.ai base\n# ZAI_API_BASE=\n")
    add(gw, "glm", "zai", "glm-4.6", "--api-base", "http://z.example")
    text = env_path.read_text()
    assert "# Z.ai base\nZAI_API_BASE=http://z.example\n" in text
    assert "# Z.ai (GLM) API key\n# ZAI_API_KEY=\n" in text
    assert text.count("ZAI_API_BASE") == 1


@pytest.mark.parametrize("name", sorted(load_providers()))
def test_every_provider_in_the_catalogue_can_be_added(gw: Path, name: str) -> None:
    provider = load_providers()[name]
    base = ("--api-base", "https://upstream.example/v1") if provider.needs_base else ()
    result = cli("add-model", "r", "--provider", name, "--model", "some-model", *base, "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    entry = route(gw, "r")
    params = entry["litellm_params"]
    assert params["model"] == f"{provider.prefix}/some-model"
    assert entry["model_info"]["cc_gateway_provider"] == name
    assert entry["model_info"]["max_output_tokens"] == provider.max_tokens
    for key, value in params.items():  # nothing but the model id is a literal
        assert key == "model" or value.startswith("os.environ/"), (key, value)
    if provider.key_env:
        assert params[provider.key_param] == f"os.environ/{provider.key_env}"
    for extra in provider.extra_env:
        assert params[extra.param] == f"os.environ/{extra.name}"
    seen = next(r for r in load_gateway(gw).routes if r.name == "r")  # doctor's and serve's reader
    assert seen.key_env == provider.key_env


# --------------------------------------------------------------------------- refusals


REFUSALS = [
    (["glm0", "--provider", "zai", "--model", "m"], 2, "route 'glm0' already exists"),
    (["x", "--provider", "nope", "--model", "m"], 2, "unknown provider 'nope'"),
    (["x", "--provider", "zai", "--model", "m", "--alias", "glm0"], 2, "alias 'glm0' would shadow the route"),
    (["x", "--provider", "zai", "--model", "m", "--alias", "sonnet"], 2, "alias 'sonnet' already points at route"),
    (["sonnet", "--provider", "zai", "--model", "m"], 2, "'sonnet' is already an alias of route"),
    (["x", "--provider", "zai", "--model", "m", "--fallback-for", "ghost"], 2, "--fallback-for 'ghost': no route"),
    (["x", "--provider", "zai", "--model", "m", "--fallback-for", "sonnet"], 2, "no route by that name"),
    (
        ["glm0", "--provider", "zai", "--model", "m", "--replace", "--fallback-for", "glm1"],
        2,
        "fallback cycle: glm1 -> glm0 -> glm1",
    ),
    (["glm0", "--provider", "zai", "--model", "m", "--replace", "--fallback-for", "glm0"], 2, "fallback cycle"),
    (["x", "--provider", "openai-compatible", "--model", "m"], 2, "provider openai-compatible needs --api-base"),
    (["x", "--provider", "azure", "--model", "m"], 2, "provider azure needs --api-base"),
    (["x", "--provider", "zai", "--model", "m", "--api-base", "ftp://x"], 2, "is not an http(s) URL"),
    (["x", "--provider", "zai", "--model", "m", "--key-env", "BAD-NAME"], 2, "is not a variable name"),
    (["x", "--provider", "zai", "--model", "m", "--max-tokens", "0"], 2, "--max-tokens must be a positive number"),
    (["x", "--provider", "zai"], 2, "add-model needs NAME, --provider and --model (missing: --model)"),
    ([], 2, "(missing: NAME, --provider, --model)"),
]


@pytest.mark.parametrize(("args", "code", "message"), REFUSALS, ids=[r[2][:40] for r in REFUSALS])
def test_refusals_change_nothing(gw: Path, args: list[str], code: int, message: str) -> None:
    for name, fallback in (("glm0", None), ("glm1", "glm0")):
        extra = ("--fallback-for", fallback) if fallback else ()
        add(gw, name, "zai", "m", *extra)
    before = snapshot(gw)
    result = cli("add-model", *args, "--dir", str(gw))
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert snapshot(gw) == before


def test_unknown_provider_lists_the_catalogue(gw: Path) -> None:
    result = cli("add-model", "x", "--provider", "nope", "--model", "m", "--dir", str(gw))
    assert "hint: use one of: anthropic, openai, openrouter, zai, kimi, deepseek" in result.stderr


def test_an_unparseable_config_is_named_with_its_line(hand: Path) -> None:
    (hand / "config.yaml").write_text(HAND_WRITTEN.replace("  drop_params: true\n", "  drop_params: [true\n"))
    before = snapshot(hand)
    for args in (["add-model", "x", "--provider", "zai", "--model", "m"], ["remove-model", "x"], ["models"]):
        result = cli(*args, "--dir", str(hand))
        assert result.exit_code == 1
        assert f"error: {hand / 'config.yaml'}:" in result.stderr
        assert "invalid YAML" in result.stderr
        line = int(result.stderr.split("config.yaml:")[1].split(":")[0])
        broken = HAND_WRITTEN.splitlines().index("  drop_params: true") + 1
        assert broken <= line <= broken + 3, result.stderr  # at, or just after, the unclosed flow list
    assert snapshot(hand) == before


def test_a_duplicate_key_is_refused_with_its_line(hand: Path) -> None:
    (hand / "config.yaml").write_text(
        HAND_WRITTEN.replace("  drop_params: true\n", "  drop_params: true\n  drop_params: false\n")
    )
    result = cli("add-model", "x", "--provider", "zai", "--model", "m", "--dir", str(hand))
    assert result.exit_code == 1
    line = (hand / "config.yaml").read_text().splitlines().index("  drop_params: false") + 1
    assert f"config.yaml:{line}: invalid YAML: found duplicate key" in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "        - claude-haiku-4-5-20251001\n",
            "          claude-haiku-4-5-20251001\n",
            ":32: router_settings.fallbacks.0 must be a list of {route: [fallback routes]}",
        ),
        (
            "  model_group_alias:\n    # short names\n    sonnet: claude-sonnet-4-5-20250929\n",
            "  model_group_alias: [sonnet]\n",
            ":28: router_settings.model_group_alias must be a mapping of alias: route",
        ),
    ],
    ids=["fallback-not-a-list", "aliases-not-a-mapping"],
)
def test_a_malformed_section_is_named_with_its_line(hand: Path, old: str, new: str, message: str) -> None:
    assert old in HAND_WRITTEN
    (hand / "config.yaml").write_text(HAND_WRITTEN.replace(old, new))
    before = snapshot(hand)
    args = ("--fallback-for", "claude-sonnet-4-5-20250929", "--dir", str(hand))
    result = cli("add-model", "x", "--provider", "zai", "--model", "m", *args)
    assert result.exit_code == 1, result.stderr
    assert f"error: {hand / 'config.yaml'}{message}" in result.stderr
    assert snapshot(hand) == before


def test_a_route_without_model_name_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n  - litellm_params: {model: openai/y}\n"
    )
    result = cli("models", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'config.yaml'}:4: model_list[1] has no model_name" in result.stderr


def test_missing_config_says_how_to_make_one(tmp_path: Path) -> None:
    result = cli("add-model", "x", "--provider", "zai", "--model", "m", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert "no gateway config here" in result.stderr
    assert "cc-gateway init" in result.stderr


def test_a_yaml_anchor_in_the_edited_part_is_refused_not_broken(hand: Path) -> None:
    text = HAND_WRITTEN.replace(
        "  model_info: {max_output_tokens: 64000}", "  model_info: &info {max_output_tokens: 64000}"
    )
    text = text.replace("ANTHROPIC_API_KEY\n# - model_name", "ANTHROPIC_API_KEY\n  model_info: *info\n# - model_name")
    (hand / "config.yaml").write_text(text)
    assert yaml.safe_load(text)["model_list"][1]["model_info"] == {"max_output_tokens": 64000}
    before = snapshot(hand)
    result = cli("remove-model", "claude-sonnet-4-5-20250929", "--dir", str(hand))
    assert result.exit_code == 1
    assert "cannot edit this file safely in place" in result.stderr
    assert snapshot(hand) == before


# --------------------------------------------------------------------------- remove-model


def test_remove_model_drops_aliases_and_fallbacks_and_leaves_env(gw: Path) -> None:
    add(gw, "glm", "zai", "glm-4.6", "--alias", "g", "--fallback-for", "claude-*")
    add(gw, "kimi", "kimi", "k2", "--fallback-for", "glm")
    env_before = (gw / ".env").read_bytes()
    result = cli("remove-model", "glm", "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load((gw / "config.yaml").read_text())
    assert "glm" not in [e["model_name"] for e in config["model_list"]]
    assert "g" not in config["router_settings"]["model_group_alias"]
    assert "fallbacks" not in config["router_settings"]  # both fallback entries named glm: the list is gone
    assert (gw / ".env").read_bytes() == env_before
    assert "removed alias g (pointed at glm)" in result.stderr
    assert "removed glm from the fallbacks of claude-*" in result.stderr
    assert "removed the fallbacks of glm (kimi)" in result.stderr
    assert "no route uses ZAI_API_KEY, ZAI_API_BASE any more (left in .env)" in result.stderr


def test_remove_model_keeps_other_fallbacks(hand: Path) -> None:
    add(hand, "glm", "zai", "glm-4.6", "--fallback-for", "claude-sonnet-4-5-20250929")
    result = cli("remove-model", "claude-haiku-4-5-20251001", "--dir", str(hand))
    assert result.exit_code == 0, result.stderr
    assert "any more" not in result.stderr  # ANTHROPIC_API_KEY is still used by the other route
    text = (hand / "config.yaml").read_text()
    assert yaml.safe_load(text)["router_settings"]["fallbacks"] == [{"claude-sonnet-4-5-20250929": ["glm"]}]
    assert "# the small model" not in text  # the removed route's own comment went with it
    assert "# - model_name: disabled-route      (kept for later)" in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ghost", "no route named 'ghost'"),
        ("sonnet", "'sonnet' is an alias of route 'claude-sonnet-4-5-20250929', not a route"),
    ],
)
def test_remove_model_refusals(hand: Path, name: str, message: str) -> None:
    before = snapshot(hand)
    result = cli("remove-model", name, "--dir", str(hand))
    assert result.exit_code == 2
    assert message in result.stderr
    assert snapshot(hand) == before


def test_the_last_route_cannot_be_removed(hand: Path) -> None:
    assert cli("remove-model", "claude-haiku-4-5-20251001", "--dir", str(hand)).exit_code == 0
    result = cli("remove-model", "claude-sonnet-4-5-20250929", "--dir", str(hand))
    assert result.exit_code == 2
    assert "is the only route" in result.stderr


def test_flow_style_sections_are_rewritten_as_valid_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, api_key: os.environ/OPENAI_API_KEY}}\n"
        "router_settings: {fallbacks: [{a: [b]}]}  # flow style\n"
    )
    add(folder, "b", "groq", "llama", "--fallback-for", "a", "--alias", "bee")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert [e["model_name"] for e in config["model_list"]] == ["a", "b"]
    assert config["router_settings"] == {"fallbacks": [{"a": ["b"]}], "model_group_alias": {"bee": "b"}}
    assert config["litellm_settings"] == {"use_chat_completions_url_for_anthropic_messages": True}
    result = cli("remove-model", "b", "--dir", str(folder))
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((folder / "config.yaml").read_text())["router_settings"] == {}


def test_flow_lists_inside_block_items_keep_their_dash(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
        "  - model_name: z\n    litellm_params: {model: openai/z}\n"
        "router_settings:\n  fallbacks:\n  - a: [z]\n    z: [a]\n  - z: [a]\n"
    )
    add(tmp_path, "c", "zai", "m", "--fallback-for", "a")
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["router_settings"]["fallbacks"] == [{"a": ["z", "c"], "z": ["a"]}, {"z": ["a"]}]
    result = cli("remove-model", "z", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["router_settings"]["fallbacks"] == [{"a": ["c"]}]


# --------------------------------------------------------------------------- models


def test_models_json_shape_never_shows_key_values(gw: Path) -> None:
    secret = "zai-secret-value-0123456789abcdef"
    add(gw, "glm", "zai", "glm-4.6", "--alias", "g", "--fallback-for", "claude-*")
    env_path = gw / ".env"
    env_path.write_text(env_path.read_text().replace("# ZAI_API_KEY=", f"ZAI_API_KEY={secret}"))
    result = cli("models", "--json", "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    assert secret not in result.stdout
    data = json.loads(result.stdout)
    assert set(data) == {"config", "routes", "aliases", "fallbacks"}
    glm = next(r for r in data["routes"] if r["name"] == "glm")
    assert glm == {
        "name": "glm",
        "model": "anthropic/glm-4.6",
        "provider": "zai",
        "key_env": "ZAI_API_KEY",
        "key_set": True,
        "key_inline": False,
        "api_base": "os.environ/ZAI_API_BASE",
        "aliases": ["g"],
        "fallbacks": [],
    }
    sonnet = data["routes"][0]
    assert (sonnet["key_env"], sonnet["key_set"]) == ("OPENAI_API_KEY", False)
    assert data["aliases"]["g"] == "glm"
    assert data["fallbacks"] == {"claude-*": ["glm"]}


def test_models_table(gw: Path) -> None:
    add(gw, "local", "ollama", "qwen3")
    result = cli("models", "--dir", str(gw))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    data = json.loads(cli("models", "--json", "--dir", str(gw)).stdout)
    first = data["routes"][0]
    assert lines[0].split() == [first["name"], first["model"], "OPENAI_API_KEY", "(NOT", "SET)"]
    assert lines[len(data["routes"]) - 1].split() == ["local", "ollama_chat/qwen3", "no", "key", "needed"]
    assert f"  sonnet -> {data['aliases']['sonnet']}" in lines
    assert "aliases:" in lines


def test_models_marks_an_inline_key(tmp_path: Path) -> None:
    init = runner.invoke(app, ["init", "--preset", "demo", "--dir", str(tmp_path), "--yes", "--port", "4998"])
    assert init.exit_code == 0, init.stderr
    data = json.loads(cli("models", "--json", "--dir", str(tmp_path)).stdout)
    assert data["routes"][0]["key_inline"] is True
    assert data["routes"][0]["key_env"] is None


# --------------------------------------------------------------------------- wizard (a real terminal)


def test_wizard_asks_for_what_flags_left_out(gw: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cc_gateway", "add-model", "--dir", str(gw)],
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.expect("Provider:")
    child.send("\x1b[B" * 13 + "\r")  # 14th entry: openai-compatible
    child.expect("Model id")
    child.sendline("qwen3")
    child.expect("Route name")
    child.sendline("")  # default: the model id
    child.expect("Base URL")
    child.sendline("http://127.0.0.1:8000/v1")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert route(gw, "qwen3")["litellm_params"]["model"] == "openai/qwen3"
    assert load_env_file(gw / ".env")["OPENAI_COMPATIBLE_API_BASE"] == "http://127.0.0.1:8000/v1"


# --------------------------------------------------------------------------- e2e: the new routes under serve

LOCAL_KEY = "local-upstream-key-0123456789"
ZAI_KEY = "zai-upstream-key-0123456789abcdef"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, upstream: object) -> object:
    """openai-backed gateway + two routes added by the real CLI, keys filled in, served once per module."""
    from conftest import cli_env, init_gateway, run_cli, start_gateway

    home = tmp_path_factory.mktemp("home")
    folder = init_gateway(tmp_path_factory.mktemp("served") / "gw", "openai-backed")
    for args in (
        ["local", "--provider", "openai-compatible", "--model", "qwen-local", "--api-base", f"{upstream.url}/v1"],
        ["glm", "--provider", "zai", "--model", "glm-4.6", "--api-base", upstream.url, "--alias", "g"],
    ):
        result = run_cli("add-model", *args, "--dir", str(folder), env=cli_env(home))
        assert result.returncode == 0, result.stderr
    env_path = folder / ".env"
    text = env_path.read_text()
    text = text.replace("# OPENAI_COMPATIBLE_API_KEY=\n", f"OPENAI_COMPATIBLE_API_KEY={LOCAL_KEY}\n")
    env_path.write_text(text.replace("# ZAI_API_KEY=\n", f"ZAI_API_KEY={ZAI_KEY}\n"))
    gateway = start_gateway(folder, env=cli_env(home))
    yield gateway
    gateway.stop()


@pytest.mark.e2e
def test_added_routes_answer_through_v1_messages(served: object, fresh_upstream: object) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=served.url, api_key=served.key, max_retries=0)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    for model in ("local", "glm", "g"):
        reply = client.messages.create(
            model=model, max_tokens=2048, thinking=thinking, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.content[-1].text.startswith("fake reply from"), reply
        with client.messages.stream(
            model=model, max_tokens=32000, thinking=thinking, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            assert stream.get_final_text().startswith("fake reply from")
    # LiteLLM may list the upstream's models in the background (GET /v1/models): count the calls made for us.
    calls = [r for r in fresh_upstream.requests if r.method == "POST"]
    seen = [(r.path, r.model) for r in calls]
    assert seen == [("/v1/chat/completions", "qwen-local")] * 2 + [("/v1/messages", "glm-4.6")] * 4
    local, glm = calls[0], calls[2]
    assert local.headers["authorization"] == f"Bearer {LOCAL_KEY}"
    assert glm.headers["x-api-key"] == ZAI_KEY
    for received in fresh_upstream.requests:
        assert served.key not in json.dumps(received.headers) + received.body.decode()  # the gateway key stays home
    assert calls[1].get("max_tokens") <= 32000


@pytest.mark.e2e
def test_added_routes_answer_through_chat_completions(served: object, fresh_upstream: object) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=served.key, max_retries=0)
    for model in ("local", "glm"):
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content.startswith("fake reply from")
    seen = [(r.path, r.model) for r in fresh_upstream.requests if r.method == "POST"]
    assert seen == [("/v1/chat/completions", "qwen-local"), ("/v1/messages", "glm-4.6")]


@pytest.mark.e2e
def test_models_sees_the_keys_that_serve_uses(served: object) -> None:
    data = json.loads(cli("models", "--json", "--dir", str(served.folder)).stdout)
    keys = {r["name"]: (r["key_env"], r["key_set"]) for r in data["routes"]}
    assert keys["local"] == ("OPENAI_COMPATIBLE_API_KEY", True)
    assert keys["glm"] == ("ZAI_API_KEY", True)
    output = json.dumps(data)
    assert LOCAL_KEY not in output and ZAI_KEY not in output


def test_ctrl_c_in_the_wizard_exits_130_and_writes_nothing(gw: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    before = snapshot(gw)
    child = pexpect.spawn(
        sys.executable, ["-m", "cc_gateway", "add-model", "glm", "--dir", str(gw)], encoding="utf-8", timeout=30
    )
    child.expect("Provider:")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in child.before
    assert snapshot(gw) == before
