"""`cc-gateway serve` applies an edited config.yaml/.env without dropping a request (issue 15, item 5).

Real parts: `cc-gateway serve` (LiteLLM's proxy) on 127.0.0.1, `cc-gateway add-model`/`models`/
`doctor` as subprocesses, the official anthropic SDK as the client under load; only the LLM
provider is faked. Each test counts what the clients saw: every request answered 200, every
stream complete with the exact text the fake upstream sent.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import anthropic
import httpx
import psutil
import pytest
from conftest import Gateway, init_gateway, read_env, run_cli, start_gateway, wait_until
from fakeupstream import Echo, FakeUpstream

pytestmark = pytest.mark.e2e

FAKE_KEY = "sk-fake-openai-key-for-reload-0123456789"
NEW_KEY = "sk-fake-openai-key-after-reload-987654321"
USER = [{"role": "user", "content": "hi"}]


def _folder(tmp_path: Path, upstream: FakeUpstream) -> Path:
    return init_gateway(
        tmp_path / "gw",
        "openai-backed",
        "--api-base",
        f"openai={upstream.url}/v1",
        "--key",
        f"OPENAI_API_KEY={FAKE_KEY}",
    )


def _serve(folder: Path, *args: str) -> Gateway:
    """`cc-gateway serve` on the port in the folder's .env (where doctor, models and add-model look)."""
    return start_gateway(folder, *args, port=int(read_env(folder)["CC_GATEWAY_PORT"]), ready_timeout=180)


def _served(gw: Gateway) -> set[str]:
    reply = httpx.get(gw.url + "/v1/models", headers=gw.headers(), timeout=60)
    assert reply.status_code == 200, reply.text
    return {m["id"] for m in reply.json()["data"]}


def _workers(gw: Gateway) -> set[int]:
    return {p.pid for p in psutil.Process(gw.process.pid).children()}


class Load:
    """Clients (the anthropic SDK) sending streamed and plain requests until stopped; every outcome kept."""

    def __init__(self, gw: Gateway, streams: int = 4, plain: int = 2) -> None:
        self.client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0, timeout=60)
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.done = {"stream": 0, "plain": 0}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._streams) for _ in range(streams)]
        self.threads += [threading.Thread(target=self._plain) for _ in range(plain)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)

    def _record(self, kind: str, failure: str | None) -> None:
        with self.lock:
            if failure:
                self.failures.append(failure)
            else:
                self.done[kind] += 1

    def _streams(self) -> None:
        while not self.stop.is_set():
            try:
                with self.client.messages.stream(model="sonnet", max_tokens=64, messages=USER) as stream:
                    text = "".join(stream.text_stream)
                    final = stream.get_final_message()
                ok = text.startswith("fake reply from gpt-5 via chat") and final.stop_reason == "end_turn"
                self._record("stream", None if ok else f"stream text {text!r} stop {final.stop_reason}")
            except Exception as exc:  # every failure is a finding
                self._record("stream", f"stream: {type(exc).__name__}: {exc}")

    def _plain(self) -> None:
        while not self.stop.is_set():
            try:
                reply = self.client.messages.create(model="haiku", max_tokens=64, messages=USER)
                ok = reply.content[0].text.startswith("fake reply from gpt-5-mini")
                self._record("plain", None if ok else f"plain text {reply.content[0].text!r}")
            except Exception as exc:
                self._record("plain", f"plain: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_added_route_is_served_under_load_without_a_failed_request_or_cut_stream(
    tmp_path: Path, fresh_upstream: FakeUpstream, workers: str
) -> None:
    """add-model while clients stream: the route appears in /v1/models, old workers finish, nothing fails."""
    folder = _folder(tmp_path, fresh_upstream)
    fresh_upstream.default = Echo(chunks=12, chunk_delay=0.1)  # ~1.2 s streams: some straddle every swap
    gw = _serve(folder, "--workers", workers)
    try:
        before = _workers(gw)
        assert len(before) == int(workers)
        with Load(gw) as load:
            assert wait_until(lambda: load.done["stream"] >= 4, 60), load.failures
            added = run_cli("add-model", "gpt-new", "--provider", "openai", "--model", "gpt-new", "--dir", str(folder))
            assert added.returncode == 0, added.stderr
            assert "the running gateway serves the change now" in added.stderr, added.stderr
            assert "gpt-new" in _served(gw)
            streams_at_swap = load.done["stream"]
            assert wait_until(lambda: load.done["stream"] >= streams_at_swap + 8, 60), load.failures
        assert load.failures == []
        assert load.done["plain"] > 0
        after = wait_until(lambda: _workers(gw) if not (_workers(gw) & before) else set(), 60)
        assert len(after) == int(workers), "the old workers did not exit after their streams"
        reply = httpx.post(
            gw.url + "/v1/messages", headers=gw.headers(), timeout=60,
            json={"model": "gpt-new", "max_tokens": 16, "messages": USER},
        )  # fmt: skip
        assert reply.status_code == 200 and "gpt-new" in reply.json()["content"][0]["text"]
        assert "reloaded config.yaml" in gw.log()
    finally:
        gw.stop()


