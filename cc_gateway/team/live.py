"""What a serving process knows about the team, kept in memory and refreshed off the request path.

A background thread (started lazily in each worker, after any fork) loops every `interval` seconds:
it writes the ledger's pending records, then re-reads the keys, the limits and this period's spend.
The request path only reads that snapshot and adds to the ledger, so it never waits for the store;
a key revoked (or a limit lowered) on any replica takes effect here within one interval plus a query.
When the store cannot be reached the last snapshot stays in use and records wait in memory.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cc_gateway.team import keys as keys_mod
from cc_gateway.team import ledger as ledger_mod
from cc_gateway.team import limits as limits_mod
from cc_gateway.team.periods import Limit, limit_message, period_end, period_start
from cc_gateway.team.store import Store, StoreError

log = logging.getLogger("cc_gateway.team")

DEFAULT_INTERVAL = 0.5
TEAM_WIDE = "the team"


@dataclass
class Snapshot:
    """Keys, limits and spend as last read from the store."""

    keys: dict[str, keys_mod.KeyRecord] = field(default_factory=dict)  # hash -> record
    user_limits: dict[str, list[Limit]] = field(default_factory=dict)  # person -> limits
    team_limits: list[Limit] = field(default_factory=list)
    spend: dict[tuple[str, str], float] = field(default_factory=dict)  # (person, period) -> USD
    team_spend: dict[str, float] = field(default_factory=dict)  # period -> USD
    starts: dict[str, float] = field(default_factory=dict)  # period -> its start when read
    loaded_at: float = 0.0


@dataclass(frozen=True)
class Identity:
    """Who a presented key belongs to, and whether it is usable."""

    name: str
    state: str  # active | revoked | expired
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class LimitHit:
    """A limit a request would go past: the 429's message and Retry-After."""

    message: str
    retry_after: int
    resets: datetime


class Team:
    """One process's view of the team store."""

    def __init__(self, url: str, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.url = url
        self.interval = interval
        self.snapshot = Snapshot()
        self.ledger = ledger_mod.Ledger()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._store: Store | None = None
        self._last_error = 0.0
        self._past: dict = {}  # read_snapshot's cache of spend before today

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Read the snapshot now (serve does this once before serving); StoreError when unreachable."""
        with Store.open(self.url) as store:
            self.snapshot = read_snapshot(store)

    def ensure_running(self) -> None:
        """Start this process's background thread (again after a fork)."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._store = None  # a connection inherited through fork is never used
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cc-gateway-team", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is pending and stop the thread."""
        if self._thread is None or self._pid != os.getpid():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def flush(self) -> None:
        """Ask the thread to write and refresh now (does not wait)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.cycle()
        self.cycle()
        if self._store is not None:
            self._store.close()

    def cycle(self) -> None:
        """Write pending records, then re-read the snapshot (one pass of the thread)."""
        batch = self.ledger.take()
        try:
            if self._store is None:
                self._store = Store.open(self.url)
            ledger_mod.write(self._store, batch)
            self.snapshot = read_snapshot(self._store, past=self._past)
            self.ledger.written()
        except StoreError as exc:
            self.ledger.put_back(batch)
            if self._store is not None:
                self._store.close()
                self._store = None
            now = time.monotonic()
            if now - self._last_error > 60:
                self._last_error = now
                log.warning("%s; keeping %d usage record(s) in memory and the last keys/limits", exc, len(self.ledger))
        except Exception:  # never let the thread die: the next pass tries again
            self.ledger.put_back(batch)
            log.exception("team store pass failed")

    # ------------------------------------------------------------------ request path

    def identify(self, key: str) -> Identity | None:
        """The person a presented key belongs to (any state), or None for an unknown key."""
        record = self.snapshot.keys.get(keys_mod.hash_key(key))
        if record is None:
            return None
        return Identity(record.name, record.state(time.time()), record.models)

    def limit_hit(self, person: str, now: datetime | None = None) -> LimitHit | None:
        """The limit this person's (or the team's) spend so far has reached, if any (the one resetting last)."""
        now = now or datetime.now(UTC)
        snap = self.snapshot
        hits: list[LimitHit] = []
        for limit in snap.user_limits.get(person, ()):
            spent = self._spent(snap, limit.period, person, now)
            if spent >= limit.amount_cents / 100:
                hits.append(_hit(person, limit, spent, now))
        for limit in snap.team_limits:
            spent = self._spent(snap, limit.period, None, now)
            if spent >= limit.amount_cents / 100:
                hits.append(_hit(TEAM_WIDE, limit, spent, now))
        return max(hits, key=lambda h: h.resets) if hits else None

    def _spent(self, snap: Snapshot, period: str, person: str | None, now: datetime) -> float:
        current = period_start(period, now).timestamp() == snap.starts.get(period)
        if person is None:
            stored = snap.team_spend.get(period, 0.0) if current else 0.0
        else:
            stored = snap.spend.get((person, period), 0.0) if current else 0.0
        return stored + self.ledger.unwritten_cost(person)

    def record(self, request_id: str, fields: dict[str, Any], prices: dict[str, float] | None = None) -> None:
        """Add (or complete) a request's ledger record; written within one interval."""
        self.ledger.add(request_id, fields, prices)


