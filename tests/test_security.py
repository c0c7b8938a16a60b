"""Security: secrets canaries and hardening defaults against a real `cc-gateway serve` (issue 9).

The module's gateway is the multi-provider preset (four providers, a Claude credential pool of
OAuth tokens and an API key, static tokens, a master key), every secret a recognisable canary,
logging at --log-level debug, with one fake upstream per provider. Every response body and header
the clients get, every line the gateway prints and every request each upstream receives is
searched for every canary; each upstream may see its own credential and nothing else.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, cli_env, free_port, init_gateway, run_cli, start_gateway
from fakeupstream import FakeUpstream, Fault, Received

pytestmark = pytest.mark.e2e

TAG = "C4N4RY"
MASTER = f"sk-{TAG}-master-0123456789abcdefghijkl"
STATIC = f"static-{TAG}-token-0123456789abcdef"
POOL = [f"sk-ant-oat01-{TAG}-poolA-0123456789abcdefghij", f"sk-ant-api03-{TAG}-poolB-0123456789abcdefghij"]
CLIENT_OAUTH = f"sk-ant-oat01-{TAG}-client-0123456789abcdefgh"
PROVIDER_KEYS = {
    "zai": ("ZAI_API_KEY", f"zai-{TAG}-key-0123456789abcdefgh"),
    "kimi": ("KIMI_API_KEY", f"sk-kimi-{TAG}-0123456789abcdefgh"),
    "openrouter": ("OPENROUTER_API_KEY", f"sk-or-{TAG}-0123456789abcdefghij"),
}
PROVIDERS = ("anthropic", "zai", "kimi", "openrouter")
MODELS = {
    "zai": ["glm", "glm-fast"],
    "kimi": ["kimi"],
    "openrouter": ["openrouter"],
    "anthropic": ["claude-sonnet-4-5"],
}
USER = [{"role": "user", "content": "hi"}]
ALL_SECRETS = [MASTER, STATIC, *POOL, CLIENT_OAUTH, *(value for _, value in PROVIDER_KEYS.values())]


def own_secrets(provider: str) -> set[str]:
    """The credentials a provider's upstream may legitimately receive."""
    if provider == "anthropic":
        return {*POOL, CLIENT_OAUTH}  # the pool (rotate) or the client's own token (passthrough)
    return {PROVIDER_KEYS[provider][1]}


@pytest.fixture(scope="module")
def ups():
    """One fake upstream per provider."""
    started = {name: FakeUpstream().start() for name in PROVIDERS}
    yield started
    for upstream in started.values():
        upstream.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict) -> Gateway:
    """The multi-provider gateway with canary secrets, at --log-level debug."""
    folder = tmp_path_factory.mktemp("security")
    bases = {"zai": ups["zai"].url, "kimi": ups["kimi"].url, "openrouter": f"{ups['openrouter'].url}/v1"}
    bases["anthropic"] = ups["anthropic"].url
    flags = [flag for name, url in bases.items() for flag in ("--api-base", f"{name}={url}")]
    keys = [f"{var}={value}" for var, value in PROVIDER_KEYS.values()]
    keys += [f"PROXY_STATIC_TOKEN={STATIC}", f"CLAUDE_OAUTH_TOKENS={','.join(POOL)}"]
    init_gateway(folder, "multi-provider", *flags, *(flag for key in keys for flag in ("--key", key)))
    env_file = folder / ".env"
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("LITELLM_MASTER_KEY=")]
    env_file.write_text("\n".join([*lines, f"LITELLM_MASTER_KEY={MASTER}"]) + "\n")
    gateway = start_gateway(folder, "--log-level", "debug", env=cli_env(folder))
    yield gateway
    gateway.stop()


@pytest.fixture
def fresh(gw: Gateway, ups: dict) -> dict:
    """Every upstream reset for this test."""
    for upstream in ups.values():
        upstream.reset()
    return ups


def everything(received: Received) -> str:
    """A request as one searchable string: path, query, headers and body."""
    return (
        received.path
        + json.dumps(received.query)
        + json.dumps(received.headers)
        + received.body.decode(errors="replace")
    )


def call(gw: Gateway, model: str, path: str = "/v1/messages", headers: dict | None = None, **extra) -> httpx.Response:
    """A request as Claude Code sends it: static token in x-litellm-api-key, its own OAuth token as Bearer."""
    sent = {"x-litellm-api-key": STATIC, "authorization": f"Bearer {CLIENT_OAUTH}", **(headers or {})}
    body = {"model": model, "max_tokens": 64, "messages": USER, **extra}
    return httpx.post(gw.url + path, json=body, headers=sent, timeout=60)


def visible(response: httpx.Response) -> str:
    """What a client sees of a response: status line, headers and body."""
    return f"{response.status_code} {json.dumps(dict(response.headers))} {response.text}"