def test_a_broken_edit_is_refused_with_its_line_and_the_old_config_keeps_serving(
    tmp_path: Path, fresh_upstream: FakeUpstream
) -> None:
    """A YAML error is logged with file:line, no worker is replaced, doctor and models say what happened."""
    folder = _folder(tmp_path, fresh_upstream)
    gw = _serve(folder, "--workers", "1")
    try:
        before = _workers(gw)
        config = folder / "config.yaml"
        good = config.read_text()
        lines = good.splitlines()
        config.write_text("\n".join([*lines[:5], "model_list: [oops", *lines[5:]]) + "\n")
        assert wait_until(lambda: "reload refused" in gw.log(), 30), gw.log()
        refusal = next(line for line in gw.log().splitlines() if "reload refused" in line)
        assert f"{config}:" in refusal and "the old config keeps serving" in refusal
        assert _workers(gw) == before
        with Load(gw, streams=1, plain=1) as load:
            assert wait_until(lambda: load.done["stream"] >= 2 and load.done["plain"] >= 2, 60)
        assert load.failures == []
        doctor = run_cli("doctor", "--dir", str(folder), "--json", "--no-network")
        row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "loaded config")
        assert row["status"] == "fail" and "refused" in row["detail"], row
        config.write_text(good.replace("claude-fast:", "claude-quick:"))  # fixed, with a visible change
        assert wait_until(lambda: "claude-quick" in _served(gw), 60), gw.log()
        assert "claude-fast" not in _served(gw)
    finally:
        gw.stop()


def test_an_edit_litellm_rejects_abandons_the_new_workers_and_the_old_ones_serve_on(
    tmp_path: Path, fresh_upstream: FakeUpstream
) -> None:
    """An edit that passes serve's checks but LiteLLM refuses at start-up: the new worker never takes over."""
    folder = _folder(tmp_path, fresh_upstream)
    gw = _serve(folder, "--workers", "1")
    try:
        before = _workers(gw)
        config = folder / "config.yaml"
        config.write_text(
            config.read_text().replace("router_settings:\n", "router_settings:\n  routing_strategy: nope\n")
        )
        assert wait_until(lambda: "reload refused: LiteLLM could not start with the edited files" in gw.log(), 120)
        assert "Invalid routing_strategy: 'nope'" in gw.log()
        assert wait_until(lambda: _workers(gw) == before, 60), "the failed generation is still running"
        with Load(gw, streams=1, plain=1) as load:
            assert wait_until(lambda: load.done["stream"] >= 2 and load.done["plain"] >= 2, 60)
        assert load.failures == []
        doctor = run_cli("doctor", "--dir", str(folder), "--json", "--no-network")
        row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "loaded config")
        assert row["status"] == "fail" and "LiteLLM could not start" in row["detail"], row
    finally:
        gw.stop()


def test_an_env_change_reaches_the_upstream_redacted(tmp_path: Path, fresh_upstream: FakeUpstream) -> None:
    """A new provider key in .env is used from the next request on, and redacted in the log like the old one."""
    folder = _folder(tmp_path, fresh_upstream)
    gw = _serve(folder, "--workers", "1")
    try:
        env = folder / ".env"
        env.write_text(env.read_text().replace(FAKE_KEY, NEW_KEY))

        def answered_with_new_key() -> bool:
            fresh_upstream.reset()
            reply = httpx.post(
                gw.url + "/v1/messages", headers=gw.headers(), timeout=60,
                json={"model": "sonnet", "max_tokens": 16, "messages": USER},
            )  # fmt: skip
            assert reply.status_code == 200, reply.text
            return fresh_upstream.requests[-1].headers.get("authorization") == f"Bearer {NEW_KEY}"

        assert wait_until(answered_with_new_key, 60, interval=0.5), gw.log()
        assert "reloaded .env" in gw.log()
        assert NEW_KEY not in gw.log() and FAKE_KEY not in gw.log()
    finally:
        gw.stop()


