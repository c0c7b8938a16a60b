"""`cc-gateway serve` listening beyond loopback, hardened (issue 16): header timeout, header limit, connection cap.

One real gateway (openai-backed in front of the fake upstream, one worker so that the per-worker
cap is exact) serves the module with a short header timeout from .env and a small connection cap
from a flag. Slow clients are raw sockets on 127.0.0.1 (a bounded number); the real requests made
meanwhile come from the official anthropic SDK.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from conftest import Gateway, init_gateway, run_cli, start_gateway, wait_until
from fakeupstream import FakeUpstream

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 3
MAX_CONNECTIONS = 40
FAKE_KEY = "sk-fake-openai-key-for-hardening-0123456"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The module's gateway: header timeout from .env, connection cap from --max-connections."""
    folder = init_gateway(
        tmp_path_factory.mktemp("hardening"), "openai-backed",
        "--api-base", f"openai={upstream.url}/v1", "--key", f"OPENAI_API_KEY={FAKE_KEY}",
    )  # fmt: skip
    with (folder / ".env").open("a") as env:
        env.write(f"CC_GATEWAY_HEADER_TIMEOUT={HEADER_TIMEOUT}\n")
    gateway = start_gateway(folder, "--workers", "1", "--max-connections", str(MAX_CONNECTIONS), ready_timeout=180)
    yield gateway
    gateway.stop()


def _open(gw: Gateway, count: int, first_bytes: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing (b'' for nothing), or None if it is still open after the wait."""
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_half_open_connections_are_dropped_after_the_timeout_while_the_sdk_is_answered(
    gw: Gateway, fresh_upstream: FakeUpstream
) -> None:
    """20 connections with half a request line and 10 silent ones: all closed after the header timeout;
    SDK requests made meanwhile all succeed; the partial ones are told 408."""
    half = _open(gw, 20, b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    silent = _open(gw, 10, b"")
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0, timeout=30)
    try:
        for _ in range(3):
            reply = client.messages.create(model="sonnet", max_tokens=32, messages=USER)
            assert reply.content[0].text.startswith("fake reply from gpt-5")
        for sock in half + silent:
            sock.settimeout(HEADER_TIMEOUT + 15)  # the timeout, plus a busy machine's slack
        outcomes = [_closed_by_server(sock) for sock in half + silent]
        assert None not in outcomes, "a slow connection outlived the header timeout"
        assert all(o.startswith(b"HTTP/1.1 408 ") for o in outcomes[:20]), outcomes[:20]
        assert all(o == b"" for o in outcomes[20:])
        with client.messages.stream(model="sonnet", max_tokens=32, messages=USER) as stream:
            assert "".join(stream.text_stream).startswith("fake reply from gpt-5")
        assert "sent no complete request header within 3 s" in gw.log()
    finally:
        for sock in half + silent:
            sock.close()


def test_a_request_that_takes_longer_than_the_timeout_to_stream_is_not_cut(
    gw: Gateway, fresh_upstream: FakeUpstream
) -> None:
    """The header timeout covers the headers only: a response streaming past it completes."""
    from fakeupstream import Echo

    fresh_upstream.default = Echo(chunks=10, chunk_delay=(HEADER_TIMEOUT + 1) / 10)
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0, timeout=60)
    with client.messages.stream(model="sonnet", max_tokens=32, messages=USER) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("fake reply from gpt-5")
    assert stream.get_final_message().stop_reason == "end_turn"


def test_a_200_kb_header_gets_431_and_a_16_kb_one_is_served(gw: Gateway, fresh_upstream: FakeUpstream) -> None:
    big = httpx.get(gw.url + "/v1/models", headers={**gw.headers(), "x-padding": "a" * 200_000}, timeout=30)
    assert big.status_code == 431
    assert "larger than the gateway's limit of 64 KiB" in big.text
    fine = httpx.get(gw.url + "/v1/models", headers={**gw.headers(), "x-padding": "a" * 16_000}, timeout=30)
    assert fine.status_code == 200, fine.text
    assert "with headers over 64 KiB (431)" in gw.log()


def test_the_connection_cap_answers_503_logs_its_line_and_recovers(gw: Gateway, fresh_upstream: FakeUpstream) -> None:
    idle = _open(gw, MAX_CONNECTIONS, b"")
    try:
        refused = httpx.get(gw.url + "/v1/models", headers=gw.headers(), timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert wait_until(lambda: "connection cap reached" in gw.log(), 10)
        line = next(x for x in gw.log().splitlines() if "connection cap reached" in x)
        assert f"(limit {MAX_CONNECTIONS}, --max-connections" in line
    finally:
        for sock in idle:
            sock.close()
    ok = wait_until(lambda: httpx.get(gw.url + "/v1/models", headers=gw.headers(), timeout=30).status_code == 200, 10)
    assert ok


def test_a_body_that_stops_arriving_is_dropped(gw: Gateway, fresh_upstream: FakeUpstream) -> None:
    """Headers complete, then half the promised body and silence: the connection is closed after the timeout."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=HEADER_TIMEOUT + 15) as sock:
        head = (
            f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "sonnet",')
        with contextlib.suppress(ConnectionResetError):
            assert _closed_by_server(sock) is not None
    assert fresh_upstream.requests == []


def test_bad_limit_values_are_one_clear_line(tmp_path: Path, upstream: FakeUpstream) -> None:
    folder = init_gateway(tmp_path / "gw", "openai-backed", "--key", f"OPENAI_API_KEY={FAKE_KEY}")
    result = run_cli("serve", "--dir", str(folder), "--max-connections", "0")
    assert result.returncode == 2, result.stderr
    assert "--max-connections" in result.stderr and "greater than 0" in result.stderr
    assert "Traceback" not in result.stderr
    with (folder / ".env").open("a") as env:
        env.write("CC_GATEWAY_HEADER_TIMEOUT=soon\n")
    result = run_cli("serve", "--dir", str(folder))
    assert result.returncode == 1 and "CC_GATEWAY_HEADER_TIMEOUT='soon'" in result.stderr, result.stderr


def test_the_gateway_answers_while_slow_connections_come_and_go(gw: Gateway, fresh_upstream: FakeUpstream) -> None:
    """A thread keeps opening half-open connections (at most 30 at a time) while 20 SDK requests all succeed."""
    stop = threading.Event()
    opened: list[socket.socket] = []

    def slowloris() -> None:
        while not stop.is_set():
            live = [s for s in opened if s.fileno() != -1]
            if len(live) < 30:
                opened.extend(_open(gw, 1, b"GET /v1/mod"))
            stop.wait(0.05)

    thread = threading.Thread(target=slowloris)
    thread.start()
    try:
        client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0, timeout=30)
        for _ in range(20):
            reply = client.messages.create(model="haiku", max_tokens=16, messages=USER)
            assert reply.content[0].text.startswith("fake reply from gpt-5-mini")
    finally:
        stop.set()
        thread.join(10)
        for sock in opened:
            sock.close()
