"""`cc-gateway serve --workers N`: forked workers on one socket, drained on SIGTERM, state-aware defaults."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import cli_env, free_port, init_gateway, run_cli, start_gateway, wait_until
from fakeupstream import Echo, FakeUpstream

from cc_gateway.core.errors import UsageError
from cc_gateway.gateway.folder import load_gateway
from cc_gateway.serve import preflight as serve

FAKE_KEY = "sk-fake-openai-key-for-tests-0123456789"
BODY = {"model": "claude-sonnet-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _openai_folder(tmp_path: Path, upstream: FakeUpstream) -> Path:
    return init_gateway(
        tmp_path / "gw",
        "openai-backed",
        "--api-base",
        f"openai={upstream.url}/v1",
        "--key",
        f"OPENAI_API_KEY={FAKE_KEY}",
    )


@pytest.mark.e2e
def test_two_workers_serve_and_drain_a_stream_on_sigterm(tmp_path: Path, fresh_upstream: FakeUpstream) -> None:
    """Both workers answer; SIGTERM lets a stream in flight finish, then every process exits 0."""
    folder = _openai_folder(tmp_path, fresh_upstream)
    gateway = start_gateway(folder, "--workers", "2", ready_timeout=180)
    try:
        workers = psutil.Process(gateway.process.pid).children()
        assert len(workers) == 2
        with httpx.Client(base_url=gateway.url, headers=gateway.headers(), timeout=60) as client:
            for _ in range(6):
                reply = client.post("/v1/messages", json=BODY)
                assert reply.status_code == 200, reply.text
                assert reply.json()["content"][0]["text"].startswith("fake reply from")
        fresh_upstream.default = Echo(chunks=10, chunk_delay=0.3)  # a ~3 s stream
        received: list[bytes] = []

        def stream() -> None:
            with httpx.stream(
                "POST",
                f"{gateway.url}/v1/messages",
                json={**BODY, "stream": True},
                headers=gateway.headers(),
                timeout=60,
            ) as response:
                received.extend(response.iter_raw())

        reader = threading.Thread(target=stream)
        reader.start()
        reached = wait_until(lambda: any(r.api == "chat" and r.stream for r in fresh_upstream.requests), 30)
        assert reached, "the stream never reached the upstream"
        gateway.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "2 worker(s) draining" in gateway.log(), 30)
        time.sleep(0.5)  # the idle worker has drained too; it must still answer, not reset the connection
        for _ in range(4):
            refused = httpx.post(f"{gateway.url}/v1/messages", json=BODY, headers=gateway.headers(), timeout=30)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        code = gateway.process.wait(timeout=90)
        reader.join(30)
        assert code == 0, gateway.log()
        assert b"message_stop" in b"".join(received)
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
        assert "2 worker(s) draining" in gateway.log()
    finally:
        if gateway.process.poll() is None:
            gateway.process.kill()


@pytest.mark.e2e
def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A supervisor killed with SIGKILL (no chance to tell anyone) leaves no worker running."""
    folder = _openai_folder(tmp_path, upstream)
    gateway = start_gateway(folder, "--workers", "2", "--drain-seconds", "2", ready_timeout=180)
    workers = psutil.Process(gateway.process.pid).children()
    assert len(workers) == 2
    gateway.process.kill()
    gateway.process.wait(timeout=10)
    _gone, alive = psutil.wait_procs(workers, timeout=45)
    for proc in alive:  # don't leave them behind when the assertion fails
        proc.kill()
    assert not alive, f"workers outlived their supervisor: {[p.pid for p in alive]}"


def test_port_in_use_is_refused_before_loading_or_forking(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A taken port stops serve with exit 1 and a clear line, before LiteLLM loads or a worker starts."""
    folder = _openai_folder(tmp_path, upstream)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--dir", str(folder), "--port", str(port), "--workers", "3", timeout=60)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "loading LiteLLM" not in result.stderr


def test_default_workers_one_per_cpu_capped(tmp_path: Path, upstream: FakeUpstream, monkeypatch) -> None:
    """Stateless configs get one worker per CPU (at most 4); an explicit --workers wins."""
    gateway = load_gateway(_openai_folder(tmp_path, upstream))
    monkeypatch.setattr(serve, "cpu_count", lambda: 8)
    assert serve.choose_workers(gateway, None)[0] == serve.MAX_DEFAULT_WORKERS
    monkeypatch.setattr(serve, "cpu_count", lambda: 2)
    assert serve.choose_workers(gateway, None)[0] == 2
    assert serve.choose_workers(gateway, 3)[0] == 3


def test_pool_without_redis_stays_in_one_worker(tmp_path: Path, monkeypatch) -> None:
    """The credential pool's rests live in memory: one worker by default, and --workers 2 is refused."""
    folder = init_gateway(tmp_path / "mp", "multi-provider")
    gateway = load_gateway(folder)
    monkeypatch.delenv("REDIS_URL", raising=False)
    count, reason = serve.choose_workers(gateway, None)
    assert count == 1
    assert "credential pool" in reason and "REDIS_URL" in reason
    with pytest.raises(UsageError, match="--workers 2 would split the Claude credential pool"):
        serve.choose_workers(gateway, 2)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert serve.choose_workers(gateway, 2)[0] == 2


@pytest.mark.e2e
def test_sigterm_before_ready_still_exits_cleanly(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A SIGTERM while the workers are still starting stops everything with exit 0 and no ready panel."""
    folder = _openai_folder(tmp_path, upstream)
    argv = [sys.executable, "-m", "cc_gateway", "serve", "--dir", str(folder), "--port", str(free_port())]
    process = subprocess.Popen(
        [*argv, "--workers", "2"], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:

        def forked() -> bool:  # LiteLLM is loaded, the workers' start-up is running
            assert process.poll() is None, process.stderr.read()
            return len(psutil.Process(process.pid).children()) >= 2

        assert wait_until(forked, 120)
        process.send_signal(signal.SIGTERM)
        code, log = process.wait(90), process.stderr.read()
        assert code == 0, log
        assert "cc-gateway ready" not in log
    finally:
        if process.poll() is None:
            process.kill()


def test_rate_limits_without_redis_stay_in_one_worker(tmp_path: Path, upstream: FakeUpstream, monkeypatch) -> None:
    """Per-deployment rpm limits are counted per process without Redis: one worker by default."""
    folder = _openai_folder(tmp_path, upstream)
    config = folder / "config.yaml"
    line = "      api_key: os.environ/OPENAI_API_KEY\n"
    config.write_text(config.read_text().replace(line, line + "      rpm: 60\n", 1))
    monkeypatch.delenv("REDIS_URL", raising=False)
    count, reason = serve.choose_workers(load_gateway(folder), None)
    assert count == 1 and "rpm/tpm" in reason