def assert_no_leak(gw: Gateway, ups: dict, responses: list[httpx.Response]) -> None:
    """No canary in any response, in the log, or at an upstream it does not belong to."""
    for response in responses:
        shown = visible(response)
        leaked = [s for s in ALL_SECRETS if s in shown]
        assert not leaked, f"{leaked} in a response: {shown[:500]}"
    log = gw.log()
    assert "DEBUG" in log
    assert not [s for s in ALL_SECRETS if s in log], "a secret is in the gateway's output"
    assert TAG not in log, [line for line in log.splitlines() if TAG in line][:3]
    for name, upstream in ups.items():
        for received in upstream.requests:
            foreign = [s for s in ALL_SECRETS if s in everything(received) and s not in own_secrets(name)]
            assert not foreign, f"{foreign} reached the {name} upstream ({received.path})"


# --------------------------------------------------------------------------- secrets


def test_secrets_stay_out_of_logs_bodies_and_other_upstreams_on_success(gw: Gateway, fresh: dict) -> None:
    responses = []
    for models in MODELS.values():
        for model in models:
            for stream in (False, True):
                responses.append(call(gw, model, stream=stream))
    responses.append(call(gw, "glm", "/v1/chat/completions"))
    responses.append(call(gw, "claude-sonnet-4-5", headers={"x-claude-token-mode": "passthrough"}))
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses if r.is_error]
    for provider in ("zai", "kimi", "openrouter"):
        assert fresh[provider].requests, f"nothing reached {provider}"
        assert all(PROVIDER_KEYS[provider][1] in everything(r) for r in fresh[provider].requests)
    assert_no_leak(gw, fresh, responses)


def test_refused_keys_are_not_echoed_or_logged(gw: Gateway, fresh: dict) -> None:
    near_misses = [MASTER + "x", MASTER[:-1], STATIC + "x", f"Bearer {STATIC}x"]
    responses = []
    for wrong in near_misses:
        for header in ("authorization", "x-api-key", "x-litellm-api-key"):
            response = httpx.post(
                gw.url + "/v1/messages", json={"model": "glm", "max_tokens": 5, "messages": USER},
                headers={header: wrong}, timeout=30,
            )  # fmt: skip
            assert response.status_code == 401
            responses.append(response)
    assert all(not u.requests for u in fresh.values())
    assert_no_leak(gw, fresh, responses)


def test_bad_input_errors_carry_no_secret(gw: Gateway, fresh: dict) -> None:
    headers = {"x-litellm-api-key": STATIC, "content-type": "application/json"}
    responses = [
        httpx.post(gw.url + "/v1/messages", content=b'{"model": "glm", ', headers=headers, timeout=30),
        call(gw, "no-such-model"),
        call(gw, "glm", max_tokens=2**40),
        httpx.get(gw.url + "/model/info", headers={"x-litellm-api-key": STATIC}, timeout=30),
        httpx.get(gw.url + "/config/yaml", headers={"authorization": f"Bearer {MASTER}"}, timeout=30),
    ]
    assert [r.status_code for r in responses[:4]] == [400, 400, 400, 403]
    assert_no_leak(gw, fresh, responses)


# --------------------------------------------------------------------------- hardening: exposure


