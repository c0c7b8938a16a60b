"""Reliability: upstream faults, bad input and load against a real `cc-gateway serve` (issue 9).

One gateway (openai-backed, in front of the session's fake upstream) serves the module. Its
rendered config.yaml gets extra routes, each owned by one test so cooldowns never leak between
tests: `pair` and `duo` (two deployments each), `dead` (a closed port) with a fallback, `doomed`
(always 500) with a failing fallback, `lone` (one deployment), and `slow` (a 3 s timeout).
Every fault test counts what the fake upstream received.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml
from conftest import ROOT, Gateway, free_port, init_gateway, start_gateway, wait_until
from fakeupstream import FakeUpstream, Fault, Hang, Reply

sys.path.insert(0, str(ROOT / "bench"))
import load

PROVIDER_KEY = "sk-provider-" + "Rl7Kp2Wq" * 4
NUM_RETRIES = 1
SLOW_TIMEOUT = 3  # seconds: litellm_params.timeout / stream_timeout of the `slow` route
USER = [{"role": "user", "content": "hi"}]

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    return free_port()


def deployment(name: str, model: str, base: str, **params: object) -> dict:
    """One model_list entry for an OpenAI-compatible deployment."""
    litellm_params = {"model": f"openai/{model}", "api_key": "os.environ/OPENAI_API_KEY", "api_base": base, **params}
    return {
        "model_name": name,
        "litellm_params": litellm_params,
        "model_info": {"supports_reasoning": False, "max_output_tokens": 32000},
    }


def resting(entry: dict) -> dict:
    """A deployment that rests after one 429 (for the Retry-After, or cooldown_time without one)."""
    entry["model_info"]["allowed_fails_policy"] = {"RateLimitErrorAllowedFails": 0}
    return entry


def add_fault_routes(folder: Path, base: str, paced: str) -> None:
    """Add the fault routes and their fallbacks to the rendered config.yaml."""
    path = folder / "config.yaml"
    config = yaml.safe_load(path.read_text())
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    config["model_list"] += [
        *(resting(deployment(group, f"{group}-{x}", base)) for group in ("pair", "duo") for x in "ab"),
        deployment("dead", "dead-model", dead),
        deployment("alive", "alive-model", base),
        deployment("doomed", "doomed-model", base),
        deployment("doomed-too", "doomed-too-model", base),
        deployment("lone", "lone-model", base),
        deployment("slow", "slow-model", base, timeout=SLOW_TIMEOUT, stream_timeout=SLOW_TIMEOUT),
        {
            "model_name": "direct",  # Anthropic's API upstream: LiteLLM passes its stream through
            "litellm_params": {
                "model": "anthropic/direct-model",
                "api_key": "os.environ/OPENAI_API_KEY",
                "api_base": "os.environ/OPENAI_API_BASE",
                "timeout": SLOW_TIMEOUT,
                "stream_timeout": SLOW_TIMEOUT,
            },
        },
        {
            "model_name": "paced",  # the load check's own fake upstream process (64 chunks, 20 ms apart)
            "litellm_params": {
                "model": "anthropic/direct-model",
                "api_key": "os.environ/OPENAI_API_KEY",
                "api_base": paced,
            },
        },
    ]
    router = config["router_settings"]
    router["fallbacks"] = [{"dead": ["alive"]}, {"doomed": ["doomed-too"]}]
    # The preset turns cooldowns off because each of its routes has one deployment; routes with two
    # deployments want them on, and a 429 retried on the other deployment.
    router.pop("disable_cooldowns", None)
    router["model_group_retry_policy"] = {"pair": {"RateLimitErrorRetries": 1}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, paced_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    """The module's gateway: openai-backed plus the fault routes."""
    folder = tmp_path_factory.mktemp("reliability")
    init_gateway(
        folder, "openai-backed", "--api-base", f"openai={upstream.url}/v1", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}"
    )
    add_fault_routes(folder, "os.environ/OPENAI_API_BASE", paced_upstream)
    gateway = start_gateway(folder)
    yield gateway
    gateway.stop()


