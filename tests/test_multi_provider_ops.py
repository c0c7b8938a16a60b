"""The multi-provider preset, operations side: replicas on Redis, start-up checks, auth without a master key.

Split from test_multi_provider.py to keep each file's run short; the helpers live there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import cli_env, free_port, run_cli
from fakeupstream import Fault
from test_multi_provider import POOL, STATIC, THIRD_PARTY_KEYS, USER, ask, by_credential, render, reset_all, upstreams
from test_pool import redis_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ups():
    """One fake upstream per provider."""
    with upstreams() as started:
        yield started


@pytest.fixture
def fresh(ups):
    """Reset every upstream's scripts and request log."""
    return reset_all(ups)


# --------------------------------------------------------------------------- bad input (no proxy start)


def serve_fails(folder: Path, **env: str) -> str:
    result = run_cli("serve", "--dir", str(folder), "--port", str(free_port()), env=cli_env(folder, **env), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def plain(tmp_path_factory, ups):
    return render(tmp_path_factory.mktemp("plain"), ups, *THIRD_PARTY_KEYS, f"PROXY_STATIC_TOKEN={STATIC[0]}")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CLAUDE_OAUTH_TOKENS": " , ,"}, "CLAUDE_OAUTH_TOKENS holds no credential"),
        ({"CLAUDE_OAUTH_TOKENS": f"{POOL[1]},,{POOL[2]}"}, "CLAUDE_OAUTH_TOKENS: entry 2 is empty"),
        ({"CLAUDE_OAUTH_TOKENS": "sk-ant-oat01 has spaces in it"}, "CLAUDE_OAUTH_TOKENS: entry 1"),
        ({"CLAUDE_TOKEN_MODE": "borrow"}, "CLAUDE_TOKEN_MODE='borrow' is not a token mode"),
        ({"CLAUDE_POOL_COOLDOWN_SECONDS": "soon"}, "CLAUDE_POOL_COOLDOWN_SECONDS"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL"),
    ],
)
def test_bad_pool_settings_stop_serve_with_one_clear_line(plain, env, needle):
    stderr = serve_fails(plain, **env)
    assert needle in " ".join(stderr.split())
    assert "has spaces" not in stderr


def test_unreachable_redis_is_named(plain):
    port = free_port()
    stderr = " ".join(serve_fails(plain, REDIS_URL=f"redis://127.0.0.1:{port}/0").split())
    assert f"REDIS_URL=redis://127.0.0.1:{port}/0: cannot reach Redis" in stderr


def test_open_gateway_refuses_non_loopback_without_allow_open(tmp_path, ups):
    folder = render(tmp_path / "open", ups, *THIRD_PARTY_KEYS)
    env_file = folder / ".env"
    text = re.sub(r"(?m)^LITELLM_MASTER_KEY=.*$", "LITELLM_MASTER_KEY=", env_file.read_text())
    env_file.write_text(text.replace("# PROXY_STATIC_TOKEN=", "PROXY_STATIC_TOKEN="))
    result = run_cli("serve", "--dir", str(folder), "--host", "0.0.0.0", "--port", str(free_port()),
                     env=cli_env(folder))  # fmt: skip
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_prints_the_compliance_notice(tmp_path):
    result = run_cli("init", "--preset", "multi-provider", "--dir", str(tmp_path / "gw"), "--yes",
                     "--port", str(free_port()), "--key", f"CLAUDE_OAUTH_TOKENS={POOL[0]}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    notice = " ".join(result.stderr.split())
    assert "Anthropic's terms reserve subscription (Pro/Max) OAuth tokens" in notice
    assert "prefer passthrough" in notice
    assert POOL[0] not in result.stderr + result.stdout


@pytest.mark.parametrize("tokens", ["", STATIC[1]])
def test_without_a_master_key_static_tokens_or_open_mode_still_serve(tmp_path, ups, fresh, gateway_factory, tokens):
    folder = render(tmp_path / "nokey", ups, *THIRD_PARTY_KEYS)
    env_file = folder / ".env"
    text = re.sub(r"(?m)^LITELLM_MASTER_KEY=.*$", "LITELLM_MASTER_KEY=", env_file.read_text())
    env_file.write_text(text.replace("# PROXY_STATIC_TOKEN=", f"PROXY_STATIC_TOKEN={tokens}"))
    gateway = gateway_factory(folder, env=cli_env(folder))
    body = {"model": "glm", "max_tokens": 16, "messages": USER}
    anonymous = httpx.post(f"{gateway.url}/v1/messages", json=body, timeout=60)
    with_token = httpx.post(
        f"{gateway.url}/v1/messages", json=body, headers={"x-litellm-api-key": STATIC[1]}, timeout=60
    )
    assert with_token.status_code == 200, with_token.text
    if tokens:
        assert anonymous.status_code == 401
        assert "OPEN" not in gateway.log()
    else:
        assert anonymous.status_code == 200
        assert "the gateway is OPEN to anyone" in " ".join(gateway.log().split())


def test_compose_renders_redis_and_two_replicas(plain):
    text = (plain / "docker-compose.yml").read_text()
    assert "replicas: 2" in text and "redis:7-alpine" in text and "REDIS_URL: redis://redis:6379/0" in text
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    result = subprocess.run([*command, "config", "--quiet"], cwd=plain, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def compose_command() -> list[str] | None:
    """`docker compose` (v2) or docker-compose (v1), whichever works here."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


# --------------------------------------------------------------------------- shared state across replicas


@pytest.fixture
def redis_url(tmp_path):
    """A private redis-server on a free port, without persistence."""
    with redis_server(tmp_path) as url:
        yield url


@pytest.mark.redis
def test_two_replicas_share_rests_and_router_state_through_redis(tmp_path, ups, fresh, redis_url, gateway_factory):
    import redis

    folder = render(
        tmp_path / "replicas", ups, *THIRD_PARTY_KEYS, f"PROXY_STATIC_TOKEN={STATIC[0]}",
        f"CLAUDE_OAUTH_TOKENS={','.join(POOL)}", f"REDIS_URL={redis_url}",
    )  # fmt: skip
    first, second = gateway_factory(folder, env=cli_env(folder)), gateway_factory(folder, env=cli_env(folder))
    respond, seen = by_credential({POOL[1]: Fault(429, "slow down", headers={"retry-after": "30"})})
    fresh["anthropic"].script(respond, times=None)
    for _ in range(3):
        assert ask(first, "claude-sonnet-4-5").status_code == 200
    assert [c for _, c in seen].count(POOL[1]) == 1
    for _ in range(6):
        assert ask(second, "claude-sonnet-4-5").status_code == 200
    assert [c for _, c in seen].count(POOL[1]) == 1, "the second replica never used the credential the first rested"
    assert {c for _, c in seen[3:]} == {POOL[0], POOL[2]}
    keys = {k.decode() for k in redis.Redis.from_url(redis_url).keys("*")}
    assert any(k.startswith("cc-gateway:pool:rest:") for k in keys)
    assert any(not k.startswith("cc-gateway:") for k in keys), f"LiteLLM's router keeps state there too: {keys}"
    assert POOL[1] not in " ".join(keys)
