"""`cc-gateway usage`: who spent what, on which model, route, day or session."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cc_gateway.cli.app import app
from cc_gateway.cli.ui import err, out

BY = ("person", "model", "route", "day", "session")


@app.command("usage")
def usage_cmd(
    by: Annotated[str, typer.Option("--by", help="Group by person, model, route, day or session.")] = "person",
    since: Annotated[str, typer.Option("--since", help="From a duration ago (7d, 24h, 2w) or a date (2026-12-01).")] = "7d",
    person: Annotated[str | None, typer.Option("--person", help="Only this person's usage.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
    url: Annotated[str | None, typer.Option("--url", help="Ask a running gateway (its admin endpoint) instead.")] = None,
    key: Annotated[str | None, typer.Option("--key", envvar="CC_GATEWAY_KEY",
                                            help="Key for --url [default: the folder's master key].")] = None,
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Gateway folder [default: current].")] = None,
) -> None:
    """Usage report: requests, tokens, cost, cache hit rate, error rate and a per-day sparkline."""
    from cc_gateway.core.errors import UsageError
    from cc_gateway.team import periods

    if by not in BY:
        raise UsageError(f"--by {by!r} is not one of {', '.join(BY)}", hint="e.g. --by model")
    if as_json and as_csv:
        raise UsageError("--json and --csv are exclusive")
    periods.parse_since(since, datetime.now(UTC))  # a bad --since is one line, before any connection
    if url:
        data = _from_gateway(url, key, folder, by=by, since=since, person=person)
    else:
        from cc_gateway.cli.keys import open_store
        from cc_gateway.team import usage

        with open_store(folder, create=False) as store:
            data = usage.report(store, by=by, since=periods.parse_since(since, datetime.now(UTC)),
                                person=person).as_dict()
    if as_json:
        out().print_json(json.dumps(data))
    elif as_csv:
        typer.echo(to_csv(data), nl=False)
    else:
        show(data)


def _from_gateway(url: str, key: str | None, folder: Path | None, **params: Any) -> dict[str, Any]:
    import httpx

    from cc_gateway.core.errors import GatewayError

    if not key:
        try:
            from cc_gateway.gateway.folder import load_gateway

            key = load_gateway(folder).master_key
        except GatewayError:
            key = None
    if not key:
        raise GatewayError("--url needs a key", hint="pass --key (the master key, or your own key for your own usage)")
    query = {k: v for k, v in params.items() if v}
    try:
        answer = httpx.get(url.rstrip("/") + "/cc-gateway/usage", params=query,
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
    except httpx.HTTPError as exc:
        raise GatewayError(f"cannot reach {url}: {type(exc).__name__}", hint="is `cc-gateway serve` running there?") from None
    if answer.status_code != 200:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:200]
        raise GatewayError(f"{url} answered {answer.status_code}: {message}")
    return answer.json()


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _tokens(value: int) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{suffix}"
    return str(value)


def show(data: dict[str, Any]) -> None:
    """Print the report as a table with totals."""
    from rich.table import Table

    from cc_gateway.team.usage import sparkline

    since = data["since"][:16].replace("T", " ")
    title = f"usage by {data['by']} since {since} UTC" + (f" for {data['person']}" if data.get("person") else "")
    table = Table(title=title, title_justify="left", show_footer=True)
    total = data["total"]
    columns = [
        (data["by"], "total", "left"), ("requests", str(total["requests"]), "right"),
        ("input", _tokens(total["input_tokens"]), "right"), ("output", _tokens(total["output_tokens"]), "right"),
        ("cache read", _tokens(total["cache_read_tokens"]), "right"),
        ("cache write", _tokens(total["cache_write_tokens"]), "right"),
        ("cache hit", _percent(total["cache_hit_rate"]), "right"), ("cost", f"${total['cost']:,.2f}", "right"),
        ("errors", _percent(total["error_rate"]), "right"), ("avg ms", f"{total['latency_ms']:,.0f}", "right"),
        ("per day", sparkline(total["daily"]), "left"),
    ]
    for name, footer, justify in columns:
        table.add_column(name, footer=footer, justify=justify)
    for row in data["rows"]:
        cost = f"${row['cost']:,.2f}" + ("*" if row["unpriced"] else "")
        table.add_row(row["name"], str(row["requests"]), _tokens(row["input_tokens"]), _tokens(row["output_tokens"]),
                      _tokens(row["cache_read_tokens"]), _tokens(row["cache_write_tokens"]),
                      _percent(row["cache_hit_rate"]), cost, _percent(row["error_rate"]),
                      f"{row['latency_ms']:,.0f}", sparkline(row["daily"]))
    if not data["rows"]:
        err().print(f"no requests recorded since {since} UTC")
        return
    out().print(table)
    if total["unpriced"]:
        err().print(f"[yellow]*[/] {total['unpriced']} request(s) on routes without a price have no cost "
                    "(set one with `cc-gateway add-model ... --price-in --price-out`; `cc-gateway doctor` lists them)")


def to_csv(data: dict[str, Any]) -> str:
    """The report as CSV (one line per group, then the total)."""
    buffer = io.StringIO()
    fields = ["name", "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "cost", "unpriced", "errors", "cache_hit_rate", "error_rate", "latency_ms"]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([data["by"], *fields[1:]])
    for row in [*data["rows"], data["total"]]:
        writer.writerow([row[f] for f in fields])
    return buffer.getvalue()