@pytest.fixture
def up(gw: Gateway, fresh_upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream, reset for this test (after the module's gateway is up)."""
    return fresh_upstream


def post(
    gw: Gateway, path: str, body: dict | bytes, headers: dict | None = None, timeout: float = 60
) -> httpx.Response:
    """POST JSON (or raw bytes) to the gateway with the master key unless headers are given."""
    headers = gw.headers() if headers is None else headers
    if isinstance(body, bytes):
        return httpx.post(gw.url + path, content=body, headers=headers, timeout=timeout)
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=timeout)


def messages(model: str = "sonnet", **extra: object) -> dict:
    """A minimal /v1/messages body."""
    return {"model": model, "max_tokens": 256, "messages": USER, **extra}


def chat(model: str = "sonnet", **extra: object) -> dict:
    """A minimal /v1/chat/completions body."""
    return {"model": model, "messages": USER, **extra}


def sent_models(up: FakeUpstream) -> list[str]:
    """The upstream model of every generation request the fake received, in order."""
    return [r.model for r in up.requests if r.api in ("chat", "responses", "messages")]


def sse_payloads(text: str) -> list[object]:
    """The data payloads of an SSE body (JSON decoded where it is JSON)."""
    out: list[object] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            try:
                out.append(json.loads(data))
            except ValueError:
                out.append(data)
    return out


def assert_serving(gw: Gateway) -> None:
    """A good request right after works: the gateway keeps serving."""
    response = post(gw, "/v1/messages", messages())
    assert response.status_code == 200, response.text


# --------------------------------------------------------------------------- faults


def test_one_500_is_retried_once_then_200(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(500, "once"), model="lone-model")
    response = post(gw, "/v1/messages", messages("lone"))
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "fake reply from lone-model via chat"
    assert sent_models(up) == ["lone-model"] * (1 + NUM_RETRIES)


def test_a_429_rests_that_deployment_for_retry_after_while_the_other_serves(gw: Gateway, up: FakeUpstream) -> None:
    rest = 4
    up.script(Fault(429, "slow down", headers={"Retry-After": str(rest)}), model="pair-a", times=None)
    for _ in range(20):  # the router picks at random: ask until pair-a has answered a 429
        assert post(gw, "/v1/messages", messages("pair")).status_code == 200  # retried on pair-b
        if "pair-a" in sent_models(up):
            break
    rested_at = time.monotonic()
    assert sent_models(up)[-2:] == ["pair-a", "pair-b"]
    time.sleep(0.5)  # the cooldown is recorded by an async failure callback
    served = []
    before = len(sent_models(up))
    while time.monotonic() < rested_at + rest - 1:  # pair-a still answers 429 if asked: nobody sees it
        response = post(gw, "/v1/messages", messages("pair"))
        assert response.status_code == 200, response.text
        served.append(response.json()["content"][0]["text"])
    during = sent_models(up)[before:]
    assert len(served) >= 3 and set(served) == {"fake reply from pair-b via chat"}
    assert during.count("pair-a") * 2 < len(during), during  # resting: mostly left alone
    up.reset()  # pair-a recovers
    time.sleep(max(0.0, rested_at + rest + 1 - time.monotonic()))
    for _ in range(20):
        assert post(gw, "/v1/messages", messages("pair")).status_code == 200
        if "pair-a" in sent_models(up):
            break
    assert "pair-a" in sent_models(up), "pair-a never served again after its rest"


def test_every_deployment_resting_answers_429_with_retry_after_within_1s(gw: Gateway, up: FakeUpstream) -> None:
    for name in ("duo-a", "duo-b"):
        up.script(Fault(429, "slow down", headers={"Retry-After": "20"}), model=name, times=None)
    for _ in range(2):  # each deployment answers one 429 (a 429 is not retried: the client retries it)
        assert post(gw, "/v1/messages", messages("duo")).status_code == 429
    time.sleep(0.5)
    timings = []
    for path, body in [("/v1/messages", messages("duo")), ("/v1/chat/completions", chat("duo"))] * 2:
        before, started = len(sent_models(up)), time.monotonic()
        response = post(gw, path, body)
        timings.append(time.monotonic() - started)
        assert response.status_code == 429, response.text
        assert 1 <= int(response.headers["retry-after"]) <= 20
        error = response.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert len(sent_models(up)) - before <= 1 + NUM_RETRIES
    assert sorted(timings)[len(timings) // 2] < 1.0, timings  # median; each bound below allows for load
    assert max(timings) < 2.5, timings
    assert_serving(gw)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_upstream_that_never_sends_headers_is_an_error_within_the_timeout(
    gw: Gateway, up: FakeUpstream, stream: bool
) -> None:
    up.script(Hang(SLOW_TIMEOUT * 10), times=None)
    started = time.monotonic()
    response = post(gw, "/v1/messages", messages("slow", stream=stream))
    elapsed = time.monotonic() - started
    assert response.status_code in (408, 504), response.text
    assert response.json()["type"] == "error"
    assert "timed out" in response.text.lower() or "timeout" in response.text.lower()
    assert sent_models(up) == ["slow-model"]  # a timeout is not retried (router_settings.retry_policy)
    assert elapsed < SLOW_TIMEOUT + 1.5, elapsed


CUTS = {
    "reset": {"mid_stream": "reset"},
    "stall": {"mid_stream": "stall", "stall": SLOW_TIMEOUT * 10},
    "malformed": {"mid_stream": "malformed"},
}


@pytest.mark.parametrize("route", ["slow", "direct"], ids=["openai-upstream", "anthropic-upstream"])
@pytest.mark.parametrize("cut", CUTS)
def test_a_stream_broken_after_the_first_byte_ends_in_an_error_event(
    gw: Gateway, up: FakeUpstream, cut: str, route: str
) -> None:
    up.script(Reply(text="one two three four five six", chunks=6, **CUTS[cut]), times=None)
    started = time.monotonic()
    response = post(gw, "/v1/messages", messages(route, stream=True))
    assert time.monotonic() - started < SLOW_TIMEOUT + 10
    assert response.status_code == 200, response.text
    events = sse_payloads(response.text)
    kinds = [e.get("type") for e in events if isinstance(e, dict)]
    assert "message_stop" not in kinds, response.text
    assert kinds[-1] == "error" and events[-1]["error"]["message"], response.text
    streamed = "".join(e["delta"].get("text", "") for e in events if isinstance(e, dict) and "delta" in e)
    assert "one two three four five six".startswith(streamed), streamed  # never a repeat after a retry
    if cut != "reset":  # a reset can drop what was in flight before it; LiteLLM may then retry
        assert streamed == "one "  # the client saw the stream start, then the error
    assert len(sent_models(up)) <= 1 + NUM_RETRIES, response.text


def test_the_anthropic_sdk_raises_on_malformed_stream_data(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Reply(text="one two three four five six", chunks=6, mid_stream="malformed"), times=None)
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    with pytest.raises(anthropic.APIError), client.messages.stream(**messages("direct")) as stream:
        for _ in stream:
            pass
    assert_serving(gw)


def test_a_closed_upstream_port_falls_back(gw: Gateway, up: FakeUpstream) -> None:
    response = post(gw, "/v1/messages", messages("dead"))
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "fake reply from alive-model via chat"
    assert sent_models(up) == ["alive-model"]
    assert response.headers.get("x-litellm-attempted-fallbacks") == "1"


def test_upstream_attempts_never_exceed_retries_and_fallbacks(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(500, "down"), times=None)
    response = post(gw, "/v1/messages", messages("doomed"))
    assert response.status_code == 500
    assert response.json()["type"] == "error" and "down" in response.json()["error"]["message"]
    fallbacks = 1
    assert len(sent_models(up)) == (1 + NUM_RETRIES) * (1 + fallbacks), sent_models(up)
    assert set(sent_models(up)) == {"doomed-model", "doomed-too-model"}


# --------------------------------------------------------------------------- bad input


def anthropic_client(gw: Gateway, key: str | None = None) -> anthropic.Anthropic:
    """The official Anthropic SDK pointed at the gateway (no retries)."""
    return anthropic.Anthropic(base_url=gw.url, api_key=key or gw.key, max_retries=0)


def openai_client(gw: Gateway, key: str | None = None) -> openai.OpenAI:
    """The official OpenAI SDK pointed at the gateway (no retries)."""
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key or gw.key, max_retries=0)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_malformed_json_is_400_in_the_callers_format(gw: Gateway, up: FakeUpstream, path: str) -> None:
    headers = {**gw.headers(), "content-type": "application/json"}
    response = post(gw, path, b'{"model": "sonnet", "messages": [', headers)
    assert response.status_code == 400, response.text
    body = response.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["type"] == "invalid_request_error"
    assert "json" in response.text.lower()
    assert sent_models(up) == []
    assert_serving(gw)


def test_a_body_over_the_limit_is_413(gw: Gateway, up: FakeUpstream) -> None:
    huge = b'{"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "' + b"x" * (33 << 20)
    with_length = post(gw, "/v1/messages", huge + b'"}]}', {**gw.headers(), "content-type": "application/json"})
    assert with_length.status_code == 413
    assert with_length.json()["error"]["type"] == "request_too_large"
    assert "32 MiB" in with_length.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)]

    streamed = httpx.post(gw.url + "/v1/chat/completions", content=chunked(), headers=gw.headers(), timeout=60)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["message"].startswith("request body is larger")
    assert sent_models(up) == []
    assert_serving(gw)


