"""``ivr simulate-day SCENARIO``: a whole contact-center day, replicated, with KPIs and confidence intervals.

The scenario (``scenarios/README.md``) says who calls when, what they press, how long they talk and
who answers; the real tree and the real router run the day on a virtual clock. The output is a
terminal table (mean and 95 % interval over replications), and optionally CSV, JSON and an HTML
report with charts. KPI definitions: ``routing/KPIS.md`` (the same code as ``ivr report``).

Exit codes: 0; 1 the scenario, tree or queues cannot be loaded; 2 the command was used wrongly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ivr.cli_report import _csv, _pct, _sec
from ivr.errors import IvrError
from routing.kpis import NO_QUEUE


def _est(e: Any, fmt: Any) -> str:
    """``mean [low–high]`` with one formatter; ``-`` when undefined."""
    if e is None or e.mean is None:
        return "-"
    if e.low is None or e.high is None:
        return fmt(e.mean)
    return f"{fmt(e.mean)} [{fmt(max(e.low, 0.0))}–{fmt(e.high)}]"


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 or x == int(x) else f"{x:.1f}"


def _pct01(x: float) -> str:
    return _pct(min(max(x, 0.0), 1.0))


def _table(summary: Any, level: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 220)
    console.print(f"[bold]{summary.name}[/bold]: {summary.date} ({summary.tz}), tree {summary.tree}, "
                  f"{summary.agents_scheduled} agents, {summary.replications} replication(s), seed {summary.seed}; "
                  f"mean [{level:.0%} interval]")
    cols = [("Offered", "offered", _num), ("Answered", "answered", _num), ("Aband. %", "abandonment_rate", _pct01),
            ("SL", "service_level", _pct01), ("ASA", "asa", _sec), ("Avg wait", "avg_wait", _sec),
            ("P90 wait", "p90_wait", _sec), ("AHT", "aht", _sec), ("Occupancy", "occupancy", _pct01)]

    def table(title: str, rows: list[tuple[str, Any]], columns: list[tuple[str, str, Any]]) -> None:
        t = Table(title=title, title_justify="left")
        t.add_column("")
        for head, _, _ in columns:
            t.add_column(head, justify="right")
        for key, metrics in rows:
            t.add_row(key, *[_est(metrics.get(m), f) for _, m, f in columns])
        console.print(t)

    groups = summary.groups
    queues = [(k, v) for k, v in groups.get("queue", {}).items() if k != NO_QUEUE]  # IVR-only calls: table below
    table("Queues", [("all", summary.overall)] + queues, cols[:-1])
    if groups.get("skill"):
        table("Skills", list(groups["skill"].items()), cols[:-1])
    table("By hour", list(groups.get("hour_of_day", {}).items()), cols)
    ivr_cols = [("Calls", "calls", _num), ("Containment", "containment_rate", _pct01),
                ("Hung up in IVR", "ivr_abandoned", _num), ("Transfers", "transfers", _num),
                ("Callbacks", "callbacks", _num), ("To a person", "time_to_person_avg", _sec),
                ("To a person p90", "time_to_person_p90", _sec), ("Occupancy", "occupancy", _pct01)]
    table("Calls and the IVR", [("all", summary.overall)], ivr_cols)
    console.print(f"SL variant: {summary.sl_variant}; T per queue from queues.yaml "
                  f"({', '.join(f'{q} {t:g} s' for q, t in summary.sl_seconds.items())}).")
    for note in summary.notes:
        console.print(note)
    console.print("Definitions: routing/KPIS.md; scenario format: scenarios/README.md")


def simulate_day(
    scenario: Path = typer.Argument(..., help="Scenario file (YAML; see scenarios/README.md)"),
    replications: Optional[int] = typer.Option(None, "--replications", "-n", min=1,
                                               help="Replications (default: the scenario's)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: the scenario's)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1,
                                       help="Worker processes for replications (default: up to 4, one per core)"),
    fmt: str = typer.Option("table", "--format", help="What to print: table, csv or json"),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write every KPI (with intervals) as CSV here"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON here"),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Also write the HTML report with charts here"),
    allow_lints: bool = typer.Option(False, "--allow-lints", help="Run a draft tree that still has unwaived lints"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr"),
) -> None:
    """Simulate a contact-center day with the real tree and router: KPIs per queue, skill and hour, with
    confidence intervals over replications."""
    from ivr.configfile import ConfigInvalid
    from ivr.daysim.engine import DayModel
    from ivr.daysim.runner import default_jobs, run_replications, summarize_day
    from ivr.daysim.scenario import load_scenario

    if fmt not in ("table", "csv", "json"):
        typer.echo(f"unknown --format {fmt!r}; use table, csv or json", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_scenario(scenario)
        if seed is not None:
            loaded.spec.seed = seed
        model = DayModel(loaded, allow_lints=allow_lints)
    except ConfigInvalid as exc:
        for d in exc.diagnostics:
            typer.echo(d.render(), err=True)
        raise typer.Exit(1) from None
    except IvrError as exc:
        typer.echo(f"{exc.error_id}: {exc}", err=True)
        raise typer.Exit(1) from None
    n = replications or loaded.spec.replications
    workers = jobs or default_jobs()
    expected = int(loaded.spec.total_calls() * n)

    if progress and expected > 0:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("calls"),
                      TimeElapsedColumn(), transient=True, console=_stderr_console()) as bar:
            task = bar.add_task("calls", total=expected)
            reps = run_replications(model, n, jobs=workers, progress=lambda k: bar.advance(task, k))
    else:
        reps = run_replications(model, n, jobs=workers)
    summary = summarize_day(model, reps)

    if csv_out is not None:
        csv_out.write_text(_csv(summary.rows()), encoding="utf-8")
    if json_out is not None:
        json_out.write_text(json.dumps(summary.to_json(), indent=2), encoding="utf-8")
    if html_out is not None:
        from ivr.daysim.html import write_html

        write_html(summary, html_out)
    if fmt == "json":
        typer.echo(json.dumps(summary.to_json(), indent=2))
    elif fmt == "csv":
        typer.echo(_csv(summary.rows()), nl=False)
    else:
        _table(summary, summary.level)
        for what, path in (("CSV", csv_out), ("JSON", json_out), ("HTML report", html_out)):
            if path is not None:
                typer.echo(f"{what}: {path}")


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
