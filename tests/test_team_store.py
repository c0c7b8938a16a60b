"""The team store on real SQLite files and a real PostgreSQL server: one schema, one code path."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cc_gateway.core.errors import UsageError
from cc_gateway.team import keys, ledger, limits, live, periods, usage
from cc_gateway.team.store import LATEST, Store, StoreError, default_url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind."""
    if request.param == "sqlite":
        return default_url(tmp_path)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str):
    with Store.open(store_url) as opened:
        opened.migrate()
        yield opened


def test_migrate_is_versioned_and_idempotent(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert store.version() == 0
        assert store.migrate() == list(range(1, LATEST + 1))
        assert store.migrate() == []
        assert store.version() == LATEST
        store.check_writable()
        assert store.query("SELECT COUNT(*) FROM ccg_usage")[0][0] == 0  # the probe row was rolled back


def test_concurrent_migrations_apply_once(store_url: str) -> None:
    results: list[list[int]] = []
    errors: list[Exception] = []

    def migrate() -> None:
        try:
            with Store.open(store_url) as store:
                results.append(store.migrate())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(map(len, results)) == [0, 0, 0, LATEST]


def test_keys_are_stored_hashed(store: Store) -> None:
    key = keys.add(store, "alice", models=("claude-sonnet-*",))
    assert key.startswith("sk-") and len(key) >= 43
    dump = repr(store.query("SELECT * FROM ccg_keys"))
    assert key not in dump and key[3:20] not in dump
    record = keys.get(store, "alice")
    assert record.key_hash == keys.hash_key(key) and record.key_hint == key[-4:]
    assert record.models == ("claude-sonnet-*",) and record.state(time.time()) == "active"
    with pytest.raises(UsageError, match="already has a key"):
        keys.add(store, "alice")
    new = keys.rotate(store, "alice")
    assert new != key and keys.get(store, "alice").key_hash == keys.hash_key(new)
    keys.revoke(store, "alice")
    assert keys.get(store, "alice").state(time.time()) == "revoked"
    again = keys.add(store, "alice")  # a revoked name may get a fresh key
    assert keys.get(store, "alice").key_hash == keys.hash_key(again)


def test_unknown_person_and_bad_names(store: Store) -> None:
    keys.add(store, "bob")
    with pytest.raises(keys.UnknownPerson, match="no key for 'carol'") as caught:
        keys.revoke(store, "carol")
    assert "bob" in (caught.value.hint or "")
    for bad in ("", "has space", "-dash", "x" * 101, "(master)"):
        with pytest.raises(UsageError):
            keys.add(store, bad)


def test_expired_key(store: Store) -> None:
    keys.add(store, "eve", expires_at=time.time() - 1)
    assert keys.get(store, "eve").state(time.time()) == "expired"


def test_limits_upsert_on_scope_and_period(store: Store) -> None:
    first = limits.set_limit(store, "user", "alice", "day", 2000)
    second = limits.set_limit(store, "user", "alice", "day", 2500)
    assert first.id == second.id and second.amount_cents == 2500
    team = limits.set_limit(store, "organization", "ignored", "month", 100000)
    assert team.person == ""
    assert [r.scope for r in limits.all_limits(store)] == ["user", "organization"] or len(limits.all_limits(store)) == 2
    assert limits.delete(store, first.id) and not limits.delete(store, first.id)


def _record(i: int, person: str, **extra: object) -> dict:
    base = {"ts": time.time(), "person": person, "model": "m", "route": "r", "status": 200, "stream": False,
            "input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 3, "cache_write_tokens": 2}
    return {**base, **extra}


PRICES = {"input_cost_per_token": 1e-3, "output_cost_per_token": 2e-3}


def test_ledger_batches_merge_and_upsert(store: Store) -> None:
    book = ledger.Ledger()
    book.add("r1", {"ts": time.time(), "person": "alice", "status": 200, "stream": True})
    book.add("r1", {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 0, "cache_write_tokens": 0}, PRICES)
    assert book.unwritten_cost("alice") == pytest.approx(10e-3 + 10e-3)
    ledger.write(store, book.take())
    book.written()
    assert book.unwritten_cost("alice") == 0
    # An update arriving after the record was written completes it; NULLs keep stored values.
    book.add("r1", {"ts": time.time() + 99, "output_tokens": 7, "latency_ms": 12.5})
    ledger.write(store, book.take())
    row = store.query("SELECT person, status, output_tokens, input_tokens, latency_ms, stream FROM ccg_usage")
    assert row == [("alice", 200, 7, 10, 12.5, 1)]


def test_live_snapshot_identifies_and_enforces(store: Store, store_url: str) -> None:
    key = keys.add(store, "alice")
    limits.set_limit(store, "user", "alice", "day", 100)  # $1.00/day
    team = live.Team(store_url)
    team.load()
    assert team.identify(key) == live.Identity("alice", "active", ())
    assert team.identify("sk-not-a-key") is None
    assert team.limit_hit("alice") is None
    team.record("q1", _record(1, "alice", input_tokens=600, output_tokens=200, cache_read_tokens=0,
                              cache_write_tokens=0), PRICES)
    hit = team.limit_hit("alice")  # counted before it is written
    assert hit is not None
    tomorrow = periods.period_end("day", datetime.now(UTC))
    assert hit.message == f"spend limit $1.00/day reached for alice (spent $1.00); resets {periods.format_reset(tomorrow)}"
    assert 0 < hit.retry_after <= 86400
    team.cycle()  # written, snapshot re-read: still counted once
    assert team.ledger.unwritten_cost("alice") == 0
    assert team.snapshot.spend[("alice", "day")] == pytest.approx(1.0)
    keys.revoke(store, "alice")
    team.cycle()
    assert team.identify(key).state == "revoked"


def test_team_wide_limit(store: Store, store_url: str) -> None:
    limits.set_limit(store, "organization", "", "month", 50)
    team = live.Team(store_url)
    team.load()
    team.record("q1", _record(1, "bob", input_tokens=600, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0),
                PRICES)
    hit = team.limit_hit("carol")
    assert hit is not None and "reached for the team" in hit.message and "$0.50/month" in hit.message


def test_usage_report_groups_and_rates(store: Store) -> None:
    book = ledger.Ledger()
    book.add("a", _record(1, "alice", cost=0.5))
    book.add("b", _record(2, "alice", status=500, cost=None, input_tokens=None))
    book.add("c", _record(3, "bob", cost=0.25, model="other"))
    ledger.write(store, book.take())
    since = datetime.now(UTC) - timedelta(days=2)
    rep = usage.report(store, by="person", since=since)
    assert [r.name for r in rep.rows] == ["alice", "bob"]
    alice = rep.rows[0]
    assert (alice.requests, alice.errors, alice.cost, alice.input_tokens) == (2, 1, 0.5, 10)
    assert alice.error_rate == 0.5 and rep.total.requests == 3
    assert rep.total.cache_hit_rate == pytest.approx(9 / (20 + 9 + 6))
    assert len(rep.days) == 3 and rep.total.daily[-1] == pytest.approx(0.75)
    assert [r.name for r in usage.report(store, by="model", since=since).rows] == ["m", "other"]
    day = usage.report(store, by="day", since=since, person="bob")
    assert [r.name for r in day.rows] == [datetime.now(UTC).strftime("%Y-%m-%d")] and day.total.requests == 1


def test_unreachable_postgres_is_one_line() -> None:
    with pytest.raises(StoreError) as caught:
        Store.open("postgresql://u:secretpw@127.0.0.1:1/db", timeout=2)
    message = str(caught.value)
    assert "cannot reach the team store" in message and "secretpw" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20/day", periods.Limit("day", 2000)), ("$12.50/week", periods.Limit("week", 1250)),
     ("150/monthly", periods.Limit("month", 15000)), ("0/day", periods.Limit("day", 0))],
)
def test_parse_limit(text: str, expected: periods.Limit) -> None:
    assert periods.parse_limit(text) == expected


