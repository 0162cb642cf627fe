"""``ivr report --from ... --to ...``: contact-center KPIs of live traffic, from the calls the engine stored.

Reads the finished-call records, the agents' state changes and the router's queue events from the
routing store (``--db``, ``DATABASE_URL``, or SQLite at ``IVR_DB_PATH`` / ``./ivr-state.db``) and
computes the KPIs with :func:`routing.kpis.compute_kpis`, the same code the day simulator uses.
The definitions are in ``routing/KPIS.md``. Read-only: nothing is written but the schema upgrade
every store open does.

Exit codes: 0 (also when no call started in the window), 1 the store or the queue file cannot be
read, 2 the command was used wrongly.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from ivr.errors import IvrError

FORMATS = ("table", "csv", "json")
BY_CHOICES = ("queue", "hour", "hour_of_day", "skill", "tree", "channel", "agent")
NO_CALLS = "no calls in that window"


def _store_url(db: Optional[str]) -> str:
    """``--db`` as a URL: a plain path is a SQLite file. A SQLite file that does not exist is an error here
    (a report must not create an empty database for a mistyped path)."""
    from sqlalchemy.engine import make_url

    from routing.store import default_url

    if db and "://" not in db:
        db = f"sqlite+aiosqlite:///{Path(db).expanduser().resolve()}"
    url = db or default_url()
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not Path(u.database).exists():
        raise IvrError(f"no routing database at {u.database}; pass --db PATH-or-URL "
                       "(or set DATABASE_URL / IVR_DB_PATH)")
    return url


async def _read(url: str) -> tuple[list[Any], list[Any], list[Any]]:
    from routing.store import Store

    store = await Store.open(url)
    try:
        return await store.call_records(), await store.agent_events(), await store.call_events()
    finally:
        await store.close()


def _zone(tz: Optional[str]) -> ZoneInfo:
    name = tz or os.environ.get("TZ") or "UTC"
    try:
        return ZoneInfo(name.lstrip(":"))
    except (ZoneInfoNotFoundError, ValueError):
        typer.echo(f"unknown time zone {name!r}; use an IANA name such as America/New_York", err=True)
        raise typer.Exit(2) from None


def _window(from_: Optional[str], to: Optional[str], zone: ZoneInfo) -> tuple[datetime, datetime]:
    from ivr.timeparse import parse_at

    now = datetime.now(UTC)
    try:
        end = parse_at(to, zone, now=now)
        start = parse_at(from_, zone) if from_ else end.astimezone(zone).replace(
            hour=0, minute=0, second=0, microsecond=0)
    except ValueError as exc:
        typer.echo(f"{exc}", err=True)
        raise typer.Exit(2) from None
    if end <= start:
        typer.echo(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})", err=True)
        raise typer.Exit(2)
    return start, end


# ---------------------------------------------------------------------- formatting


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _sec(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}s" if x < 600 else f"{int(x // 60)}m{int(x % 60):02d}s"


def _hms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    s = round(x)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _table(report: Any, by: list[str], zone: ZoneInfo, start: datetime, end: datetime) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    fmt = "%Y-%m-%d %H:%M"
    console.print(f"[bold]Calls started {start.astimezone(zone):{fmt}} to {end.astimezone(zone):{fmt}} "
                  f"({zone.key})[/bold]")
    call_groups = [b for b in by if b != "agent" and b in report.groups]
    rows = [("all", report.overall)] + [(f"{name}: {key}", k) for name in call_groups
                                         for key, k in report.groups[name].items()]

    sl_t = report.overall.sl_seconds
    service = Table(title="Queues", title_justify="left")
    for col in ("", "Offered", "Answered", "Abandoned", "Aband. %", f"SL ≤{sl_t:g}s" if sl_t else "SL ≤T",
                "ASA", "Avg wait", "P90 wait", "AHT", "Overflowed", "Occupancy"):
        service.add_column(col, justify="left" if not col else "right")
    for key, k in rows:
        service.add_row(key, str(k.offered), str(k.answered), str(k.abandoned), _pct(k.abandonment_rate),
                        _pct(k.service_level), _sec(k.asa), _sec(k.avg_wait), _sec(k.p90_wait),
                        _sec(k.aht) + ("" if k.aht is None or k.aht_includes_wrap_up else "*"),
                        str(k.overflowed), _pct(k.occupancy))
    console.print(service)

    ivr = Table(title="Calls and the IVR", title_justify="left")
    for col in ("", "Calls", "Contained", "Containment", "Hung up in IVR", "Transfers", "Callbacks",
                "Fallbacks", "Errors", "To a person (avg)", "To a person (p90)"):
        ivr.add_column(col, justify="left" if not col else "right")
    for key, k in rows:
        ivr.add_row(key, str(k.calls), str(k.contained), _pct(k.containment_rate), str(k.ivr_abandoned),
                    str(k.transfers), str(k.callbacks), str(k.fallbacks), str(k.errors),
                    _sec(k.time_to_person_avg), _sec(k.time_to_person_p90))
    console.print(ivr)

    if "agent" in by and report.agents:
        agents = Table(title="Agents", title_justify="left")
        for col in ("Agent", "Answered", "AHT", "Talk", "Wrap-up", "Logged in", "Not ready", "Busy", "Occupancy"):
            agents.add_column(col, justify="left" if col == "Agent" else "right")
        for a in report.agents.values():
            agents.add_row(a.agent_id, str(a.answered), _sec(a.aht), _sec(a.avg_talk), _sec(a.avg_wrap_up),
                           _hms(a.logged_in_seconds), _hms(a.not_ready_seconds), _hms(a.busy_seconds),
                           _pct(a.occupancy))
        console.print(agents)

    t_note = (f"T = {sl_t:g} s" if sl_t else "T = each queue's service_level.seconds (20 s if not configured)")
    console.print(f"SL: answered within T / (offered - abandoned within T), abandons within T excluded; {t_note}. "
                  "The strict variant (answered within T / offered) is in --format csv/json.")
    if any(k.aht is not None and not k.aht_includes_wrap_up for _, k in rows):
        console.print("* AHT is talk time only: no wrap-up recorded in the agents' state changes.")
    for note in report.notes:
        console.print(note)
    console.print("Definitions: routing/KPIS.md")


def _csv(rows: list[dict[str, Any]]) -> str:
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------- the command


def report(
    from_: Optional[str] = typer.Option(None, "--from", help="Window start, clinic time in --tz "
                                        "(YYYY-MM-DD[ HH:MM], or with an offset); default: midnight of --to's day"),
    to: Optional[str] = typer.Option(None, "--to", help="Window end, exclusive (default: now)"),
    db: Optional[str] = typer.Option(None, "--db", help="Database URL or SQLite path (default: DATABASE_URL, "
                                     "or SQLite at IVR_DB_PATH or ./ivr-state.db)"),
    tz: Optional[str] = typer.Option(None, "--tz", help="Time zone for --from/--to and the hours "
                                     "(default: $TZ, else UTC)"),
    queues: Optional[Path] = typer.Option(None, "--queues", help="Queue configuration, for each queue's "
                                          "service-level threshold and skills (default: ./queues.yaml if present)"),
    fmt: str = typer.Option("table", "--format", help="table, csv or json"),
    by: Optional[list[str]] = typer.Option(None, "--by", help="Group by queue (default), hour, hour_of_day, "
                                           "skill, tree, channel or agent; repeat for several"),
) -> None:
    """KPIs of the calls that started in a window: service level, ASA, waits, abandonment, AHT, occupancy,
    IVR containment, transfers, callbacks. Definitions: routing/KPIS.md."""
    from routing.kpis import compute_kpis

    if fmt not in FORMATS:
        typer.echo(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    groups = list(dict.fromkeys(by or ["queue"]))
    bad = [b for b in groups if b not in BY_CHOICES]
    if bad:
        typer.echo(f"unknown --by {bad[0]!r}; use one of {', '.join(BY_CHOICES)}", err=True)
        raise typer.Exit(2)
    zone = _zone(tz)
    start, end = _window(from_, to, zone)

    specs = None
    try:
        if queues is not None or Path("queues.yaml").exists():
            from ivr.configfile import ConfigInvalid
            from routing.queues import load_queues

            try:
                specs = load_queues(queues or Path("queues.yaml"))
            except ConfigInvalid as exc:
                for d in exc.diagnostics:
                    typer.echo(d.render(), err=True)
                raise typer.Exit(1) from None
        records, agent_events, call_events = asyncio.run(_read(_store_url(db)))
    except IvrError as exc:
        typer.echo(f"{exc.error_id}: {exc}", err=True)
        raise typer.Exit(1) from None

    rep = compute_kpis(records, agent_events, call_events=call_events, queues=specs,
                       by=[b for b in groups if b != "agent"], tz=zone, start=start, end=end)
    window = f"{start.astimezone(zone).isoformat()} to {end.astimezone(zone).isoformat()}"
    if rep.empty:
        if fmt == "table":
            typer.echo(f"{NO_CALLS} ({window})")
        else:
            typer.echo(f"{NO_CALLS} ({window})", err=True)
            if fmt == "json":
                typer.echo(json.dumps({"from": start.isoformat(), "to": end.isoformat(), "tz": zone.key,
                                       "rows": []}, indent=2))
        return
    rows = rep.to_rows()
    if "agent" not in groups:
        rows = [r for r in rows if r["group"] != "agent"]
    if fmt == "json":
        typer.echo(json.dumps({"from": start.isoformat(), "to": end.isoformat(), "tz": zone.key,
                               "sl_variant": rep.sl_variant, "notes": list(rep.notes), "rows": rows}, indent=2))
    elif fmt == "csv":
        typer.echo(_csv(rows), nl=False)
    else:
        _table(rep, groups, zone, start, end)
