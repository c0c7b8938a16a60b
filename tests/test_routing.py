"""The routing engine (cc_gateway/routing): rule parsing, token estimate, classification, evaluation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cc_gateway.core.errors import ConfigError
from cc_gateway.routing import (
    RequestView,
    RouteTable,
    estimate_tokens,
    evaluate,
    load_rules,
    parse_rules,
    strip_web_search,
)
from cc_gateway.routing.engine import FELL, FIRED, NO, HookLoader
from cc_gateway.routing.request import IMAGE_TOKENS

CATALOGUE = {
    "anthropic": {
        "prefix": "anthropic",
        "context_window": 200_000,
        "images": True,
        "web_search": True,
        "thinking": True,
    },
    "zai": {"prefix": "anthropic", "context_window": 128_000, "images": False, "web_search": False, "thinking": False},
    "openrouter": {
        "prefix": "openrouter",
        "context_window": None,
        "images": None,
        "web_search": True,
        "thinking": False,
    },
}


def route(name: str, provider: str, model: str | None = None, **info: object) -> dict:
    return {
        "model_name": name,
        "litellm_params": {"model": model or f"anthropic/{name}", "api_base": "os.environ/X"},
        "model_info": {"cc_gateway_provider": provider, **info},
    }


MODEL_LIST = [
    route("glm", "zai"),
    route("glm-fast", "zai", max_input_tokens=64_000),
    route("kimi-long", "zai", max_input_tokens=1_000_000),
    route("vision", "openrouter", "openrouter/qwen/qwen-vl", supports_vision=True),
    route("claude-*", "anthropic", "anthropic/claude-*"),
]
TABLE = RouteTable(MODEL_LIST, {"fast": "glm-fast"}, CATALOGUE)


def rules_of(yaml_text: str, tmp_path: Path) -> tuple:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    return load_rules(path)


def body(text: str = "hi", model: str = "glm", **extra: object) -> dict:
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}


def decide(rules: tuple, payload: dict, headers: dict | None = None, hooks: dict | None = None):
    return evaluate(rules, RequestView(payload, headers or {}), TABLE, hooks)


# --------------------------------------------------------------------------- parsing


EXAMPLE = """\
model_list: []
routing_rules:
  - long_context: {above_tokens: 60000, route: kimi-long}
  - subagent: glm-fast
  - background: {route: glm-fast, models: ["*haiku*", "small-*"]}
  - thinking: {route: glm, above_budget: 16000, effort: [high, max]}
  - image: vision
  - web_search: claude-sonnet-4-5
  - match: {header: {X-Team: "infra*"}, model: "claude-*", to: glm}
    name: infra-team
  - hook: my_rules.choose