def _hit(who: str, limit: Limit, spent: float, now: datetime) -> LimitHit:
    resets = period_end(limit.period, now)
    seconds = max(1, int((resets - now).total_seconds() + 0.999))
    return LimitHit(limit_message(who, limit, spent, resets), seconds, resets)


#: Spend before today changes only through late updates: re-read it at most this often (seconds).
PAST_TTL = 60.0


def read_snapshot(store: Store, now: datetime | None = None, past: dict | None = None) -> Snapshot:
    """Read keys, limits and the current periods' spend (only for the periods some limit uses).

    Each pass sums today's records only; a week's or month's days before today are summed once and
    kept in `past` (a cache the caller owns) for PAST_TTL seconds, so a pass costs the same on the
    last day of a month as on the first.
    """
    now = now or datetime.now(UTC)
    past = {} if past is None else past
    snap = Snapshot(loaded_at=time.time())
    snap.keys = {k.key_hash: k for k in keys_mod.all_keys(store)}
    for record in limits_mod.all_limits(store):
        limit = record.limit
        if limit is None:
            continue
        if record.scope == limits_mod.ORGANIZATION:
            snap.team_limits.append(limit)
        else:
            snap.user_limits.setdefault(record.person, []).append(limit)
    periods = {lim.period for lim in snap.team_limits} | {lim.period for ls in snap.user_limits.values() for lim in ls}
    if not periods:
        return snap
    today = period_start("day", now).timestamp()
    sums = _sums(store, "ts >= ?", (today,))
    for period in sorted(periods):
        start = period_start(period, now).timestamp()
        snap.starts[period] = start
        totals = dict(sums)
        if start < today:
            cached = past.get((start, today))
            if cached is None or time.monotonic() - cached[0] > PAST_TTL:
                cached = past[(start, today)] = (time.monotonic(), _sums(store, "ts >= ? AND ts < ?", (start, today)))
            for person, amount in cached[1].items():
                totals[person] = totals.get(person, 0.0) + amount
        for person, amount in totals.items():
            snap.spend[(person, period)] = amount
        snap.team_spend[period] = sum(totals.values())
    return snap


def _sums(store: Store, where: str, params: tuple) -> dict[str, float]:
    rows = store.query(f"SELECT person, SUM(cost) FROM ccg_usage WHERE {where} GROUP BY person", params)
    return {person: float(total or 0.0) for person, total in rows}


_team: Team | None = None
_team_lock = threading.Lock()
ENV_URL = "CC_GATEWAY_TEAM_STORE"


_absent = False  # CC_GATEWAY_TEAM_STORE was read and is not set: no team in this process


def current() -> Team | None:
    """The process's Team when serve enabled one (CC_GATEWAY_TEAM_STORE), else None."""
    global _team, _absent
    if _team is not None:
        if _team._pid != os.getpid():
            _team.ensure_running()
        return _team
    if _absent:
        return None
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        _absent = True
        return None
    with _team_lock:
        if _team is None:
            team = Team(url)
            try:
                team.load()
            except StoreError as exc:  # serve checked the store before; it went away since
                log.warning("%s; starting with no team keys until it is back", exc)
            _team = team
            _team.ensure_running()
    return _team


def shutdown() -> None:
    """Write what is pending and stop the thread (serve calls this when a worker's server has stopped)."""
    if _team is not None:
        _team.stop()


def reset() -> None:
    """Forget the process's Team (tests)."""
    global _team, _absent
    if _team is not None:
        _team.stop()
    _team, _absent = None, False