@pytest.mark.parametrize(
    "key",
    [None, "sk-wrong-key-0000000000000000", "' OR '1'='1'; DROP TABLE keys; --"],
    ids=["no-key", "wrong-key", "sql-injection"],
)
def test_a_missing_wrong_or_injected_key_is_401_and_nothing_goes_upstream(
    gw: Gateway, up: FakeUpstream, key: str | None
) -> None:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    if key is not None:  # the SDKs send it as x-api-key (Anthropic) and Authorization: Bearer (OpenAI)
        with pytest.raises(anthropic.AuthenticationError, match="invalid gateway key"):
            anthropic_client(gw, key).messages.create(**messages())
        with pytest.raises(openai.AuthenticationError, match="invalid gateway key"):
            openai_client(gw, key).chat.completions.create(**chat())
    on_messages = post(gw, "/v1/messages", messages(), headers)
    assert on_messages.status_code == 401
    assert on_messages.json()["error"]["type"] == "authentication_error"
    raw = post(gw, "/v1/chat/completions", chat(), headers)
    assert raw.status_code == 401 and raw.json()["error"]["type"] == "authentication_error"
    assert up.requests == []
    assert_serving(gw)


def test_the_sdks_name_an_unknown_model_and_list_the_routes(gw: Gateway, up: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client(gw).messages.create(**messages("no-such-model"))
    message = str(caught.value)
    assert "no-such-model" in message and "claude-sonnet-5" in message and "sonnet" in message
    with pytest.raises(openai.BadRequestError) as caught_oai:
        openai_client(gw).chat.completions.create(**chat("no-such-model"))
    assert "no-such-model" in str(caught_oai.value) and "claude-haiku-4-5-20251001" in str(caught_oai.value)
    assert sent_models(up) == []
    assert_serving(gw)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_a_wrong_content_type_is_400_naming_it(gw: Gateway, up: FakeUpstream, path: str) -> None:
    body = json.dumps(messages()).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = post(gw, path, body, {**gw.headers(), "content-type": content_type})
        assert response.status_code == 400, response.text
        assert content_type in response.text and "application/json" in response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
    assert sent_models(up) == []
    assert_serving(gw)


def test_an_empty_messages_list_is_400_for_both_sdks(gw: Gateway, up: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError, match="at least one message"):
        anthropic_client(gw).messages.create(model="sonnet", max_tokens=10, messages=[])
    with pytest.raises(openai.BadRequestError, match="at least one message"):
        openai_client(gw).chat.completions.create(model="sonnet", messages=[])
    assert sent_models(up) == []
    assert_serving(gw)


def test_a_huge_max_tokens_is_400_and_a_large_one_is_clamped(gw: Gateway, up: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):  # streamed: the SDK refuses it otherwise
        anthropic_client(gw).messages.create(model="sonnet", max_tokens=2**40, messages=USER, stream=True)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        openai_client(gw).chat.completions.create(model="sonnet", max_tokens=-5, messages=USER)
    assert sent_models(up) == []
    reply = post(gw, "/v1/messages", {**messages(), "max_tokens": 1_000_000})
    assert reply.json()["content"][0]["text"] == "fake reply from gpt-5 via chat"
    assert up.requests[-1].get("max_completion_tokens") == 32000  # the route's max_output_tokens (gpt-5's name)


# --------------------------------------------------------------------------- load (short version of bench/load.py)


@pytest.fixture(scope="module")
def paced_upstream() -> str:
    """tests/fakeupstream.py as its own process, sending 64 chunks 20 ms apart."""
    port = free_port()
    command = [sys.executable, str(ROOT / "tests" / "fakeupstream.py"), "--port", str(port)]
    process = subprocess.Popen([*command, "--chunks", "64", "--chunk-delay-ms", "20"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_20_concurrent_streams_complete_byte_exact_without_added_gaps(gw: Gateway, paced_upstream: str) -> None:
    import asyncio

    body = {"model": "direct-model", "max_tokens": 256, "messages": USER}
    expected = asyncio.run(load.fetch_text(paced_upstream + "/v1/messages", {}, body))
    assert len(expected) == 64 and expected.startswith("fake reply from direct-model")
    warm = asyncio.run(load.fetch_text(gw.url + "/v1/messages", gw.headers(), {**body, "model": "paced"}))
    assert warm == expected  # LiteLLM imports parts of itself on first use: warm that path up first
    report = asyncio.run(
        load.run_streams(
            gw.url + "/v1/messages", gw.headers(), {**body, "model": "paced"}, concurrency=20, seconds=5,
            expected=expected,
        )
    )  # fmt: skip
    assert len(report.streams) >= 20
    assert report.failures == []
    # The p99 gap is held to the 200 ms bar; the single largest one only loosely, because on a shared
    # 2-core machine one scheduler stall of any process shows up there (bench/load.py checks the max).
    gaps = sorted(g for s in report.streams for g in s.gaps)
    p99 = gaps[int(len(gaps) * 0.99)]
    assert p99 - load.CHUNK_DELAY < 0.200, f"p99 gap between chunks {p99 * 1000:.0f} ms"
    assert report.max_gap - load.CHUNK_DELAY < 2.0, f"largest gap between chunks {report.max_gap * 1000:.0f} ms"


# --------------------------------------------------------------------------- drain on SIGTERM


def test_sigterm_with_20_streams_in_flight_lets_all_finish_then_exits_0(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset()
    folder = init_gateway(
        tmp_path / "drain", "openai-backed", "--api-base", f"openai={upstream.url}/v1",
        "--key", f"OPENAI_API_KEY={PROVIDER_KEY}",
    )  # fmt: skip
    gateway = start_gateway(folder)
    try:
        text = "".join(f"w{i:02d} " for i in range(24))
        upstream.script(Reply(text=text, chunks=24, chunk_delay=0.15), times=None)
        results: list[httpx.Response | Exception] = []

        def stream() -> None:
            try:
                results.append(post(gateway, "/v1/messages", messages(stream=True), timeout=90))
            except Exception as exc:
                results.append(exc)

        threads = [threading.Thread(target=stream) for _ in range(20)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(sent_models(upstream)) >= 20, 30)
        assert len(sent_models(upstream)) == 20
        gateway.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        readiness = httpx.get(gateway.url + "/health/readiness", timeout=10)
        refused = post(gateway, "/v1/messages", messages(), timeout=10)
        for thread in threads:
            thread.join(timeout=90)
        code = gateway.process.wait(timeout=60)
    finally:
        if gateway.process.poll() is None:
            gateway.process.kill()
    assert readiness.status_code == 503
    assert refused.status_code == 503 and refused.json()["error"]["message"] == "the gateway is shutting down"
    assert len(results) == 20 and all(isinstance(r, httpx.Response) for r in results), results
    for response in results:
        assert response.status_code == 200
        events = sse_payloads(response.text)
        assert events[-1] == {"type": "message_stop"} or events[-1].get("type") == "message_stop"
        streamed = "".join(e["delta"]["text"] for e in events if e.get("type") == "content_block_delta")
        assert streamed == text
    assert code == 0
    assert len(sent_models(upstream)) == 20  # the refused request never reached the upstream
