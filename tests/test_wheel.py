"""The wheel is the product: installed as the README says into a fresh venv, it runs the demo end to end.

And the image builds from what the user has: the Dockerfile that `init` writes installs the wheel and lock
that `init` wrote beside it. No Docker engine runs here, so its RUN lines are run as written (same pip lines,
same wheel, same lock) in another fresh venv, and `docker-compose config` validates the compose file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, cli_env, free_port, read_env, wait_until

INSTALL_TIMEOUT = 900  # pip installing ~130 locked packages into a fresh venv on a busy 2-core machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * INSTALL_TIMEOUT)]  # the session fixtures install twice


def _run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{shlex.join(map(str, command))}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _env(venv: Path, home: Path) -> dict[str, str]:
    """A user's environment: the venv's bin on PATH, nothing of this checkout on sys.path."""
    env = cli_env(home, PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin")
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel scripts/test.sh built (CC_GATEWAY_WHEEL), or one built from this checkout now."""
    if os.environ.get("CC_GATEWAY_WHEEL"):
        return Path(os.environ["CC_GATEWAY_WHEEL"])
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT, timeout=300)
    return next(out.glob("cc_gateway-*.whl"))


@pytest.fixture(scope="session")
def user_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the README's install lines: the runtime lock, then the wheel without dependencies."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    _run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    _run(pip, "install", "--quiet", "--require-hashes", "-r", ROOT / "requirements" / "runtime.lock",
         timeout=INSTALL_TIMEOUT)
    _run(pip, "install", "--quiet", "--no-deps", wheel, timeout=300)
    _run(pip, "check", timeout=120)
    return venv


@pytest.fixture(scope="session")
def demo_folder(user_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """`cc-gateway init --preset demo` run by the wheel's console script; yields (folder, HOME)."""
    home = tmp_path_factory.mktemp("wheel-home")
    folder = home / "gateway"
    _run(user_venv / "bin" / "cc-gateway", "init", "--preset", "demo", "--dir", folder, "--yes",
         "--port", str(free_port()), cwd=home, env=_env(user_venv, home), timeout=120)
    yield folder, home


def test_the_wheel_runs_the_demo_end_to_end(user_venv: Path, demo_folder: tuple[Path, Path], wheel: Path):
    """init, serve, one /v1/messages and doctor, all from the installed wheel (not this checkout)."""
    folder, home = demo_folder
    env = _env(user_venv, home)
    where = _run(user_venv / "bin" / "python", "-c", "import cc_gateway; print(cc_gateway.__file__)", cwd=home,
                 env=env).stdout
    assert where.startswith(str(user_venv)), where
    port = free_port()
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen([str(user_venv / "bin" / "cc-gateway"), "serve", "--dir", str(folder), "--port",
                               str(port)], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def alive() -> bool:
            try:
                return httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200
            except httpx.HTTPError:
                return server.poll() is not None  # stop waiting; asserted below

        wait_until(alive, timeout=120, interval=0.3)
        assert server.poll() is None, (folder / "serve.log").read_text()
        key = read_env(folder)["LITELLM_MASTER_KEY"]
        answer = httpx.post(f"{url}/v1/messages", headers={"x-api-key": key}, timeout=60, json={
            "model": "claude-sonnet-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, answer.text
        assert "cc-gateway demo" in answer.json()["content"][0]["text"]
        doctor = _run(user_venv / "bin" / "cc-gateway", "doctor", "--dir", folder, "--url", url, "--json",
                      cwd=home, env=env, timeout=180)
        report = json.loads(doctor.stdout)
        failed = [c for c in report["checks"] if c["status"] == "fail"]
        assert report["ok"] and failed == [], failed
        passed = {c["name"] for c in report["checks"] if c["status"] == "ok"}
        assert {"config.yaml", "hook modules", "reachable", "auth", "route claude-sonnet-5"} <= passed
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def _dockerfile_installs(dockerfile: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The Dockerfile's COPY lines into /tmp/cc-gateway (source, destination) and its RUN pip commands."""
    text = dockerfile.replace("\\\n", " ")
    copies = []
    for line in text.splitlines():
        if line.startswith("COPY ") and "/tmp/cc-gateway/" in line:
            *sources, destination = line.split()[1:]
            copies += [(source, destination) for source in sources if not source.startswith("--")]
    runs = [cmd.strip() for line in text.splitlines() if line.startswith("RUN ") and " pip " in f" {line} "
            for cmd in line[4:].split("&&")]
    return copies, runs


def test_the_dockerfile_installs_the_wheel_and_lock_init_wrote(demo_folder: tuple[Path, Path], wheel: Path,
                                                              tmp_path: Path):
    """Its RUN pip lines, run as written in a fresh venv, install the cc-gateway that wrote the folder."""
    folder, _home = demo_folder
    dockerfile = (folder / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "cc-gateway[" not in dockerfile  # nothing by name from an index
    copies, runs = _dockerfile_installs(dockerfile)
    assert copies and runs, dockerfile
    context = tmp_path / "tmp-cc-gateway"
    context.mkdir()
    for source, destination in copies:
        assert destination == "/tmp/cc-gateway/", destination
        shutil.copy(folder / source, context / source)
    written = next(context.glob("cc_gateway-*.whl"))
    with zipfile.ZipFile(written) as ours, zipfile.ZipFile(wheel) as built:
        package = sorted(n for n in built.namelist() if n.startswith("cc_gateway/"))
        assert sorted(n for n in ours.namelist() if n.startswith("cc_gateway/")) == package
        assert [n for n in package if ours.read(n) != built.read(n)] == []
    venv = tmp_path / "image"
    _run(sys.executable, "-m", "venv", venv)
    for command in runs:
        words = shlex.split(command.replace("/tmp/cc-gateway/", f"{context}/"))
        if words[:2] == ["rm", "-rf"]:
            continue
        assert words[0] == "pip", command
        _run(venv / "bin" / "pip", *words[1:], timeout=INSTALL_TIMEOUT)
    home = tmp_path / "home"
    home.mkdir()
    env = _env(venv, home)
    version = _run(venv / "bin" / "cc-gateway", "--version", cwd=home, env=env).stdout
    assert re.search(r"\d+\.\d+\.\d+", version), version
    again = _run(venv / "bin" / "cc-gateway", "init", "--preset", "demo", "--dir", home / "g", "--yes", "--port",
                 str(free_port()), cwd=home, env=env, timeout=120)
    assert (home / "g" / "Dockerfile").read_text() == dockerfile.replace(str(folder), str(home / "g")), again.stdout
    assert (home / "g" / written.name).read_bytes() == written.read_bytes()  # the image's wheel rebuilds itself


def test_compose_file_validates(demo_folder: tuple[Path, Path]):
    """`docker-compose config` accepts the compose file init wrote (the engine is not needed for that)."""
    folder, _home = demo_folder
    command = ["docker-compose"] if shutil.which("docker-compose") else None
    if command is None and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    if command is None:
        pytest.skip("no docker compose client installed (scripts/test.sh installs docker-compose)")
    _run(*command, "-f", folder / "docker-compose.yml", "config", "--quiet", cwd=folder, timeout=60)