"""


def test_parses_every_kind_with_lines(tmp_path):
    rules = rules_of(EXAMPLE, tmp_path)
    assert [r.kind for r in rules] == ["long_context", "subagent", "background", "thinking", "image", "web_search",
                                       "match", "hook"]  # fmt: skip
    assert [r.line for r in rules] == [3, 4, 5, 6, 7, 8, 9, 11]
    long, _, background, thinking, _, _, match, hook = rules
    assert (long.above_tokens, long.route) == (60000, "kimi-long")
    assert background.models == ("*haiku*", "small-*")
    assert (thinking.above_budget, thinking.effort) == (16000, ("high", "max"))
    assert match.headers == (("x-team", "infra*"),) and match.model_glob == "claude-*" and match.route == "glm"
    assert match.label == "infra-team" and long.label == "long_context"
    assert hook.hook == "my_rules.choose" and hook.route is None


def test_no_section_means_no_rules(tmp_path):
    assert rules_of("model_list: []\n", tmp_path) == ()
    assert parse_rules({}) == ()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("  - long_context: {route: kimi-long}", ":3: routing_rules[1].long_context.above_tokens: is missing"),
        ("  - long_context: {above_tokens: -5, route: x}", ":3: routing_rules[1].long_context.above_tokens: must be"),
        ("  - fast_lane: glm", ":3: routing_rules[1].fast_lane: unknown rule kind"),
        ("  - {subagent: glm, image: glm}", ":3: routing_rules[1]: one rule kind per item, found 2"),
        ("  - subagent: ''", ":3: routing_rules[1].subagent: needs a route name"),
        ("  - thinking: {route: glm, effort: [huge]}", ":3: routing_rules[1].thinking.effort: 'huge' is not an effort"),
        ("  - match: {to: glm}", ":3: routing_rules[1].match: needs at least one of header, model, route"),
        ("  - match: {model: 'x*'}", ":3: routing_rules[1].match.to: needs a route name"),
        ("  - match: {model: 'x*', to: glm, modle: y}", ":3: routing_rules[1].match.modle: unknown key"),
        ("  - hook: not a module", ":3: routing_rules[1].hook: is 'module.function'"),
        ("  - glm", ":3: routing_rules[1]: a rule is a mapping"),
    ],
)
def test_a_bad_rule_is_one_line_naming_file_line_and_field(tmp_path, rule, expected):
    with pytest.raises(ConfigError) as caught:
        rules_of(f"routing_rules:\n  - subagent: glm\n{rule}\n", tmp_path)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "config.yaml")) and expected in message
    assert "\n" not in message and caught.value.hint


def test_routing_rules_must_be_a_list(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml:1: routing_rules: must be a list"):
        rules_of("routing_rules: {subagent: glm}\n", tmp_path)


# --------------------------------------------------------------------------- token estimate


def test_estimate_counts_text_over_four_and_images_flat():
    text = "x" * 4000
    assert estimate_tokens(body(text)) == 1000
    assert estimate_tokens(body(text + "y")) == 1001  # rounded up: deterministic, no tokenizer
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 400_000}}
    with_image = {"model": "m", "messages": [{"role": "user", "content": [image, {"type": "text", "text": text}]}]}
    assert estimate_tokens(with_image) == 1000 + IMAGE_TOKENS  # the base64 data is not text


def test_estimate_counts_system_tools_tool_use_and_results():
    tools = [{"name": "Read", "description": "d" * 400, "input_schema": {"type": "object"}}]
    payload = {
        "system": [{"type": "text", "text": "s" * 400}],
        "tools": tools,
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {"p": "q"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r" * 800}]},
        ],
    }
    expected = 400 + len(json.dumps(tools, separators=(",", ":"))) + len("Read") + len('{"p":"q"}') + 800
    assert estimate_tokens(payload) == -(-expected // 4)


def claude_code_like(turns: int) -> dict:
    """A body shaped like Claude Code's: system blocks, 20 tools, tool_use/tool_result turns."""
    tools = [{"name": f"Tool{i}", "description": "Does a thing. " * 30,
              "input_schema": {"type": "object", "properties": {"path": {"type": "string", "description": "a path"}}}}
             for i in range(20)]  # fmt: skip
    messages: list[dict] = [{"role": "user", "content": [{"type": "text", "text": "Fix the failing test in src/."}]}]
    for i in range(turns):
        use = {"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {"file_path": f"/src/mod{i}.py"}}
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "Let me read it."}, use]})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "def handler(event):  return 1 " * 40}
        messages.append({"role": "user", "content": [result]})
    system = [{"type": "text", "text": "You are Claude Code. " * 200}]
    return {"model": "claude-opus-5-5", "system": system, "tools": tools, "messages": messages, "max_tokens": 32000}


def fake_upstream_count(payload: dict) -> int:
    """tests/fakeupstream.py's count_tokens: its JSON of system, messages and tools over 4."""
    return len(json.dumps([payload.get("system"), payload.get("messages"), payload.get("tools")])) // 4


@pytest.mark.parametrize("turns", [0, 10, 100])
def test_estimate_is_within_15_percent_of_the_fake_upstreams_count(turns):
    payload = claude_code_like(turns)
    ours, theirs = estimate_tokens(payload), fake_upstream_count(payload)
    assert abs(ours - theirs) / theirs < 0.15, (ours, theirs)


# --------------------------------------------------------------------------- classification and evaluation


LONG = (rules := parse_rules({"routing_rules": [{"long_context": {"above_tokens": 1000, "route": "kimi-long"}}]}))


def test_long_context_fires_only_past_the_threshold():
    at = decide(LONG, body("x" * 4000))  # exactly 1000 tokens: not past
    past = decide(LONG, body("x" * 4001))
    assert at.rule is None and at.model == "glm" and at.steps[0].outcome == NO
    assert past.rule.kind == "long_context" and past.model == "kimi-long" and past.route == "kimi-long"
    assert "~1,001 tokens is above 1,000" in past.reason and past.label == "long_context"


