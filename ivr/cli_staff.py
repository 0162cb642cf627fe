"""``ivr staff``: how many agents a queue needs for a service-level target (Erlang C or Erlang A).

The maths lives in :mod:`routing.staffing`; this module only turns command-line units
(calls per hour, seconds) into rates and prints the answer with its neighbours, so a
manager sees what one agent more or less would do. Register it with
``app.command("staff")(staff)``; ``app`` here also carries it for standalone use.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ivr.errors import IvrError
from routing.staffing import QueueMetrics, queue_metrics, staff_for

app = typer.Typer(add_completion=False, help="Staffing for a service-level target (Erlang C / Erlang A).")

BELOW = 2  # rows shown under the answer
ABOVE = 3  # rows shown over it


def _pct(v: float) -> str:
    return f"{100.0 * v:.1f}%"


def _secs(v: float) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.1f}s"


@app.command()
def staff(
    calls_per_hour: float = typer.Option(..., "--calls-per-hour", help="Calls offered per hour"),
    aht: float = typer.Option(..., "--aht", help="Average handle time in SECONDS (talk + hold + wrap-up)"),
    target: float = typer.Option(0.8, "--target", help="Service-level target as a fraction, e.g. 0.8"),
    within: float = typer.Option(20.0, "--within", help="Service-level threshold T in seconds"),
    patience: Optional[float] = typer.Option(
        None, "--patience", help="Mean caller patience in SECONDS: use Erlang A (callers hang up); default Erlang C"),
    max_occupancy: Optional[float] = typer.Option(None, "--max-occupancy", help="Cap on agent occupancy, e.g. 0.85"),
    max_abandon: Optional[float] = typer.Option(
        None, "--max-abandon", help="Cap on the abandonment rate, e.g. 0.05 (needs --patience)"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable results"),
) -> None:
    """Smallest number of agents meeting the target, with N-2..N+3 for comparison.

    Service level is calls answered within --within seconds over calls offered (with
    --patience, callers who hang up count as misses). ASA is the mean wait of answered calls.
    """
    try:
        rate = calls_per_hour / 3600.0
        best = staff_for(target, within, rate, aht, patience=patience, max_occupancy=max_occupancy,
                         max_abandon=max_abandon)
        first = max(1, best.agents - BELOW)
        rows = [queue_metrics(n, rate, aht, within, patience) for n in range(first, best.agents + ABOVE + 1)]
    except IvrError as exc:
        typer.echo(f"{exc.error_id}: {_in_cli_terms(exc, calls_per_hour)}", err=True)
        raise typer.Exit(2) from None

    if as_json:
        payload: dict[str, Any] = {
            "model": best.model,
            "inputs": {"calls_per_hour": calls_per_hour, "aht_seconds": aht, "target": target, "within_seconds": within,
                       "patience_seconds": patience, "max_occupancy": max_occupancy, "max_abandon": max_abandon},
            "agents": best.agents,
            "chosen": best.to_json(),
            "rows": [m.to_json() | {"chosen": m.agents == best.agents} for m in rows],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_table(best, rows, target, within)


_FLAGS = {"target_sl": "--target", "t": "--within", "arrival_rate": "--calls-per-hour", "mean_handle": "--aht",
          "patience": "--patience", "max_occupancy": "--max-occupancy", "max_abandon": "--max-abandon"}


def _in_cli_terms(exc: IvrError, calls_per_hour: float) -> str:
    """The library names its arguments; say which *option* was wrong instead."""
    field = exc.details.get("field")
    if field == "max_abandon" and "patience" in str(exc):
        return "--max-abandon needs --patience: Erlang C assumes nobody hangs up"
    if field in _FLAGS and str(exc).startswith(f"{field} must be"):
        value = calls_per_hour if field == "arrival_rate" else exc.details.get("value")
        return f"{_FLAGS[field]} must be {exc.details['expected']} (got {value!r})"
    return str(exc)


def _print_table(best: QueueMetrics, rows: list[QueueMetrics], target: float, within: float) -> None:
    console = Console(highlight=False)
    model = "Erlang A" if best.model == "erlang_a" else "Erlang C"
    if best.agents == 0:
        console.print("No calls offered: 0 agents needed.")
        return
    title = (f"{model}: {best.offered_erlangs:.2f} erlangs offered; target {_pct(target)} within {within:g}s"
             + (f", mean patience {best.patience:g}s" if best.patience is not None else ""))
    table = Table(title=title, caption="SL = answered within T / offered; ASA = mean wait of answered calls")
    for col in ("", "Agents", "P(wait)", "SL", "ASA", "Abandon", "Occupancy"):
        table.add_column(col, justify="right")
    for m in rows:
        mark = "→" if m.agents == best.agents else ""
        style = "bold green" if m.agents == best.agents else None
        if not m.stable:
            table.add_row(mark, str(m.agents), "100.0%", "0.0%", "inf", "-", "unstable", style=style)
            continue
        table.add_row(mark, str(m.agents), _pct(m.p_wait), _pct(m.service_level), _secs(m.asa),
                      _pct(m.abandon_rate) if m.model == "erlang_a" else "-", _pct(m.occupancy), style=style)
    console.print(table)
    console.print(f"Chosen: {best.agents} agents (service level {_pct(best.service_level)}).")
