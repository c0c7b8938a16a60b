"""`cc-gateway claude` checks the key Claude Code will actually send before it starts it: a 200 from the
gateway's /v1/models, or exit 1 within 2 s with one line naming the file whose key wins, or the other
service on the port. A stand-in `claude` on PATH records how it was started."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Gateway, cli_env, free_port, init_gateway, read_env, start_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    folder = init_gateway(tmp_path_factory.mktemp("precheck") / "gw", "demo")
    gateway = start_gateway(folder)
    env = (folder / ".env").read_text()
    (folder / ".env").write_text(env.replace(f"CC_GATEWAY_PORT={read_env(folder)['CC_GATEWAY_PORT']}",
                                             f"CC_GATEWAY_PORT={gateway.port}"))
    yield gateway
    gateway.stop()


def stand_in(tmp_path: Path) -> Path:
    """A `claude` that records how it was started (argv, environment; one JSON line per run), then exits 0."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "claude"
    record = tmp_path / "started.json"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      f"print(json.dumps({{'argv': sys.argv[1:], 'env': dict(os.environ)}}), file=open({str(record)!r}, 'a'))\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def sessions(tmp_path: Path) -> list[dict]:
    """The stand-in's runs that started a session (not `claude --version`)."""
    record = tmp_path / "started.json"
    runs = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return [run for run in runs if "-p" in run["argv"]]


def run_claude(folder: Path, home: Path, bin_dir: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = cli_env(home)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cc_gateway", "claude", "--dir", str(folder), "-p", "hi"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def test_a_good_key_starts_claude_with_the_routes_in_settings(gw: Gateway, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done, _ = run_claude(gw.folder, home, stand_in(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    started = sessions(tmp_path)[-1]
    settings = json.loads(started["argv"][started["argv"].index("--settings") + 1])
    assert settings["env"]["ANTHROPIC_BASE_URL"] == gw.url
    assert started["env"]["ANTHROPIC_AUTH_TOKEN"] == gw.key
    assert gw.key not in " ".join(started["argv"])


def test_a_settings_files_key_that_wins_and_fails_is_named(gw: Gateway, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    user = home / ".claude" / "settings.json"
    user.write_text(json.dumps({"env": {"ANTHROPIC_AUTH_TOKEN": "sk-left-over-from-another-gateway"}}))
    done, seconds = run_claude(gw.folder, home, stand_in(tmp_path), tmp_path)
    assert done.returncode == 1
    assert seconds < 2 + 1.5, seconds  # the check's own budget is 2 s; the rest is Python starting
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert str(user) in lines[0] and "ANTHROPIC_AUTH_TOKEN" in lines[0], done.stderr
    assert not sessions(tmp_path)


def test_another_gateway_on_the_port_is_named(gw: Gateway, tmp_path: Path) -> None:
    other = init_gateway(tmp_path / "other", "demo", port=gw.port)  # its own key, the running gateway's port
    home = tmp_path / "home"
    home.mkdir()
    done, _ = run_claude(other, home, stand_in(tmp_path), tmp_path)
    assert done.returncode == 1
    assert "refuses this gateway's key" in done.stderr and str(other / ".env") in done.stderr, done.stderr


def test_a_service_that_is_no_gateway_is_named(tmp_path: Path) -> None:
    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder = init_gateway(tmp_path / "gw", "demo", port=port)
        home = tmp_path / "home"
        home.mkdir()
        done, _ = run_claude(folder, home, stand_in(tmp_path), tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is not a cc-gateway" in done.stderr, done.stderr