ADMIN = [  # LiteLLM routes cc-gateway does not use: UI, SSO, MCP, prompts, guardrails, management, config
    ("GET", "/ui/"),
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("GET", "/sso/key/generate"),
    ("POST", "/login"),
    ("GET", "/mcp/"),
    ("GET", "/v1/mcp/server"),
    ("GET", "/mcp-rest/tools/list"),
    ("GET", "/prompts/list"),
    ("POST", "/prompts/test"),
    ("GET", "/guardrails/list"),
    ("POST", "/guardrails/apply_guardrail"),
    ("POST", "/key/generate"),
    ("GET", "/key/list"),
    ("POST", "/user/new"),
    ("POST", "/team/new"),
    ("POST", "/config/update"),
    ("GET", "/config/yaml"),
    ("GET", "/model/info"),
    ("POST", "/model/new"),
    ("GET", "/routes"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/global/spend"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN, ids=[p for _, p in ADMIN])
def test_admin_and_unused_routes_need_the_master_key(gw: Gateway, fresh: dict, method: str, path: str) -> None:
    def ask(headers: dict) -> httpx.Response:
        return httpx.request(method, gw.url + path, headers=headers, json={} if method == "POST" else None, timeout=30)

    anonymous = ask({})
    assert anonymous.status_code == 401, anonymous.text
    assert "master key" in anonymous.json()["error"]["message"]
    static = ask({"x-litellm-api-key": STATIC})
    assert static.status_code == 403, static.text
    assert static.json()["error"]["type"] == "permission_error"
    wrong = ask({"authorization": f"Bearer {MASTER}x"})
    assert wrong.status_code == 401
    if path not in ("/health", "/openapi.json", "/mcp/"):  # every upstream called / slow / a long-lived stream
        admin = ask({"authorization": f"Bearer {MASTER}"})
        assert "master key" not in admin.text, admin.text  # passed on: LiteLLM's own answer for the master key
    assert all(not u.requests for u in fresh.values())


def test_health_and_llm_routes_stay_open_to_their_callers(gw: Gateway, fresh: dict) -> None:
    for path in ("/health/liveliness", "/health/readiness"):
        assert httpx.get(gw.url + path, timeout=30).status_code == 200
    models = httpx.get(gw.url + "/v1/models", headers={"x-litellm-api-key": STATIC}, timeout=30)
    assert models.status_code == 200 and models.json()["data"]
    counted = httpx.post(
        gw.url + "/v1/messages/count_tokens", json={"model": "glm", "messages": USER},
        headers={"x-litellm-api-key": STATIC}, timeout=30,
    )  # fmt: skip
    assert counted.status_code == 200, counted.text
    assert call(gw, "glm").status_code == 200


def test_binds_loopback_only(gw: Gateway) -> None:
    listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    ours = [fields[1] for fields in listening if fields[3] == "0A" and fields[1].endswith(f":{gw.port:04X}")]
    assert ours == [f"0100007F:{gw.port:04X}"]
    six = Path("/proc/net/tcp6")
    if six.exists():
        assert not [line for line in six.read_text().splitlines()[1:] if f":{gw.port:04X} " in line.split("0A")[0]]


# --------------------------------------------------------------------------- hardening: files


SECRET_FIELD = r"(?m)^\s*(api_key|master_key|[a-z_]*_token|[a-z_]*secret[a-z_]*|[a-z_]*credentials):\s*(\S+)"
PRESET_KEYS = {
    "demo": [],
    "anthropic": [f"ANTHROPIC_API_KEY=sk-ant-api03-{TAG}-0123456789abcdef"],
    "openai-backed": [f"OPENAI_API_KEY=sk-proj-{TAG}-0123456789abcdef"],
    "multi-provider": [*(f"{var}={value}" for var, value in PROVIDER_KEYS.values()), f"CLAUDE_OAUTH_TOKENS={POOL[0]}"],
    "oauth-bridge": [f"CLAUDE_CODE_OAUTH_TOKEN={CLIENT_OAUTH}"],
}


@pytest.mark.parametrize("preset", PRESET_KEYS)
def test_every_preset_keeps_keys_in_a_0600_env_and_never_in_config(tmp_path: Path, preset: str) -> None:
    folder = tmp_path / preset
    init_gateway(folder, preset, *(flag for key in PRESET_KEYS[preset] for flag in ("--key", key)))
    env_file = folder / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    master = next(
        line.split("=", 1)[1] for line in env_file.read_text().splitlines() if line.startswith("LITELLM_MASTER_KEY=")
    )
    assert re.fullmatch(r"sk-[A-Za-z0-9_\-]{32,}", master)
    for key in PRESET_KEYS[preset]:
        assert key.split("=", 1)[1] in env_file.read_text()
    for generated in folder.iterdir():
        if generated.name == ".env" or not generated.is_file():
            continue
        if generated.suffix == ".whl":  # the image's wheel: every member, uncompressed
            with zipfile.ZipFile(generated) as wheel:
                data = b"".join(wheel.read(name) for name in wheel.namelist())
        else:
            data = generated.read_bytes()
        assert TAG.encode() not in data and master.encode() not in data, generated.name
    config = folder / "config.yaml"
    fields = re.findall(SECRET_FIELD, config.read_text())
    assert fields and all(v.startswith("os.environ/") or v == "demo-no-key-needed" for _, v in fields), fields
    assert "127.0.0.1" in (folder / "docker-compose.yml").read_text()  # the published port is loopback too


def test_serve_refuses_to_open_up_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    folder = init_gateway(tmp_path / "open", "demo")
    env_file = folder / ".env"
    env_file.write_text("".join(line + "\n" for line in env_file.read_text().splitlines() if "MASTER_KEY" not in line))
    result = run_cli("serve", "--dir", str(folder), "--host", "0.0.0.0", "--port", str(free_port()), timeout=60)
    assert result.returncode == 1
    assert "LITELLM_MASTER_KEY" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- last: upstream 401s rest the routes


def echo_credentials(status: int):
    """An upstream error that quotes back every credential header it received (some providers do)."""

    def fault(received: Received) -> Fault:
        quoted = {k: v for k, v in received.headers.items() if k in ("authorization", "x-api-key")}
        return Fault(status, f"rejected credentials {json.dumps(quoted)}")

    return fault


@pytest.mark.parametrize("status", [401, 500])
def test_an_upstream_error_quoting_the_key_does_not_reach_the_client(gw: Gateway, fresh: dict, status: int) -> None:
    for upstream in fresh.values():
        upstream.script(echo_credentials(status), times=None)
    responses = []
    for models in MODELS.values():
        responses.append(call(gw, models[0]))
        responses.append(call(gw, models[0], "/v1/chat/completions"))
        responses.append(call(gw, models[0], stream=True))
    assert all(r.status_code >= 400 or "error" in r.text for r in responses)
    assert_no_leak(gw, fresh, responses)
