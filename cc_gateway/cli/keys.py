"""`cc-gateway keys`: a key per person, their model allowlists and spend limits."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, out

keys_app = typer.Typer(no_args_is_help=True, help="Team keys per person: add, list, revoke, rotate, limit.")
app.add_typer(keys_app, name="keys")

_DirOpt = Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")]


def open_store(folder: Path | None, *, create: bool):
    """The gateway folder's team store, migrated (SQLite team.db, or DATABASE_URL)."""
    from cc_gateway.core.envfile import layered, load_env_file
    from cc_gateway.gateway.folder import locate_config
    from cc_gateway.team.store import Store, resolve_url

    config = locate_config(folder, None)
    env = layered(load_env_file(config.parent / ".env"))
    store = Store.open(resolve_url(config.parent, env), create=create)
    store.migrate()
    return store


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The person (e.g. alice or alice@example.com).")],
    limit: Annotated[list[str], typer.Option("--limit", help="Spend limit AMOUNT/PERIOD (20/day, 150/month); repeatable.")] = [],  # noqa: B006
    models: Annotated[str | None, typer.Option("--models", help="Allowed routes/models, comma-separated globs.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Expire after a duration: 90m, 12h, 30d, 2w.")] = None,
    folder: _DirOpt = None,
) -> None:
    """Create a key for a person and print it once (only its hash is stored)."""
    from cc_gateway.team import keys, limits, periods

    parsed = [periods.parse_limit(text) for text in limit]  # every flag checked before anything is written
    globs = keys.parse_models(models)
    keys.check_name(name)
    expires_at = time.time() + periods.parse_duration(expires).total_seconds() if expires else None
    with open_store(folder, create=True) as store:
        key = keys.add(store, name, models=globs, expires_at=expires_at)
        for item in parsed:
            limits.set_limit(store, limits.USER, name, item.period, item.amount_cents)
    typer.echo(key)
    console = err()
    extras = [f"limit {', '.join(map(str, parsed))}" if parsed else "", f"models {', '.join(globs)}" if globs else "",
              f"expires {_when(expires_at)} UTC" if expires_at else ""]
    details = "; ".join(e for e in extras if e)
    console.print(f"[green]key for {name}[/]" + (f" ({details})" if details else "")
                  + ": shown once, only its hash is stored")
    console.print(f"[dim]give it to {name}; they run:[/] cc-gateway setup-claude --key <key> --url <gateway URL>")


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    folder: _DirOpt = None,
) -> None:
    """List keys: name, state, created, last used, models, limits, spend this period (never a key)."""
    from cc_gateway.team import keys, limits, periods, usage

    now = datetime.now(UTC)
    with open_store(folder, create=False) as store:
        records = keys.all_keys(store)
        stored = limits.all_limits(store)
        rows = []
        for record in records:
            mine = [lim for lim in stored if lim.scope == limits.USER and lim.person == record.name and lim.limit]
            spend = {lim.period: usage.spend_this_period(store, record.name, periods.period_start(lim.period, now).timestamp())
                     for lim in mine}
            rows.append((record, mine, spend))
        team = [lim for lim in stored if lim.scope == limits.ORGANIZATION and lim.limit]
    if as_json:
        data = [{
            "name": r.name, "state": r.state(now.timestamp()), "hint": f"sk-...{r.key_hint}", "models": list(r.models),
            "created_at": r.created_at, "last_used_at": r.last_used_at, "expires_at": r.expires_at,
            "limits": [{"period": lim.period, "amount_cents": lim.amount_cents, "spent": round(spend[lim.period], 6)}
                       for lim in mine],
        } for r, mine, spend in rows]
        out().print_json(json.dumps({"keys": data, "team_limits": [str(lim.limit) for lim in team]}))
        return
    from rich.table import Table

    table = Table(title="team keys", title_justify="left")
    for column in ("name", "state", "key", "created", "last used", "models", "limits (spent this period)"):
        table.add_column(column)
    colours = {"active": "green", "revoked": "red", "expired": "yellow"}
    for record, mine, spend in rows:
        state = record.state(now.timestamp())
        shown = ", ".join(f"{lim.limit} (${spend[lim.period]:,.2f})" for lim in mine) or "-"
        table.add_row(record.name, f"[{colours[state]}]{state}[/]", f"sk-...{record.key_hint}", _when(record.created_at),
                      _when(record.last_used_at), ", ".join(record.models) or "all", shown)
    console = out()
    if rows:
        console.print(table)
    else:
        err().print("no keys yet: add one with `cc-gateway keys add NAME`")
    if team:
        console.print("team-wide limits: " + ", ".join(str(lim.limit) for lim in team))


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The person.")], folder: _DirOpt = None) -> None:
    """Revoke a person's key (401 within a second on every replica)."""
    from cc_gateway.team import keys

    with open_store(folder, create=False) as store:
        keys.revoke(store, name)
    err().print(f"[green]revoked[/] the key of {name}")


