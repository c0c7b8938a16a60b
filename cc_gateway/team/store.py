"""The team store: SQLite (WAL) in the gateway folder, or PostgreSQL through DATABASE_URL.

One schema and one code path for both: plain SQL written with `?` placeholders (turned into `%s`
for psycopg), a few type names filled in per dialect, and versioned migrations recorded in
`ccg_schema`. Every table is prefixed `ccg_` so that a PostgreSQL database shared with other
software stays tidy.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cc_gateway.core.errors import ConfigError, GatewayError

DB_FILE = "team.db"
_TYPES = {
    "sqlite": {"real": "REAL", "bigint": "INTEGER", "day": "CAST(ts / 86400 AS INTEGER)"},
    "postgres": {"real": "DOUBLE PRECISION", "bigint": "BIGINT", "day": "CAST(FLOOR(ts / 86400) AS BIGINT)"},
}


@dataclass(frozen=True)
class Migration:
    """One schema step; `{real}` and `{bigint}` are filled in per dialect."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "keys, limits and the usage ledger",
        (
            """CREATE TABLE ccg_keys (
                name TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL UNIQUE,
                key_hint TEXT NOT NULL,
                models TEXT NOT NULL DEFAULT '',
                created_at {real} NOT NULL,
                expires_at {real},
                revoked_at {real},
                last_used_at {real}
            )""",
            """CREATE TABLE ccg_limits (
                id TEXT PRIMARY KEY,
                scope TEXT NOT NULL,
                person TEXT NOT NULL DEFAULT '',
                period TEXT NOT NULL,
                amount_cents {bigint},
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL,
                UNIQUE (scope, person, period)
            )""",
            """CREATE TABLE ccg_usage (
                request_id TEXT PRIMARY KEY,
                ts {real} NOT NULL,
                person TEXT,
                session_id TEXT,
                agent_id TEXT,
                path TEXT,
                model TEXT,
                route TEXT,
                upstream TEXT,
                input_tokens {bigint},
                output_tokens {bigint},
                cache_read_tokens {bigint},
                cache_write_tokens {bigint},
                cost {real},
                latency_ms {real},
                status INTEGER,
                stream INTEGER
            )""",
            "CREATE INDEX ccg_usage_person_ts ON ccg_usage (person, ts)",
            "CREATE INDEX ccg_usage_ts ON ccg_usage (ts)",
        ),
    ),
)
LATEST = MIGRATIONS[-1].version


class StoreError(GatewayError):
    """The store cannot be reached, read or written."""


def default_url(folder: Path) -> str:
    """The SQLite store of a gateway folder."""
    return f"sqlite:///{(folder / DB_FILE).resolve()}"


def resolve_url(folder: Path, environ: dict[str, str]) -> str:
    """DATABASE_URL when set (PostgreSQL), else the folder's SQLite file."""
    url = (environ.get("DATABASE_URL") or "").strip()
    return url or default_url(folder)


def dialect_of(url: str) -> str:
    """`sqlite` or `postgres` for a store URL; ConfigError for anything else."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgres", "postgresql"):
        return "postgres"
    raise ConfigError(
        f"DATABASE_URL {display_url(url)!r} is not a PostgreSQL URL",
        hint="use postgresql://USER:PASSWORD@HOST:PORT/DB (or unset it for the folder's SQLite file)",
    )


def display_url(url: str) -> str:
    """The URL with its password masked (safe to print and log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///` URL."""
    return Path(urlsplit(url).path)


class Store:
    """One connection to the team store (use one per thread)."""

    def __init__(self, url: str, connection: Any, dialect: str) -> None:
        self.url = url
        self.connection = connection
        self.dialect = dialect
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connecting

    @classmethod
    def open(cls, url: str, *, create: bool = True, timeout: float = 5.0) -> Store:
        """Connect (creating an SQLite file when `create`); StoreError in one line when it fails."""
        dialect = dialect_of(url)
        if dialect == "sqlite":
            return cls(url, _connect_sqlite(sqlite_path(url), create, timeout), dialect)
        return cls(url, _connect_postgres(url, timeout), dialect)

    def close(self) -> None:
        """Close the connection (never raises)."""
        with contextlib.suppress(Exception):
            self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """Where the store is, for messages (password masked)."""
        return str(sqlite_path(self.url)) if self.dialect == "sqlite" else display_url(self.url)

    # ------------------------------------------------------------------ SQL

    def sql(self, text: str) -> str:
        """Adapt `?` placeholders and `{type}` names to this dialect."""
        if "{" in text:
            text = text.format(**_TYPES[self.dialect])
        return text.replace("%", "%%").replace("?", "%s") if self.dialect == "postgres" else text

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a SELECT and return every row."""
        with self._errors("read"):
            cursor = self.connection.execute(self.sql(text), tuple(params))
            return list(cursor.fetchall())

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        with self._errors("write"):
            cursor = self.connection.execute(self.sql(text), tuple(params))
            return cursor.rowcount

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many rows."""
        if not rows:
            return
        with self._errors("write"):
            if self.dialect == "sqlite":
                self.connection.executemany(self.sql(text), rows)
            else:
                with self.connection.cursor() as cursor:
                    cursor.executemany(self.sql(text), rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """All statements inside commit together or not at all (writers are serialised)."""
        with self._lock:
            if self.dialect == "sqlite":
                with self._errors("write"):
                    self.connection.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self.connection.execute("ROLLBACK")
                    raise
                with self._errors("write"):
                    self.connection.execute("COMMIT")
            else:
                with self._errors("write"), self.connection.transaction():
                    yield self

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"team store {self.where}: cannot {doing}: {exc}", hint=_sqlite_hint(exc)) from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StoreError(f"team store {self.where}: cannot {doing}: {message}") from None
            raise

    # ------------------------------------------------------------------ migrations

    def version(self) -> int:
        """The schema version this store is at (0: not created yet)."""
        if not self._has_schema_table():
            return 0
        rows = self.query("SELECT MAX(version) FROM ccg_schema")
        return int(rows[0][0] or 0)

    def _has_schema_table(self) -> bool:
        if self.dialect == "sqlite":
            rows = self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ccg_schema'")
        else:
            rows = self.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'ccg_schema'"
                              " AND table_schema = current_schema()")
        return bool(rows)

    def migrate(self) -> list[int]:
        """Bring the schema to the latest version; return the versions applied (safe to run concurrently)."""
        applied: list[int] = []
        with self.transaction():
            if self.dialect == "postgres":
                self.query("SELECT pg_advisory_xact_lock(4216016)")  # one migrator at a time
            self.execute("CREATE TABLE IF NOT EXISTS ccg_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                         " applied_at {real} NOT NULL)")
            current = int(self.query("SELECT MAX(version) FROM ccg_schema")[0][0] or 0)
            if current > LATEST:
                raise StoreError(
                    f"team store {self.where} is at schema version {current}, newer than this cc-gateway ({LATEST})",
                    hint="upgrade cc-gateway on this machine",
                )
            for step in MIGRATIONS:
                if step.version <= current:
                    continue
                for statement in step.statements:
                    self.execute(statement)
                self.execute("INSERT INTO ccg_schema (version, name, applied_at) VALUES (?, ?, ?)",
                             (step.version, step.name, time.time()))
                applied.append(step.version)
        return applied

    def check_writable(self) -> None:
        """Write and roll back a row (StoreError when the store is read-only)."""
        marker = f"ccg-probe-{time.time_ns()}"
        try:
            with self.transaction():
                self.execute("INSERT INTO ccg_usage (request_id, ts) VALUES (?, ?)", (marker, 0.0))
                raise _Rollback
        except _Rollback:
            pass