def test_a_rule_whose_target_window_is_too_small_falls_through():
    rules = parse_rules({"routing_rules": [
        {"long_context": {"above_tokens": 1000, "route": "fast"}},  # alias of glm-fast: 64k window
        {"long_context": {"above_tokens": 1000, "route": "kimi-long"}},
    ]})  # fmt: skip
    decision = decide(rules, body("x" * 300_000))  # ~75k tokens
    assert [s.outcome for s in decision.steps] == [FELL, FIRED]
    assert "do not fit route glm-fast's context window of 64,000" in decision.steps[0].reason
    assert decision.model == "kimi-long"


def test_a_rule_to_a_route_that_does_not_exist_falls_through():
    rules = parse_rules({"routing_rules": [{"subagent": "nope"}, {"subagent": "glm-fast"}]})
    decision = decide(rules, body(), {"x-claude-code-agent-id": "a1"})
    assert decision.steps[0].outcome == FELL and "route nope does not exist" in decision.steps[0].reason
    assert decision.model == "glm-fast"


def test_subagent_by_either_claude_code_header():
    rules = parse_rules({"routing_rules": [{"subagent": "glm-fast"}]})
    assert decide(rules, body()).rule is None
    assert decide(rules, body(), {"x-claude-code-agent-id": "a1"}).model == "glm-fast"
    nested = decide(rules, body(), {"x-claude-code-parent-agent-id": "a1"})
    assert nested.model == "glm-fast" and "x-claude-code-parent-agent-id" in nested.reason


def test_background_is_a_haiku_id_without_tools():
    rules = parse_rules({"routing_rules": [{"background": "glm-fast"}]})
    title = decide(rules, body(model="claude-haiku-4-5-20251001"))
    haiku_session = decide(rules, body(model="claude-haiku-4-5-20251001", tools=[{"name": "Bash"}]))
    main = decide(rules, body(model="claude-opus-5-5"))
    assert title.model == "glm-fast" and "background call" in title.reason
    assert haiku_session.rule is None and "offers tools" in haiku_session.steps[0].reason
    assert main.rule is None


def test_thinking_by_budget_or_adaptive_effort():
    any_thinking = parse_rules({"routing_rules": [{"thinking": "claude-opus-5-5"}]})
    by_budget = parse_rules({"routing_rules": [{"thinking": {"route": "claude-opus-5-5", "above_budget": 8000}}]})
    by_effort = parse_rules({"routing_rules": [{"thinking": {"route": "claude-opus-5-5", "effort": ["high", "max"]}}]})
    enabled = {"type": "enabled", "budget_tokens": 8001}
    adaptive_high = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}
    assert decide(any_thinking, body()).rule is None
    assert decide(any_thinking, body(thinking={"type": "adaptive"})).model == "claude-opus-5-5"
    assert decide(by_budget, body(thinking=enabled)).model == "claude-opus-5-5"
    assert decide(by_budget, body(thinking={**enabled, "budget_tokens": 8000})).rule is None
    assert decide(by_budget, body(**adaptive_high)).rule is None  # no budget to compare
    assert decide(by_effort, body(**adaptive_high)).model == "claude-opus-5-5"
    medium = decide(by_effort, body(thinking={"type": "adaptive"}, output_config={"effort": "medium"}))
    assert medium.rule is None and "effort medium" in medium.steps[0].reason


def test_thinking_rule_to_a_route_without_thinking_falls_through():
    rules = parse_rules({"routing_rules": [{"thinking": "glm"}]})
    decision = decide(rules, body(model="claude-opus-5-5", thinking={"type": "enabled", "budget_tokens": 2000}))
    assert decision.rule is None and "route glm does not take thinking" in decision.steps[0].reason


IMAGE_MESSAGE = {"role": "user", "content": [
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    {"type": "text", "text": "what is this?"},
]}  # fmt: skip


def test_image_rule_sends_images_to_the_vision_route():
    rules = parse_rules({"routing_rules": [{"image": "vision"}]})
    decision = decide(rules, {"model": "glm", "messages": [IMAGE_MESSAGE]})
    assert decision.model == "vision" and decision.refusal is None