@pytest.mark.parametrize(("text", "message"), [("5/fortnight", "unknown period 'fortnight'"),
                                               ("-5/day", "negative"), ("5", "not AMOUNT/PERIOD"),
                                               ("abc/day", "not a number")])
def test_parse_limit_rejects(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        periods.parse_limit(text)


def test_period_boundaries() -> None:
    now = datetime(2026, 12, 4, 23, 59, tzinfo=UTC)  # a Friday
    assert periods.period_end("day", now) == datetime(2026, 12, 5, tzinfo=UTC)
    assert periods.period_start("week", now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert periods.period_end("month", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert periods.period_end("month", datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2026, 2, 1, tzinfo=UTC)


def test_model_allowlist() -> None:
    assert keys.allows((), "anything")
    assert keys.allows(("claude-sonnet-*",), "claude-sonnet-5", "")
    assert keys.allows(("sonnet",), "claude-sonnet-5", "sonnet")
    assert not keys.allows(("claude-haiku-*",), "claude-opus-4-8", "claude-opus-4-8")


def test_copy_store_from_sqlite_to_postgres(tmp_path: Path, pg_url: str) -> None:
    from cc_gateway.team.store import copy_store

    with Store.open(default_url(tmp_path)) as source, Store.open(pg_url) as target:
        source.migrate()
        key = keys.add(source, "alice")
        limits.set_limit(source, "user", "alice", "day", 500)
        book = ledger.Ledger()
        book.add("r1", _record(1, "alice", cost=0.5))
        ledger.write(source, book.take())
        assert copy_store(source, target) == {"ccg_keys": 1, "ccg_limits": 1, "ccg_usage": 1}
        assert copy_store(source, target)["ccg_usage"] == 1  # again: nothing doubled
        assert keys.get(target, "alice").key_hash == keys.hash_key(key)
        assert target.query("SELECT COUNT(*), SUM(cost) FROM ccg_usage")[0] == (1, 0.5)


def test_admin_api_shapes_and_permissions(tmp_path: Path) -> None:
    from cc_gateway.team import admin

    url = default_url(tmp_path)
    with Store.open(url) as store:
        store.migrate()
        keys.add(store, "alice")
    master, alice = admin.Caller(master=True), admin.Caller(master=False, person="alice")
    body = json.dumps({"scope": {"type": "user", "user_id": "alice"}, "amount": "2000", "period": "daily"}).encode()
    status, made = admin.handle(url, master, "POST", admin.SPEND_LIMITS, "", body)
    assert status == 200 and made["amount"] == "2000" and made["period"] == "daily" and made["currency"] == "USD"
    assert admin.handle(url, alice, "POST", admin.SPEND_LIMITS, "", body)[0] == 403
    assert admin.handle(url, alice, "GET", admin.KEYS, "", b"")[0] == 403
    status, listed = admin.handle(url, master, "GET", admin.SPEND_LIMITS, "scope_type=organization", b"")
    assert status == 200 and listed["data"] == []
    bad = json.dumps({"scope": {"type": "user", "user_id": "alice"}, "amount": 20, "period": "daily"}).encode()
    assert admin.handle(url, master, "POST", admin.SPEND_LIMITS, "", bad)[0] == 400
    fortnight = json.dumps({"scope": {"type": "organization"}, "amount": "1", "period": "fortnightly"}).encode()
    status, answer = admin.handle(url, master, "POST", admin.SPEND_LIMITS, "", fortnight)
    assert status == 400 and "unknown period" in answer["error"]["message"]
    status, mine = admin.handle(url, alice, "GET", admin.USAGE, "since=1d", b"")
    assert status == 200 and mine["person"] == "alice"
    assert admin.handle(url, alice, "GET", admin.USAGE, "person=bob", b"")[0] == 403
    status, added = admin.handle(url, master, "POST", admin.KEYS, "", json.dumps({"name": "bob", "limits": ["5/day"]}).encode())
    assert status == 200 and added["key"].startswith("sk-") and added["name"] == "bob"
    status, gone = admin.handle(url, master, "DELETE", f"{admin.SPEND_LIMITS}/{made['id']}", "", b"")
    assert gone == {"id": made["id"], "type": "spend_limit_deleted"}
    assert admin.handle(url, master, "GET", f"{admin.SPEND_LIMITS}/{made['id']}", "", b"")[0] == 404


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"input_tokens": 30, "output_tokens": 11, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2},
         {"input_tokens": 30, "output_tokens": 11, "cache_read_tokens": 5, "cache_write_tokens": 2}),
        ({"prompt_tokens": 37, "completion_tokens": 11, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2},
         {"input_tokens": 30, "output_tokens": 11, "cache_read_tokens": 5, "cache_write_tokens": 2}),
        ({"prompt_tokens": 40, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 10}},
         {"input_tokens": 30, "output_tokens": 3, "cache_read_tokens": 10}),
        ({"input_tokens": 40, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 10}},
         {"input_tokens": 30, "output_tokens": 3, "cache_read_tokens": 10}),
        ({"output_tokens": 9}, {"output_tokens": 9}),
    ],
)
def test_usage_is_normalised_to_anthropic_counts(usage: dict, expected: dict) -> None:
    from cc_gateway.runtime.team import normalise

    assert normalise(usage) == expected


