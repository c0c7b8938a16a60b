"""Errors a client can act on: per failure, a status whose Claude Code message is true, the cause named
(route, variable or URL, `cc-gateway doctor`), and `x-should-retry: false` where a retry can't help.

Real `cc-gateway serve` (openai-backed preset plus an Anthropic-format route, a dead route and a route
whose key variable is unset), the fake upstream scripted with faults, both API formats.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from conftest import Gateway, free_port, init_gateway, start_gateway
from fakeupstream import FakeUpstream, Fault

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-provider-" + "Wr7Kp2Zs" * 4
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    folder = tmp_path_factory.mktemp("errors")
    init_gateway(
        folder, "openai-backed", "--api-base", f"openai={upstream.url}/v1", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}"
    )
    path = folder / "config.yaml"
    config = yaml.safe_load(path.read_text())
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config["model_list"] += [
        {
            "model_name": "anth",
            "litellm_params": {
                "model": "anthropic/anth-model",
                "api_key": "os.environ/OPENAI_API_KEY",
                "api_base": upstream.url,
            },
            "model_info": {"max_input_tokens": 200000},
        },
        {
            "model_name": "dead",
            "litellm_params": {"model": "openai/dead-model", "api_key": "os.environ/OPENAI_API_KEY", "api_base": dead},
        },
        {
            "model_name": "keyless",
            "litellm_params": {"model": "openai/k", "api_key": "os.environ/UNSET_KEY_13", "api_base": upstream.url},
        },
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    gateway = start_gateway(folder)
    gateway.dead = dead  # type: ignore[attr-defined]
    yield gateway
    gateway.stop()


@pytest.fixture
def up(gw: Gateway, fresh_upstream: FakeUpstream) -> FakeUpstream:
    return fresh_upstream


def ask(gw: Gateway, model: str, fmt: str = "anthropic") -> httpx.Response:
    if fmt == "anthropic":
        body = {"model": model, "max_tokens": 64, "messages": USER}
        return httpx.post(f"{gw.url}/v1/messages", json=body, headers=gw.headers(), timeout=60)
    body = {"model": model, "messages": USER}
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=gw.headers(), timeout=60)


def message_of(response: httpx.Response, fmt: str) -> str:
    data = response.json()
    if fmt == "anthropic":
        assert data["type"] == "error", data
    return data["error"]["message"]


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_upstream_key_is_424_naming_route_and_variable_no_retry(
    gw: Gateway, up: FakeUpstream, fmt: str, status: int
) -> None:
    up.script(Fault(status, "Incorrect API key provided"), times=None)
    response = ask(gw, "claude-sonnet-5-5", fmt)
    assert response.status_code == 424, response.text
    assert response.headers.get("x-should-retry") == "false"
    text = message_of(response, fmt)
    assert "OPENAI_API_KEY" in text and "claude-sonnet-*" in text and "cc-gateway doctor" in text, text
    assert "Incorrect API key provided" in text
    assert PROVIDER_KEY not in response.text


def test_an_anthropic_format_upstream_refusing_the_key_is_424_too(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(401, "invalid x-api-key"), times=None)
    response = ask(gw, "anth")
    assert response.status_code == 424, response.text
    assert response.headers.get("x-should-retry") == "false"
    assert "'anth'" in message_of(response, "anthropic")


def test_a_model_unknown_upstream_is_424_no_retry(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(404, "The model `gpt-5` does not exist"), times=None)
    response = ask(gw, "claude-opus-5-5")
    assert response.status_code == 424, response.text
    assert response.headers.get("x-should-retry") == "false"
    assert "does not exist" in message_of(response, "anthropic")


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
def test_nothing_listening_at_api_base_is_502_naming_the_url_no_retry(gw: Gateway, fmt: str) -> None:
    response = ask(gw, "dead", fmt)
    assert response.status_code == 502, response.text
    assert response.headers.get("x-should-retry") == "false"
    text = message_of(response, fmt)
    assert gw.dead in text and "cc-gateway doctor" in text, text  # type: ignore[attr-defined]


def test_an_unset_key_variable_is_424_naming_it_and_nothing_goes_upstream(gw: Gateway, up: FakeUpstream) -> None:
    response = ask(gw, "keyless")
    assert response.status_code == 424, response.text
    assert response.headers.get("x-should-retry") == "false"
    assert "UNSET_KEY_13" in message_of(response, "anthropic")
    assert not [r for r in up.requests if r.api in ("chat", "messages", "responses")]


def test_an_upstream_invalid_request_is_400_no_retry(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(400, "messages.0.content: bad block"), times=None)
    response = ask(gw, "claude-sonnet-5-5")
    assert response.status_code == 400, response.text
    assert response.headers.get("x-should-retry") == "false"
    assert "bad block" in message_of(response, "anthropic")


@pytest.mark.parametrize(
    ("model", "upstream_text"),
    [
        ("claude-sonnet-5-5", "This model's maximum context length is 128000 tokens. However, your messages "
                              "resulted in 150000 tokens. Please reduce the length of the messages."),
        ("anth", "prompt is too long: 150000 tokens > 128000 maximum"),
    ],
)
def test_a_context_overflow_reads_as_anthropics_prompt_is_too_long(
    gw: Gateway, up: FakeUpstream, model: str, upstream_text: str
) -> None:
    up.script(Fault(400, upstream_text), times=None)
    response = ask(gw, model)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("prompt is too long: 150000 tokens > 128000 maximum"), error


@pytest.mark.parametrize("status", [429, 503, 529])
def test_transient_failures_keep_the_clients_retries(gw: Gateway, up: FakeUpstream, status: int) -> None:
    up.script(Fault(status, "busy", headers={"Retry-After": "1"}), times=None)
    response = ask(gw, "anth")
    assert response.status_code >= 429, response.text
    assert response.status_code not in (424, 400)
    assert "x-should-retry" not in response.headers


def test_gateway_key_errors_stay_401(gw: Gateway, up: FakeUpstream, tmp_path: Path) -> None:
    body = {"model": "anth", "max_tokens": 64, "messages": USER}
    response = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
    assert response.status_code == 401