def test_an_image_in_a_tool_result_counts_too():
    result = {"type": "tool_result", "tool_use_id": "t", "content": IMAGE_MESSAGE["content"]}
    view = RequestView({"model": "glm", "messages": [{"role": "user", "content": [result]}]})
    assert view.images


def test_image_to_a_text_only_route_without_a_rule_is_refused_naming_routes_that_take_images():
    decision = decide((), {"model": "glm", "messages": [IMAGE_MESSAGE]})
    assert decision.refusal.startswith("route glm does not take images (routes that take images: vision, claude-*)")
    assert "- image: vision" in decision.refusal


def test_an_image_rule_to_a_text_only_route_falls_through_and_the_guard_refuses():
    rules = parse_rules({"routing_rules": [{"image": "glm-fast"}]})
    decision = decide(rules, {"model": "glm", "messages": [IMAGE_MESSAGE]})
    assert decision.steps[0].outcome == FELL and "does not take images" in decision.steps[0].reason
    assert decision.refusal is not None


def test_an_image_to_a_route_of_unknown_ability_passes():
    table = RouteTable([route("local", "ollama", "ollama_chat/llava")], catalogue=CATALOGUE)
    decision = evaluate((), RequestView({"model": "local", "messages": [IMAGE_MESSAGE]}), table)
    assert decision.refusal is None


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


def test_web_search_rule_sends_it_to_a_route_that_can_run_it():
    rules = parse_rules({"routing_rules": [{"web_search": "claude-sonnet-4-5"}]})
    decision = decide(rules, body(tools=[WEB_SEARCH], tool_choice={"type": "auto"}))
    assert decision.model == "claude-sonnet-4-5" and decision.route == "claude-*"
    assert not decision.strip_web_search


def test_web_search_without_a_rule_on_a_route_that_cannot_run_it_is_removed_with_a_notice():
    decision = decide((), body(tools=[WEB_SEARCH], tool_choice={"type": "auto"}))
    assert decision.strip_web_search and decision.refusal is None
    assert decision.notice.startswith("[cc-gateway] web search is not available on route glm")
    assert "'- web_search: vision'" in decision.notice and "\n" not in decision.notice


def test_strip_web_search_keeps_the_other_tools():
    only = body(tools=[WEB_SEARCH], tool_choice={"type": "tool", "name": "web_search"})
    assert strip_web_search(only) == ["web_search"] and "tools" not in only and "tool_choice" not in only
    mixed = body(tools=[WEB_SEARCH, {"name": "Bash", "input_schema": {}}], tool_choice={"type": "auto"})
    assert strip_web_search(mixed) == ["web_search"]
    assert mixed["tools"] == [{"name": "Bash", "input_schema": {}}] and mixed["tool_choice"] == {"type": "auto"}
    assert strip_web_search(body()) == []


def test_match_by_header_model_and_route():
    rules = parse_rules({"routing_rules": [
        {"match": {"header": "X-Team: infra*", "to": "glm-fast"}},
        {"match": {"model": "claude-haiku-*", "to": "glm-fast"}},
        {"match": {"route": "claude-*", "to": "glm"}},
    ]})  # fmt: skip
    assert decide(rules, body(model="claude-opus-5-5"), {"x-team": "infra-eu"}).rule.index == 0
    assert decide(rules, body(model="claude-haiku-5-5")).rule.index == 1
    by_route = decide(rules, body(model="claude-opus-5-5"))
    assert by_route.rule.index == 2 and "route claude-* matches 'claude-*'" in by_route.reason
    assert decide(rules, body(model="glm")).rule is None


def test_hook_loaded_from_next_to_config_chooses_with_a_reason(tmp_path):
    (tmp_path / "my_rules.py").write_text(
        textwrap.dedent("""
        def choose(request):
            if "urgent" in str(request.body.get("messages")):
                return "glm-fast", "an urgent prompt"
            return None

        def broken(request):
            raise RuntimeError("oops")
    """)
    )
    rules = rules_of("routing_rules:\n  - hook: my_rules.broken\n  - hook: my_rules.choose\n", tmp_path)
    hooks = HookLoader(tmp_path).load_all(rules)
    decision = decide(rules, body("this is urgent"), hooks=hooks)
    assert decision.model == "glm-fast" and decision.rule.index == 1
    assert "raised RuntimeError: oops" in decision.steps[0].reason
    assert "hook my_rules.choose chose glm-fast (an urgent prompt)" in decision.reason
    assert decide(rules, body("calm"), hooks=hooks).rule is None


