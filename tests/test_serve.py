"""`cc-gateway serve` against a fake provider: auth, logs, upstream failures, start-up checks.

One real gateway (openai-backed, in front of the session's fake upstream) serves the whole module;
start-up refusals run `serve` without ever loading LiteLLM.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from conftest import Gateway, cli_env, free_port, init_gateway, read_env, run_cli, start_gateway
from fakeupstream import FakeUpstream, Fault, Hang, Reply

PROVIDER_KEY = "sk-provider-" + "Zq7Wx3Kp" * 4
SONNET = "sonnet"  # an alias every preset has, for its main Claude Code model
TIMEOUT = 4  # the module gateway's router_settings.timeout, seconds
NUM_RETRIES = 1  # _base.yaml's router_settings.num_retries
USER = [{"role": "user", "content": "hi"}]
SPARE_ROUTE = """  # a route whose key variable is empty: served as unavailable
  - model_name: spare
    litellm_params:
      model: openai/spare-model
      api_key: os.environ/SPARE_API_KEY
      api_base: os.environ/OPENAI_API_BASE
"""

pytestmark = pytest.mark.e2e


def with_timeout(folder: Path, seconds: int) -> None:
    """Set the gateway's upstream timeout (router_settings.timeout, litellm_settings.request_timeout)."""
    config = folder / "config.yaml"
    text = config.read_text()
    text = re.sub(r"(?m)^(\s+(?:request_)?timeout:) 600$", rf"\1 {seconds}", text)
    config.write_text(text.replace("model_list:\n", "model_list:\n" + SPARE_ROUTE, 1))


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    """An openai-backed gateway at --log-level debug, a small timeout and one unavailable route."""
    folder = tmp_path_factory.mktemp("serve")
    init_gateway(
        folder, "openai-backed", "--api-base", f"openai={upstream.url}/v1", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}"
    )
    with_timeout(folder, TIMEOUT)
    gateway = start_gateway(folder, "--log-level", "debug")
    yield gateway
    gateway.stop()