def test_week_spend_adds_past_days_to_today(store: Store) -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a Friday: the week began on Monday the 30th
    keys.add(store, "alice")
    limits.set_limit(store, "user", "alice", "week", 1000)
    limits.set_limit(store, "user", "alice", "day", 1000)
    book = ledger.Ledger()
    for i, day in enumerate((datetime(2026, 11, 29, 23, tzinfo=UTC), datetime(2026, 11, 30, 1, tzinfo=UTC),
                             datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 4, 8, tzinfo=UTC))):
        book.add(f"w{i}", _record(i, "alice", ts=day.timestamp(), cost=1.0 + i))
    ledger.write(store, book.take())
    past: dict = {}
    snap = live.read_snapshot(store, now, past)
    assert snap.spend[("alice", "day")] == 4.0  # today only
    assert snap.spend[("alice", "week")] == 2.0 + 3.0 + 4.0  # Sunday the 29th is last week
    assert len(past) == 1  # the days before today were summed once and kept


def test_a_database_url_password_is_a_secret_for_the_logs() -> None:
    from cc_gateway.core.secrets import secret_values

    found = secret_values({"DATABASE_URL": "postgresql://team:pw-Zq81x@db:5432/gw", "CC_GATEWAY_PORT": "4000"})
    assert found == ["pw-Zq81x"]