@keys_app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="The person.")],
    expires: Annotated[str | None, typer.Option("--expires", help="Expire after a duration: 90m, 12h, 30d, 2w.")] = None,
    folder: _DirOpt = None,
) -> None:
    """Give a person a new key (the old one stops working) and print it once."""
    from cc_gateway.team import keys, periods

    expires_at = time.time() + periods.parse_duration(expires).total_seconds() if expires else None
    with open_store(folder, create=False) as store:
        key = keys.rotate(store, name, expires_at=expires_at)
    typer.echo(key)
    err().print(f"[green]new key for {name}[/]: shown once; the old one no longer works")


@keys_app.command("limit")
def limit_cmd(
    name: Annotated[str | None, typer.Argument(help="The person (or --all for the whole team).")] = None,
    amount: Annotated[str | None, typer.Argument(help="AMOUNT/PERIOD, e.g. 20/day, 100/week, 500/month.")] = None,
    team_wide: Annotated[bool, typer.Option("--all", help="A limit on the whole team's spend.")] = False,
    remove: Annotated[str | None, typer.Option("--remove", help="Remove the limit for this period (day, week, month).")] = None,
    folder: _DirOpt = None,
) -> None:
    """Set (or --remove) a spend limit for a person, or for the whole team with --all."""
    from cc_gateway.core.errors import UsageError
    from cc_gateway.team import keys, limits, periods

    if team_wide and name is not None and amount is None and remove is None:
        name, amount = None, name  # `keys limit --all 500/month`
    if team_wide == (name is not None):
        raise UsageError("name a person or pass --all (not both)", hint="e.g. keys limit alice 20/day, keys limit --all 500/month")
    if (amount is None) == (remove is None):
        raise UsageError("give AMOUNT/PERIOD or --remove PERIOD", hint="e.g. keys limit alice 20/day")
    scope, who = (limits.ORGANIZATION, "the team") if team_wide else (limits.USER, name or "")
    with open_store(folder, create=not team_wide) as store:
        if not team_wide:
            keys.get(store, who)  # an unknown person is an error, not a silent limit
        if remove is not None:
            period = periods.parse_period(remove)
            found = limits.delete_for(store, scope, who, period)
            err().print(f"[green]removed[/] the {period} limit of {who}" if found else f"{who} had no {period} limit")
            return
        parsed = periods.parse_limit(amount or "")
        limits.set_limit(store, scope, who, parsed.period, parsed.amount_cents)
    err().print(f"[green]limit[/] {parsed} for {who} (enforced within a second; periods are UTC)")


@keys_app.command("models")
def models_cmd(
    name: Annotated[str, typer.Argument(help="The person.")],
    models: Annotated[str, typer.Argument(help="Allowed routes/models, comma-separated globs ('' = all).")],
    folder: _DirOpt = None,
) -> None:
    """Set the routes and models a person's key may use."""
    from cc_gateway.team import keys

    globs = keys.parse_models(models)
    with open_store(folder, create=False) as store:
        keys.set_models(store, name, globs)
    err().print(f"[green]{name}[/] may use: {', '.join(globs) or 'every model'}")


@keys_app.command("copy-store")
def copy_store_cmd(
    to: Annotated[str, typer.Argument(help="The target store: postgresql://USER:PASSWORD@HOST:PORT/DB.")],
    folder: _DirOpt = None,
) -> None:
    """Copy keys, limits and the usage ledger from the folder's store to another (SQLite -> PostgreSQL)."""
    from cc_gateway.team.store import Store, copy_store, display_url

    with open_store(folder, create=False) as source, Store.open(to) as target:
        if source.url == target.url:
            from cc_gateway.core.errors import UsageError

            raise UsageError("the target is the store in use", hint="name the new store's URL")
        counts = copy_store(source, target)
    err().print(f"[green]copied[/] {counts['ccg_keys']} key(s), {counts['ccg_limits']} limit(s) and "
                f"{counts['ccg_usage']} usage record(s) to {display_url(to)}")
    err().print("[dim]next:[/] put DATABASE_URL=<that URL> in the gateway's .env and restart `cc-gateway serve`")
