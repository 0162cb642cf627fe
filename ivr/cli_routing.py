"""``ivr agents ...`` and ``ivr queues ...``: agent state and routing explanations from the command line.

Until the live engine exists (issue 4), these commands open the routing
service themselves: the same router and the same single-writer store the
engine will use, on the database named by ``--db``, ``DATABASE_URL`` or
``IVR_DB_PATH`` (default ``./ivr-state.db``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer

from agents.state import NOT_READY_REASONS
from ivr.errors import IvrError

agents_app = typer.Typer(no_args_is_help=True, help="Agents: list them and change their state.")
queues_app = typer.Typer(no_args_is_help=True, help="Queues: who is waiting, and why a call went where it went.")

AgentsOpt = typer.Option(Path("agents.yaml"), "--agents", help="The roster")
QueuesOpt = typer.Option(Path("queues.yaml"), "--queues", help="Queue configuration")
DbOpt = typer.Option(None, "--db", help="Database URL (default: DATABASE_URL, or SQLite at IVR_DB_PATH or ./ivr-state.db)")


def _run(agents: Path, queues: Path, db: Optional[str], body: Callable[[Any], Awaitable[None]], *,
         write: bool = True) -> None:
    from ivr.configfile import ConfigInvalid
    from routing.service import RoutingService

    if db and "://" not in db:  # a plain path: a SQLite file
        db = f"sqlite+aiosqlite:///{Path(db).resolve()}"

    async def main() -> None:
        # settle=False: a command is not the engine restarting; offers that are ringing stay ringing.
        svc = await RoutingService.open(agents, queues, url=db, settle=False, write=write)
        try:
            await body(svc)
        finally:
            await svc.close()

    try:
        asyncio.run(main())
    except ConfigInvalid as exc:
        for d in exc.diagnostics:
            typer.echo(d.render(), err=True)
        raise typer.Exit(1) from None
    except IvrError as exc:
        typer.echo(f"{exc.error_id}: {exc}", err=True)
        raise typer.Exit(1) from None


def _ago(at: Optional[datetime]) -> str:
    if at is None:
        return "-"
    secs = int((datetime.now(timezone.utc) - at).total_seconds())
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else f"{secs // 60}m{secs % 60:02d}s"


@agents_app.command("list")
def agents_list(agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Every agent in the roster with their state, since when, skills and languages."""

    async def body(svc: Any) -> None:
        rows = [("AGENT", "NAME", "ENDPOINT", "STATE", "FOR", "SKILLS", "LANGUAGES")]
        for spec, st in svc.agent_states():
            state = st.status.value + (f" ({st.reason})" if st.reason else "") + (f" {st.call_id}" if st.call_id else "")
            skills = " ".join(f"{k}:{v}" for k, v in sorted(spec.skills.items()))
            rows.append((spec.id, spec.name, spec.endpoint, state, _ago(st.since), skills, ",".join(spec.languages)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())

    _run(agents, queues, db, body, write=False)


def _change(agent_id: str, agents: Path, queues: Path, db: Optional[str], action: str, *args: Any, **kw: Any) -> None:
    async def body(svc: Any) -> None:
        decisions = await getattr(svc, action)(agent_id, *args, **kw)
        from routing.model import AgentChanged, Offer

        for d in decisions:
            if isinstance(d, AgentChanged) and d.state.agent_id == agent_id:
                typer.echo(f"{agent_id}: {d.previous} -> {d.state.status.value}"
                           + (f" ({d.state.reason})" if d.state.reason else ""))
            elif isinstance(d, Offer):
                typer.echo(f"{d.call_id} offered to {d.agent_id} ({d.explanation['rule']})")

    _run(agents, queues, db, body)


@agents_app.command("login")
def agents_login(agent_id: str, not_ready: bool = typer.Option(False, "--not-ready", help="Log in paused"),
                 agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Log an agent in (ready to take calls unless --not-ready)."""
    _change(agent_id, agents, queues, db, "login", ready=not not_ready)


@agents_app.command("ready")
def agents_ready(agent_id: str, agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Make an agent ready for calls (from not ready or wrap-up)."""
    _change(agent_id, agents, queues, db, "ready")


@agents_app.command("pause")
def agents_pause(agent_id: str, reason: str = typer.Argument(..., help=f"One of: {', '.join(NOT_READY_REASONS)}"),
                 agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Make an agent not ready, with a reason (break, lunch, training, ...)."""
    _change(agent_id, agents, queues, db, "pause", reason)


@agents_app.command("end-call")
def agents_end_call(agent_id: str, agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """End the agent's call (for a call the telephony side lost): the agent goes to wrap-up."""
    _change(agent_id, agents, queues, db, "call_ended")


@agents_app.command("logout")
def agents_logout(agent_id: str, agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Log an agent out."""
    _change(agent_id, agents, queues, db, "logout")


@queues_app.command("explain")
def queues_explain(call_id: str, agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Why a call went to the agent(s) it was offered to: step, requirements, candidates and rule."""

    async def body(svc: Any) -> None:
        explanations = await svc.explain(call_id)
        if not explanations:
            raise IvrError(f"no routing decision recorded for call {call_id}; check the call id "
                           "(`ivr queues status` lists waiting calls)")
        for i, ex in enumerate(explanations, 1):
            skills = ", ".join(f"{k}>={v}" for k, v in ex["skills"].items()) or "no skills required"
            typer.echo(f"offer {i}: {ex['at']}  call {ex['call']} -> {ex['agent']}  (queue {ex['queue']})")
            typer.echo(f"  waited {ex['waited']} s, priority {ex['priority']}; relaxation step {ex['step']}: "
                       f"{skills}, language {ex['language']}")
            eligible = ex.get("eligible_ready_agents")
            typer.echo(f"  strategy {ex['strategy']}: {ex['rule']}"
                       + (f"; {eligible} eligible agents were ready" if eligible is not None else ""))
            if ex.get("missed_by"):
                typer.echo(f"  earlier offers rang out on: {', '.join(ex['missed_by'])}")

    _run(agents, queues, db, body, write=False)


@queues_app.command("status")
def queues_status(agents: Path = AgentsOpt, queues: Path = QueuesOpt, db: Optional[str] = DbOpt) -> None:
    """Calls waiting in each queue, in order, with time waited and the estimated wait."""

    async def body(svc: Any) -> None:
        r = svc.router
        now = datetime.now(timezone.utc)
        for name, line in r.lines.items():
            typer.echo(f"{name}: {len(line)} waiting")
            for key in line:
                call = r.calls[key[3]]
                ewt = r.estimated_wait(call.call_id, now) if not call.offered_to else 0.0
                state = f"ringing {call.offered_to}" if call.offered_to else \
                    f"position {r.position(call.call_id)}, estimated wait " + \
                    (f"{ewt:.0f} s" if ewt != float("inf") else "unknown (nobody who can take it is available)")
                typer.echo(f"  {call.call_id}  priority {call.priority}  waited {(now - call.since).total_seconds():.0f} s  {state}"
                           + ("  (callback)" if call.callback_number else ""))

    _run(agents, queues, db, body, write=False)