def test_an_edit_that_needs_fewer_workers_is_refused_until_a_restart(
    tmp_path: Path, fresh_upstream: FakeUpstream
) -> None:
    """Two workers by default; an rpm limit (per process without Redis) would be split: refused, 'restart'."""
    from cc_gateway.serve.preflight import cpu_count

    if cpu_count() < 2:
        pytest.skip("one CPU: the default is one worker already")
    folder = _folder(tmp_path, fresh_upstream)
    gw = _serve(folder)
    try:
        assert len(_workers(gw)) == 2
        config = folder / "config.yaml"
        line = "      api_key: os.environ/OPENAI_API_KEY\n"
        config.write_text(config.read_text().replace(line, line + "      rpm: 60\n", 1))
        assert wait_until(lambda: "reload refused" in gw.log(), 30), gw.log()
        models = run_cli("models", "--dir", str(folder))
        assert "the gateway refused the edited config.yaml" in models.stderr, models.stderr
        assert "rpm/tpm" in models.stderr and "restart `cc-gateway serve`" in models.stderr
        assert len(_workers(gw)) == 2
    finally:
        gw.stop()


def test_without_the_watch_staleness_is_reported_and_sighup_applies_it(
    tmp_path: Path, fresh_upstream: FakeUpstream
) -> None:
    """--no-reload: add-model, models and doctor say 'restart'; SIGHUP applies the edit without a restart."""
    folder = _folder(tmp_path, fresh_upstream)
    gw = _serve(folder, "--workers", "1", "--no-reload")
    try:
        added = run_cli("add-model", "gpt-new", "--provider", "openai", "--model", "gpt-new", "--dir", str(folder))
        assert added.returncode == 0, added.stderr
        assert "restart `cc-gateway serve` to apply" in added.stderr, added.stderr
        time.sleep(2 * 0.5 + 0.5)  # longer than the watch would need to notice: nothing may happen
        assert "gpt-new" not in _served(gw)
        models = run_cli("models", "--dir", str(folder))
        assert "config.yaml changed since the gateway loaded it" in models.stderr, models.stderr
        doctor = run_cli("doctor", "--dir", str(folder), "--json", "--no-network")
        row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "loaded config")
        assert row["status"] == "warn" and "restart" in row["hint"] + row["detail"], row
        gw.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "gpt-new" in _served(gw), 60), gw.log()
        doctor = run_cli("doctor", "--dir", str(folder), "--json", "--no-network")
        row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "loaded config")
        assert row["status"] == "ok", row
    finally:
        gw.stop()


def test_the_loaded_endpoint_needs_a_key(tmp_path: Path, fresh_upstream: FakeUpstream) -> None:
    """/cc-gateway/loaded answers 401 without a key and the files' SHA-256 with one."""
    import hashlib

    folder = _folder(tmp_path, fresh_upstream)
    gw = _serve(folder, "--workers", "1")
    try:
        assert httpx.get(gw.url + "/cc-gateway/loaded", timeout=10).status_code == 401
        loaded = httpx.get(gw.url + "/cc-gateway/loaded", headers=gw.headers(), timeout=10).json()
        assert loaded["config"]["sha256"] == hashlib.sha256((folder / "config.yaml").read_bytes()).hexdigest()
        assert loaded["env"]["sha256"] == hashlib.sha256((folder / ".env").read_bytes()).hexdigest()
        assert loaded["reload"] == "watch"
    finally:
        gw.stop()


def test_workers_load_the_pinned_config_text_not_the_file(tmp_path: Path) -> None:
    """LiteLLM's config read returns the text serve validated, whatever the file holds by then."""
    import asyncio

    from litellm.proxy.proxy_server import ProxyConfig

    from cc_gateway.serve.litellm import pinned_config

    assert pinned_config.install()
    path = tmp_path / "config.yaml"
    path.write_text("model_list: [oops\n")  # a broken edit made after validation
    pinned_config.pin(path, "model_list:\n  - model_name: validated\n    litellm_params: {model: openai/x}\n")
    config = asyncio.run(ProxyConfig()._get_config_from_file(str(path)))
    assert config["model_list"][0]["model_name"] == "validated"
    other = tmp_path / "other.yaml"
    other.write_text("model_list: []\n")
    assert asyncio.run(ProxyConfig()._get_config_from_file(str(other))) == {"model_list": []}