class _Rollback(Exception):
    pass


def _sqlite_hint(exc: sqlite3.Error) -> str | None:
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return "make the gateway folder and team.db writable by the user running cc-gateway"
    if "locked" in text or "busy" in text:
        return "another process holds a write lock; retry, or use PostgreSQL (DATABASE_URL) for many replicas"
    if "malformed" in text or "not a database" in text:
        return "the file is damaged or not an SQLite database: restore it from a backup"
    return None


def _connect_sqlite(path: Path, create: bool, timeout: float) -> sqlite3.Connection:
    if not create and not path.exists():
        raise StoreError(f"team store {path} does not exist", hint="run `cc-gateway keys add NAME` or `cc-gateway serve` once")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses no committed write
        connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    except sqlite3.Error as exc:
        raise StoreError(f"team store {path}: cannot open: {exc}", hint=_sqlite_hint(exc)) from None
    except OSError as exc:
        raise StoreError(f"team store {path}: cannot open: {exc.strerror}") from None
    return connection


_PG_NOISE = re.compile(r"^connection (?:failed|to server at [^:]*?) ?:?\s*", re.I)


def _connect_postgres(url: str, timeout: float) -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "DATABASE_URL is set but psycopg (PostgreSQL's driver) is not installed",
            hint="pip install 'cc-gateway[postgres]' (psycopg 3) into cc-gateway's environment",
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
    except psycopg.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[-1] if lines else type(exc).__name__
        raise StoreError(
            f"cannot reach the team store DATABASE_URL={display_url(url)}: {reason}",
            hint="check that PostgreSQL is running and the URL (host, port, user, password, database) is right",
        ) from None


TEAM_SWITCH = "CC_GATEWAY_TEAM"


def team_url(folder: Path, environ: dict[str, str]) -> str | None:
    """The team store serve uses for a gateway folder, or None when the folder is not a team gateway.

    On when DATABASE_URL is set, CC_GATEWAY_TEAM is true (`init --team` writes it), or the folder
    already has a team.db (`keys add` creates it); CC_GATEWAY_TEAM=false turns it off.
    """
    switch = (environ.get(TEAM_SWITCH) or "").strip().lower()
    if switch in ("0", "false", "no", "off"):
        return None
    if (environ.get("DATABASE_URL") or "").strip() or switch in ("1", "true", "yes", "on"):
        return resolve_url(folder, environ)
    return default_url(folder) if (folder / DB_FILE).exists() else None


COPIED_TABLES = ("ccg_keys", "ccg_limits", "ccg_usage")


def copy_store(source: Store, target: Store, batch: int = 5000) -> dict[str, int]:
    """Copy keys, limits and the ledger into another store (rows already there are kept); return counts."""
    target.migrate()
    counts: dict[str, int] = {}
    for table in COPIED_TABLES:
        columns = [row[1] for row in source.query(f"PRAGMA table_info({table})")] if source.dialect == "sqlite" else [
            row[0] for row in source.query("SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                                           " AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]
        key = {"ccg_keys": "name", "ccg_limits": "id", "ccg_usage": "request_id"}[table]
        insert = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
                  f" ON CONFLICT ({key}) DO NOTHING")
        rows = source.query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}")
        with target.transaction():
            for start in range(0, len(rows), batch):
                target.executemany(insert, rows[start : start + batch])
        counts[table] = len(rows)
    return counts
