"""A real PostgreSQL server for the tests: Debian's postgresql package, a temp cluster on a loopback port.

`initdb` refuses to run as root, so when the tests run as root the cluster is created and run as
`nobody` (`runuser`) in a temp folder given to that user. The server listens on 127.0.0.1 only, with
`trust` authentication for local connections, and is stopped (and its folder removed) at the end of
the session. Tests that need it skip with the reason when PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path:
    """CC_GATEWAY_PG_BIN, else the newest /usr/lib/postgresql/N/bin holding initdb (Debian's layout)."""
    if os.environ.get("CC_GATEWAY_PG_BIN"):
        return Path(os.environ["CC_GATEWAY_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL cluster."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ccg-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> PostgresServer:
        """initdb, then pg_ctl start on 127.0.0.1:port (socket in the temp folder)."""
        if self.as_user:
            shutil.chown(self.root, "nobody")
            self.root.chmod(0o700)
        done = self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                         "--no-sync", "-E", "UTF8")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        done = self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                         str(self.root / "server.log"), "-w", "-t", "60", "start")
        if done.returncode:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}{self.log()}")
        return self

    def log(self) -> str:
        """The server's log."""
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")
        return ""

    def url(self, database: str = "postgres") -> str:
        """A URL for a database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast) and remove its folder."""
        with contextlib.suppress(Exception):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_available() -> str | None:
    """None when a server can be started here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL is not installed ({PG_BIN}/initdb missing: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session."""
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    server = PostgresServer().start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # pg_ctl -w waited already; this only guards a slow first connect
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", server.port)) == 0:
                break
        time.sleep(0.1)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.new_database()