def test_a_hook_that_cannot_be_loaded_names_the_rule_line(tmp_path):
    rules = rules_of("routing_rules:\n  - subagent: glm\n  - hook: missing_mod.fn\n", tmp_path)
    with pytest.raises(ConfigError, match=r"config.yaml:3: routing_rules\[1\].hook: cannot import missing_mod"):
        HookLoader(tmp_path, tmp_path / "config.yaml").load_all(rules)


def test_rules_are_evaluated_in_order_and_the_first_fit_wins():
    rules = parse_rules(
        {"routing_rules": [{"subagent": "glm-fast"}, {"long_context": {"above_tokens": 10, "route": "kimi-long"}}]}
    )
    decision = decide(rules, body("x" * 100), {"x-claude-code-agent-id": "a"})
    assert decision.model == "glm-fast" and len(decision.steps) == 1


# --------------------------------------------------------------------------- the route table


def test_table_resolves_names_aliases_and_wildcards():
    assert TABLE.resolve("glm") == "glm" and TABLE.resolve("fast") == "glm-fast"
    assert TABLE.resolve("claude-opus-5-5") == "claude-*" and TABLE.resolve("gpt-9") is None


def test_caps_model_info_beats_the_catalogue_and_deployments_must_all_take_it():
    assert TABLE.caps("glm").context_window == 128_000 and TABLE.caps("glm-fast").context_window == 64_000
    assert TABLE.caps("vision").images is True and TABLE.caps("glm").images is False
    assert TABLE.caps("claude-*").web_search is True
    mixed = RouteTable([route("g", "anthropic"), route("g", "zai")], catalogue=CATALOGUE).caps("g")
    assert mixed.images is False and mixed.context_window == 128_000 and mixed.provider is None


def test_provider_from_the_model_prefix_only_without_an_api_base():
    table = RouteTable([
        {"model_name": "a", "litellm_params": {"model": "anthropic/claude-x"}},
        {"model_name": "b", "litellm_params": {"model": "anthropic/glm", "api_base": "https://example"}},
    ], catalogue=CATALOGUE)  # fmt: skip
    assert table.caps("a").provider == "anthropic" and table.caps("b").provider is None


# --------------------------------------------------------------------------- doctor's findings


def test_rule_problems_name_missing_wildcard_and_unable_targets():
    from cc_gateway.routing.checks import FAIL, WARN, rule_problems

    rules = parse_rules({"routing_rules": [
        {"subagent": "nope"},
        {"web_search": "claude-*"},
        {"image": "glm"},
        {"long_context": {"above_tokens": 100_000, "route": "glm-fast"}},
        {"image": "vision"},
        {"thinking": "claude-opus-5-5"},
        {"long_context": {"above_tokens": 100_000, "route": "vision"}},
    ]})  # fmt: skip
    found = [(p.status, p.rule.index, p.message) for p in rule_problems(rules, TABLE)]
    assert (FAIL, 0, "rule subagent sends to nope, which is no route or alias") in found
    assert any(s == FAIL and i == 1 and "wildcard claude-*" in m for s, i, m in found)
    assert any(s == FAIL and i == 2 and "sends images to route glm, which does not take them" in m for s, i, m in found)
    assert any(s == FAIL and i == 3 and "(64,000) is not above the rule's 100,000" in m for s, i, m in found)
    assert not any(i in (4, 5) for _, i, _ in found)  # vision takes images, claude-* thinks
    assert (WARN, 6, "route vision's context window is not known: long requests may not fit") in found
    assert [s for s, _, _ in found] == sorted((s for s, _, _ in found), key=lambda s: s != FAIL)