@pytest.fixture
def up(gw: Gateway, upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream, reset for this test."""
    upstream.reset()
    return upstream


def post(gw: Gateway, path: str, body: dict, headers: dict | None = None, timeout: float = 60) -> httpx.Response:
    """POST JSON to the gateway with the master key (or the given headers)."""
    return httpx.post(gw.url + path, json=body, headers=gw.headers() if headers is None else headers, timeout=timeout)


def messages(max_tokens: int = 256, **extra: object) -> dict:
    """A minimal /v1/messages body."""
    return {"model": SONNET, "max_tokens": max_tokens, "messages": USER, **extra}


def chat(**extra: object) -> dict:
    """A minimal /v1/chat/completions body."""
    return {"model": SONNET, "messages": USER, **extra}


def access_lines(gw: Gateway, path: str) -> list[str]:
    """The gateway's access-log lines for a path."""
    return [line for line in gw.log().splitlines() if "cc_gateway.access" in line and f" {path} " in line]


def wait_for_line(gw: Gateway, pattern: str, timeout: float = 10) -> str:
    """Wait for a log line matching pattern (the access line is written after the response)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in gw.log().splitlines() if re.search(pattern, line)]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no log line matching {pattern!r}:\n{gw.log()[-3000:]}")


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "x-litellm-api-key"])
def test_each_key_header_is_accepted(gw: Gateway, up: FakeUpstream, header: str) -> None:
    value = f"Bearer {gw.key}" if header == "authorization" else gw.key
    response = post(gw, "/v1/messages", messages(), {header: value})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "fake reply from gpt-5 via chat"


@pytest.mark.parametrize(
    ("headers", "word"),
    [
        ({}, "missing"),
        ({"authorization": "Bearer sk-wrong-key-0000000000000000"}, "invalid"),
        ({"x-api-key": "sk-wrong-key-0000000000000000"}, "invalid"),
        ({"authorization": "Bearer ' OR '1'='1'; DROP TABLE keys; --"}, "invalid"),
    ],
)
def test_missing_or_wrong_key_is_401_in_the_callers_format(
    gw: Gateway, up: FakeUpstream, headers: dict, word: str
) -> None:
    on_messages = post(gw, "/v1/messages", messages(), headers)
    assert on_messages.status_code == 401
    body = on_messages.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert word in body["error"]["message"]

    on_chat = post(gw, "/v1/chat/completions", chat(), headers)
    assert on_chat.status_code == 401
    error = on_chat.json()["error"]
    assert error["type"] == "authentication_error" and word in error["message"]
    assert up.requests == []


def test_sdks_see_an_authentication_error(gw: Gateway, up: FakeUpstream) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key="sk-not-the-key-000000", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(**messages())
    oai = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-not-the-key-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        oai.chat.completions.create(**chat())


# --------------------------------------------------------------------------- routes and logs


def test_route_with_empty_key_variable_answers_424_naming_it(gw: Gateway, up: FakeUpstream) -> None:
    # 424 (printed as is by Claude Code) with x-should-retry: false: a retry can't set the variable.
    assert re.search(r"route spare is unavailable until SPARE_API_KEY is set", gw.log())
    response = post(gw, "/v1/messages", {**messages(), "model": "spare"})
    assert response.status_code == 424 and response.headers["x-should-retry"] == "false"
    assert "SPARE_API_KEY" in response.json()["error"]["message"]
    on_chat = post(gw, "/v1/chat/completions", {**chat(), "model": "spare"})
    assert on_chat.status_code == 424 and "SPARE_API_KEY" in on_chat.json()["error"]["message"]
    assert post(gw, "/v1/messages", messages()).status_code == 200  # the other routes work
    assert [r.model for r in up.requests] == ["gpt-5"]


def test_one_access_line_per_request_with_its_facts(gw: Gateway, up: FakeUpstream) -> None:
    marker = f"claude-sonnet-4-5-logcheck-{time.monotonic_ns()}"  # served by the claude-sonnet-* family route
    assert post(gw, "/v1/messages", {**messages(), "model": marker}).status_code == 200
    line = wait_for_line(gw, rf"POST /v1/messages model={marker} ")
    assert re.search(rf"model={marker} route=claude-sonnet-\* rule=- upstream=\S*gpt-5 status=200 \d+ms$", line), line
    assert sum(marker in line for line in access_lines(gw, "/v1/messages")) == 1


def test_no_key_reaches_the_log_or_the_wrong_upstream(gw: Gateway, up: FakeUpstream) -> None:
    post(gw, "/v1/messages", messages(stream=True))
    post(gw, "/v1/chat/completions", chat())
    post(gw, "/v1/messages", messages(), {"x-api-key": gw.key + "x"})  # a near miss is logged as 401
    wait_for_line(gw, r"POST /v1/chat/completions .*status=200")
    log = gw.log()
    assert "DEBUG" in log  # the gateway runs at --log-level debug: LiteLLM's own debug lines are there
    assert gw.key not in log
    assert PROVIDER_KEY not in log
    assert "Requester IP Address" not in log  # a refused key is one access line, not LiteLLM's ERROR too
    assert read_env(gw.folder)["LITELLM_SALT_KEY"] not in log
    sent = [r for r in up.requests if r.api == "chat"]
    assert sent and all(r.headers["authorization"] == f"Bearer {PROVIDER_KEY}" for r in sent)
    assert all(gw.key not in r.body.decode() + json.dumps(r.headers) for r in up.requests)


def test_models_lists_the_routes(gw: Gateway, up: FakeUpstream) -> None:
    from cc_gateway.gateway.folder import load_gateway

    config = load_gateway(gw.folder)
    response = httpx.get(gw.url + "/v1/models", headers=gw.headers())
    assert response.status_code == 200
    ids = {m["id"] for m in response.json()["data"]}
    exact = {r.name for r in config.routes if "*" not in r.name}
    assert exact and exact <= ids, ids
    assert set(config.aliases) <= ids


# --------------------------------------------------------------------------- upstream failures


def test_429_keeps_the_upstreams_retry_after(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(429, "slow down", headers={"Retry-After": "17"}), times=None)
    on_messages = post(gw, "/v1/messages", messages())
    assert on_messages.status_code == 429
    assert on_messages.headers["retry-after"] == "17"
    assert on_messages.json()["error"]["type"] == "rate_limit_error"
    on_chat = post(gw, "/v1/chat/completions", chat())
    assert on_chat.status_code == 429
    assert on_chat.headers["retry-after"] == "17"
    assert on_chat.json()["error"]["type"] == "rate_limit_error"
    # retry_policy: the client retries a 429 itself, so the gateway passes each one on at once
    assert len(up.requests) == 2


def test_the_anthropic_sdk_honours_the_kept_retry_after(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(429, "slow down", headers={"Retry-After": "1"}), times=1)
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=1)
    started = time.monotonic()
    reply = client.messages.create(**messages())
    assert reply.content[0].text == "fake reply from gpt-5 via chat"
    assert time.monotonic() - started >= 1  # it waited as told before its retry
    assert len(up.requests) == 2


def test_500_is_retried_per_router_settings_then_reported(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Fault(500, "upstream exploded"), times=None)
    response = post(gw, "/v1/messages", messages())
    assert response.status_code == 500
    assert response.json()["type"] == "error"
    assert "upstream exploded" in response.json()["error"]["message"]
    assert len([r for r in up.requests if r.api == "chat"]) == NUM_RETRIES + 1


@pytest.mark.parametrize("status", [500, 429, 400, 401, 404])
def test_a_lone_deployment_is_not_cooled_down_by_errors(gw: Gateway, up: FakeUpstream, status: int) -> None:
    up.script(Fault(status, "no luck", headers={"Retry-After": "1"}), times=None)
    answered = {401: 424, 404: 424}.get(status, status)  # a key or model problem upstream: 424, not retried
    for _ in range(4):  # more than allowed_fails (3) in a minute
        failed = post(gw, "/v1/messages", messages())
        assert failed.status_code == answered, failed.text
    up.reset()
    after = post(gw, "/v1/messages", messages())
    assert after.status_code == 200, after.text
    assert up.requests and up.requests[-1].api == "chat"


def test_an_upstream_that_never_answers_times_out(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Hang(60), times=None)
    started = time.monotonic()
    response = post(gw, "/v1/messages", messages(), timeout=120)
    elapsed = time.monotonic() - started
    assert response.status_code in (408, 504), response.text
    assert "timeout" in response.text.lower() or "timed out" in response.text.lower()
    assert elapsed < TIMEOUT + 8, elapsed  # _base.yaml: a timed-out attempt is not retried
    assert len(up.requests) == 1


def sse_events(response: httpx.Response) -> list[dict]:
    """Decode an SSE body into its JSON payloads (non-JSON data such as [DONE] kept as strings)."""
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            try:
                events.append(json.loads(data))
            except ValueError:
                events.append(data)
    return events


CUTS = {
    "reset": Reply(text="one two three four five six", chunks=6, mid_stream="reset"),
    # the stream stops after its first chunk and the connection stays open: the timeout ends it
    "stall": Reply(text="one two three four five six", chunks=6, mid_stream="stall", stall=TIMEOUT * 5),
}


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_a_stream_cut_halfway_ends_in_an_error_never_a_quiet_200(
    gw: Gateway, up: FakeUpstream, path: str, cut: str
) -> None:
    up.script(CUTS[cut], times=None)
    body = messages(stream=True) if path == "/v1/messages" else chat(stream=True)
    started = time.monotonic()
    response = post(gw, path, body)
    assert time.monotonic() - started < TIMEOUT * (NUM_RETRIES + 1) + 10
    if response.status_code != 200:  # LiteLLM saw the cut before it sent the status line
        assert response.status_code >= 500
        assert "error" in response.json()
        return
    events = sse_events(response)
    assert "[DONE]" not in events
    assert not [e for e in events if isinstance(e, dict) and e.get("type") == "message_stop"]
    last = events[-1]
    assert isinstance(last, dict) and (last.get("type") == "error" or "error" in last), events
    if cut == "stall":  # the client saw the stream start, then the error
        assert "one " in response.text


def test_the_anthropic_sdk_raises_on_a_cut_stream(gw: Gateway, up: FakeUpstream) -> None:
    up.script(Reply(text="one two three four five six", chunks=6, mid_stream="reset"), times=None)
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    with pytest.raises(anthropic.APIError), client.messages.stream(**messages()) as stream:
        for _ in stream:
            pass


# --------------------------------------------------------------------------- start-up


def test_binds_loopback_by_default_and_shows_one_ready_panel(gw: Gateway) -> None:
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]
    assert f"0100007F:{gw.port:04X}" in local
    assert not [a for a in local if a.endswith(f":{gw.port:04X}") and a != f"0100007F:{gw.port:04X}"]
    log = gw.log()
    assert log.count("cc-gateway ready") == 1
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{gw.port}" in log
    assert "ANTHROPIC_AUTH_TOKEN" in log and "claude-haiku-4-5-20251001" in log
    assert "loading LiteLLM" in log  # progress shown while LiteLLM loads
    assert "other machines" not in log  # no exposure warning on loopback
    assert "trusted_proxy_ranges" not in log and "custom_auth_run_common_checks" not in log  # not about us


def serve(folder: Path, *args: str, timeout: float = 60, env: dict | None = None) -> object:
    """Run `cc-gateway serve` expecting it to stop before LiteLLM loads."""
    return run_cli("serve", "--dir", str(folder), *args, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo gateway folder, never started."""
    return init_gateway(tmp_path_factory.mktemp("demo"), "demo")


def with_master_key(folder: Path, value: str | None, tmp_path: Path) -> Path:
    """A copy of the gateway folder whose .env has another master key (None: the line removed)."""
    target = tmp_path / "gw"
    target.mkdir()
    for name in ("config.yaml", "cc_gateway_runtime.py"):
        (target / name).write_text((folder / name).read_text())
    lines = [line for line in (folder / ".env").read_text().splitlines() if not line.startswith("LITELLM_MASTER_KEY=")]
    if value is not None:
        lines.append(f"LITELLM_MASTER_KEY={value}")
    (target / ".env").write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("value", [None, "", "sk-1234", "<your-master-key>", "changeme"])
def test_refuses_a_missing_placeholder_or_weak_master_key(demo_folder: Path, tmp_path: Path, value: str | None) -> None:
    folder = with_master_key(demo_folder, value, tmp_path)
    result = serve(folder, "--port", str(free_port()))
    assert result.returncode == 1
    assert "LITELLM_MASTER_KEY" in result.stderr and str(folder / ".env") in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_a_config_that_does_not_parse_naming_file_and_line(demo_folder: Path, tmp_path: Path) -> None:
    folder = with_master_key(demo_folder, read_env(demo_folder)["LITELLM_MASTER_KEY"], tmp_path)
    config = folder / "config.yaml"
    lines = config.read_text().splitlines()
    bad_line = next(i for i, line in enumerate(lines) if "litellm_params:" in line) + 2
    lines.insert(bad_line - 1, "      model: [unclosed")
    config.write_text("\n".join(lines) + "\n")
    result = serve(folder, "--port", str(free_port()))
    assert result.returncode == 1
    assert re.search(rf"{re.escape(str(config))}:\d+", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_litellm_rejects_stops_start_up_with_its_reason(demo_folder: Path, tmp_path: Path) -> None:
    folder = with_master_key(demo_folder, read_env(demo_folder)["LITELLM_MASTER_KEY"], tmp_path)
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("router_settings:\n", "router_settings:\n  routing_strategy: nope\n"))
    result = serve(folder, "--port", str(free_port()), timeout=180)
    assert result.returncode == 1
    assert "LiteLLM could not start: ValueError: Invalid routing_strategy: 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().endswith("hint: run `cc-gateway doctor`")


@pytest.mark.parametrize(
    ("flags", "words"), [(["--log-level", "loud"], "unknown log level"), (["--port", "70000"], "out of range")]
)
def test_bad_flags_are_usage_errors(demo_folder: Path, flags: list[str], words: str) -> None:
    result = serve(demo_folder, *flags)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr


def test_port_taken_is_a_clear_error_never_another_port(demo_folder: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = serve(demo_folder, "--port", str(port))
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert "cc-gateway ready" not in result.stderr


def test_warns_loudly_when_binding_beyond_loopback(demo_folder: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "cc_gateway",
        "serve",
        "--dir",
        str(demo_folder),
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
    ]
    process = subprocess.Popen(command, env=cli_env(), stderr=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline()  # the warning comes before LiteLLM loads
    finally:
        process.kill()
        process.wait(timeout=30)
    assert first.startswith("warning:") and "0.0.0.0" in first and "other machines" in first


# --------------------------------------------------------------------------- offline, drain


class RecordingProxy:
    """An HTTP(S) proxy that records the first line of every connection and forwards nothing."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    self.seen.append(connection.recv(4096).split(b"\r\n", 1)[0].decode("latin-1"))
                    connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def env(self) -> dict[str, str]:
        """Proxy variables sending every outbound call here, except to the local fake upstream."""
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
        return {**{n: self.url for n in names}, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


DRAIN = 8  # --drain-seconds of the gateway stopped below


class Stream(threading.Thread):
    """A streamed /v1/messages request read in the background."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway, self.chunks, self.first = gateway, [], threading.Event()

    def run(self) -> None:
        """Read the stream to its end (or until the connection goes)."""
        request = {"json": messages(stream=True), "headers": self.gateway.headers(), "timeout": 90}
        try:
            with httpx.stream("POST", self.gateway.url + "/v1/messages", **request) as response:
                for chunk in response.iter_bytes():
                    self.chunks.append(chunk)
                    self.first.set()
        except httpx.HTTPError as exc:
            self.chunks.append(f"\n<{type(exc).__name__}>".encode())

    @property
    def text(self) -> str:
        """Everything received."""
        return b"".join(self.chunks).decode(errors="replace")


def test_no_outbound_call_and_sigterm_drains_a_stream_in_flight(upstream: FakeUpstream, tmp_path: Path) -> None:
    proxy = RecordingProxy()
    env = {k: v for k, v in cli_env(**proxy.env()).items() if not k.startswith("LITELLM_")}
    probe = "import httpx\ntry: httpx.get('https://raw.githubusercontent.com/x', timeout=5)\nexcept Exception: pass"
    subprocess.run([sys.executable, "-c", probe], env=env, timeout=30, check=True)
    assert proxy.seen == ["CONNECT raw.githubusercontent.com:443 HTTP/1.1"]  # the trap catches a fetch
    proxy.seen.clear()

    folder = init_gateway(
        tmp_path / "gw",
        "openai-backed",
        "--api-base",
        f"openai={upstream.url}/v1",
        "--key",
        f"OPENAI_API_KEY={PROVIDER_KEY}",
    )
    gateway = start_gateway(folder, "--drain-seconds", str(DRAIN), env=env)
    try:
        upstream.reset()
        for path, body in (
            ("/v1/messages", messages()),
            ("/v1/chat/completions", chat()),
            ("/v1/messages/count_tokens", {"model": SONNET, "messages": USER}),
        ):
            assert post(gateway, path, body).status_code == 200
        assert httpx.get(gateway.url + "/v1/models", headers=gateway.headers()).status_code == 200

        upstream.script(Reply(text="x" * 40, chunks=10, chunk_delay=0.4))  # about 4 s: finishes in the drain
        upstream.script(Reply(text="y" * 120, chunks=120, chunk_delay=0.5))  # 60 s: outlasts it
        short, long = Stream(gateway), Stream(gateway)
        short.start()
        assert short.first.wait(30)
        long.start()
        assert long.first.wait(30)
        stopping = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        wait_for_line(gateway, r"shutting down: draining \d+ request")
        refused = post(gateway, "/v1/messages", messages())
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "shutting down" in refused.json()["error"]["message"]
        short.join(60)
        long.join(60)
        assert gateway.process.wait(timeout=60) == 0
        stopped = time.monotonic() - stopping
    finally:
        if gateway.process.poll() is None:
            gateway.process.kill()
    assert "event: message_stop" in short.text and "event: error" not in short.text
    assert "".join(re.findall(r'"text": ?"(x+)"', short.text)) == "x" * 40  # every chunk arrived
    assert DRAIN <= stopped < DRAIN + 15, stopped  # bounded: the long stream did not hold it up
    assert "event: message_stop" not in long.text
    assert long.text.rstrip().endswith("}") and "event: error" in long.text, long.text[-500:]
    assert proxy.seen == [], proxy.seen