# --------------------------------------------------------------------------- the notice line in a response


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def test_stream_notice_becomes_the_first_block_and_later_indexes_move_up():
    from cc_gateway.serve.notice import StreamNotice

    stream = sse(
        {"type": "message_start", "message": {"id": "m", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    )
    notice = StreamNotice("[cc-gateway] note")
    out = b"".join(notice.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + notice.feed(b"", final=True)
    events = [json.loads(line[5:]) for line in out.decode().splitlines() if line.startswith("data:")]
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_stop", 1),
        ("message_stop", None),
    ]  # fmt: skip
    assert events[2]["delta"]["text"].startswith("[cc-gateway] note") and events[5]["delta"]["text"] == "hello"


def test_json_notice_is_put_first_in_content():
    from cc_gateway.serve.notice import add_to_message

    message = {"type": "message", "content": [{"type": "text", "text": "hi"}]}
    out = json.loads(add_to_message(json.dumps(message).encode(), "[cc-gateway] note"))
    assert [b["text"] for b in out["content"]] == ["[cc-gateway] note\n\n", "hi"]
    assert add_to_message(b'{"type":"error"}', "x") == b'{"type":"error"}'


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def folder(tmp_path):
    """An anthropic gateway folder with glm-fast (subagents) and kimi-long (long context), made by the CLI."""
    from conftest import init_gateway, run_cli

    gw = init_gateway(tmp_path / "gw", "anthropic")
    for flags in (["glm-fast", "--provider", "zai", "--model", "glm-5-air", "--for", "subagent", "--for", "background"],
                  ["kimi-long", "--provider", "kimi", "--model", "kimi-k3", "--for", "long-context",
                   "--above-tokens", "90000"]):  # fmt: skip
        result = run_cli("add-model", *flags, "--dir", str(gw))
        assert result.returncode == 0, result.stderr
    return gw


def test_add_model_for_writes_rules_and_repoints_them(folder):
    from conftest import run_cli

    from cc_gateway.core.files import load_yaml

    config = load_yaml(folder / "config.yaml")
    assert config["routing_rules"] == [
        {"subagent": "glm-fast"}, {"background": "glm-fast"}, {"long_context": {"above_tokens": 90000, "route": "kimi-long"}},
    ]  # fmt: skip
    result = run_cli("add-model", "kimi-fast", "--provider", "kimi", "--model", "k", "--for", "subagent",
                     "--dir", str(folder))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "routing_rules: 'subagent' now sends to kimi-fast (was glm-fast)" in result.stderr
    assert load_yaml(folder / "config.yaml")["routing_rules"][0] == {"subagent": "kimi-fast"}
    assert (folder / "config.yaml").read_text().startswith("# Generated by cc-gateway")  # comments kept


def test_add_model_for_image_marks_the_route_as_taking_images(folder):
    from conftest import run_cli

    from cc_gateway.core.files import load_yaml

    result = run_cli(
        "add-model", "vl", "--provider", "zai", "--model", "glm-4.5v", "--for", "image", "--dir", str(folder)
    )
    assert result.returncode == 0, result.stderr
    config = load_yaml(folder / "config.yaml")
    assert config["routing_rules"][-1] == {"image": "vl"}
    assert config["model_list"][-1]["model_info"]["supports_vision"] is True  # zai's default is text-only


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--above-tokens", "5"], "--above-tokens goes with --for long-context"),
        (["--for", "video"], "--for 'video' is not a rule"),
        (["--for", "long-context", "--above-tokens", "0"], "--above-tokens must be a positive number"),
    ],
)
def test_add_model_for_refuses_bad_flags_with_one_line(folder, flags, message):
    from conftest import run_cli

    before = (folder / "config.yaml").read_text()
    result = run_cli("add-model", "x", "--provider", "zai", "--model", "m", *flags, "--dir", str(folder))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert (folder / "config.yaml").read_text() == before


def test_route_explain_prints_each_rule_and_the_decision(folder, tmp_path):
    from conftest import run_cli

    request = tmp_path / "req.json"
    request.write_text(json.dumps(body("hi", model="claude-opus-5-5")))
    result = run_cli("route", "explain", str(request), "--dir", str(folder), "--header", "x-claude-code-agent-id: a1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("request: model claude-opus-5-5 (route claude-*), ~1 tokens")
    assert "subagent" in lines[1] and "fired" in lines[1] and "x-claude-code-agent-id header is set" in lines[1]
    assert lines[-1] == "-> model glm-fast, route glm-fast (rule=subagent)"


def test_route_explain_reads_stdin_and_names_the_guards(folder):
    import subprocess
    import sys

    from conftest import cli_env

    payload = {"model": "glm-fast", "messages": [{"role": "user", "content": "q"}], "tools": [WEB_SEARCH]}
    result = subprocess.run([sys.executable, "-m", "cc_gateway", "route", "explain", "-", "--dir", str(folder)],
                            input=json.dumps(payload), capture_output=True, text=True, env=cli_env(), timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "-> model glm-fast, route glm-fast (no rule fired)" in result.stdout
    assert (
        "the web_search tool is removed; the client is told: [cc-gateway] web search is not available" in result.stdout
    )


def test_route_explain_bad_json_is_one_line(folder, tmp_path):
    from conftest import run_cli

    request = tmp_path / "req.json"
    request.write_text('{"model": "x",\n  "messages": [}\n')
    result = run_cli("route", "explain", str(request), "--dir", str(folder))
    assert result.returncode == 1 and f"{request}:2: not JSON" in result.stderr and "Traceback" not in result.stderr


def test_doctor_fails_a_rule_whose_target_cannot_take_what_it_sends(folder):
    from conftest import run_cli

    config = folder / "config.yaml"
    config.write_text(config.read_text() + "- image: glm-fast\n")  # add-model writes the list at column 0
    result = run_cli("doctor", "--dir", str(folder), "--no-network", "--json")
    row = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "routing rules")
    assert row["status"] == "fail", row
    line = config.read_text().splitlines().index("- image: glm-fast") + 1
    assert row["detail"] == f"{config}:{line}: rule image sends images to route glm-fast, which does not take them"


def test_serve_refuses_a_rule_that_does_not_parse(folder):
    from conftest import run_cli

    config = folder / "config.yaml"
    config.write_text(config.read_text() + "- long_context: {route: kimi-long}\n")
    result = run_cli("serve", "--dir", str(folder), "--port", "1")
    assert result.returncode == 1, result.stderr
    assert (
        "routing_rules[3].long_context.above_tokens: is missing" in result.stderr and "Traceback" not in result.stderr
    )


def test_remove_model_drops_the_rules_that_send_to_it(folder):
    from conftest import run_cli

    from cc_gateway.core.files import load_yaml

    result = run_cli("remove-model", "glm-fast", "--dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert "routing_rules: removed 'subagent' (it sent to glm-fast)" in result.stderr
    assert load_yaml(folder / "config.yaml")["routing_rules"] == [
        {"long_context": {"above_tokens": 90000, "route": "kimi-long"}}
    ]


@pytest.mark.parametrize("answer", ["y", "n"])
def test_the_wizard_offers_the_presets_rules(tmp_path, answer):
    import sys

    pexpect = pytest.importorskip("pexpect")
    from cc_gateway.core.files import load_yaml

    child = pexpect.spawn(sys.executable, ["-m", "cc_gateway", "init", "--preset", "multi-provider", "--port", "4711",
                                           "--dir", str(tmp_path / "gw")], encoding="utf-8", timeout=30,
                          dimensions=(40, 250))  # fmt: skip
    asked: set[str] = set()
    for _ in range(30):  # Enter skips each key question (prompts are redrawn: answer each once), then the rules one
        seen = child.expect([r"Routing rules \(subagent -> glm-fast; background -> glm-fast; long_context -> kimi above "
                             r"160,000 tokens\)\?", r"([A-Z_]+) \([^\n]*Enter to skip", r"(Team gateway)"])  # fmt: skip
        if seen == 0:
            break
        if child.match.group(1) not in asked:
            asked.add(child.match.group(1))
            child.send("\r")
    child.send(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    rules = load_yaml(tmp_path / "gw" / "config.yaml").get("routing_rules")
    assert (rules is not None) == (answer == "y")


def test_the_refusal_suggests_a_model_id_when_only_a_wildcard_route_takes_images():
    table = RouteTable([route("glm", "zai"), route("claude-*", "anthropic", "anthropic/claude-*")], catalogue=CATALOGUE)
    decision = evaluate((), RequestView({"model": "glm", "messages": [IMAGE_MESSAGE]}), table)
    assert "(routes that take images: claude-*); add '- image: <a model id matching claude-*>'" in decision.refusal
