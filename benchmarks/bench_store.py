"""Durable agent-state changes committed per second by the routing store (SQLite file in a temp dir).

Measured in one run, so the ratios hold on a noisy machine:

- ``one per transaction`` (the baseline): ``Store.set_agent_state`` for every change, one write
  transaction (BEGIN IMMEDIATE ... COMMIT) each: what a store that writes as events arrive would do.
- ``batched``: ``Store.apply`` with batches of ``--batch`` changes (default 100): what the engine does,
  committing the decisions of one routing step together. Each change is the same work as above
  (upsert of the agent's row + one agent_events row); only the transactions and thread hops are shared.
- ``call lifecycle``: for information, whole calls persisted the way the router emits them, one
  transaction per routing step (queued+offered, answered, wrap-up, ready again: 4 steps, 8 decisions).

Target (issue 3): at least 5,000 committed agent-state changes per second.
Run: ``python -m benchmarks.bench_store`` (or ``make bench``); ``--url`` measures another database
(e.g. ``postgresql+asyncpg://...``) instead of a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.state import AgentState, Status
from routing.model import (
    AgentChanged,
    CallLeft,
    CallQueued,
    Decision,
    Offer,
    WaitingCall,
)
from routing.store import Store

T0 = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
TARGET = 5000


def agent_changes(n: int, agents: int, start: int = 0) -> list[AgentChanged]:
    """``n`` changes cycling over ``agents`` agents: ready -> not ready (break) -> ready ..., 10 ms apart."""
    out = []
    for i in range(start, start + n):
        at = T0 + timedelta(milliseconds=10 * i)
        aid = f"agent-{i % agents:03d}"
        if (i // agents) % 2 == 0:
            st = AgentState(aid, Status.READY, at, idle_since=at)
            out.append(AgentChanged(st, "not_ready", "ready"))
        else:
            st = AgentState(aid, Status.NOT_READY, at, reason="break")
            out.append(AgentChanged(st, "ready", "pause"))
    return out


def call_steps(calls: int, agents: int, start: int = 0) -> list[list[Decision]]:
    """The routing steps of ``calls`` whole calls, each step one batch, as the router would emit them."""
    steps: list[list[Decision]] = []
    for i in range(start, start + calls):
        at = T0 + timedelta(seconds=i)
        aid, cid = f"agent-{i % agents:03d}", f"call-{i:07d}"
        call = WaitingCall(cid, "scheduling", at, i, 0, (("scheduling", 3),), "en", None, None, at)
        ready = AgentState(aid, Status.READY, at, idle_since=at)
        reserved = ready._replace(status=Status.RESERVED, call_id=cid)
        on_call = reserved._replace(status=Status.ON_CALL, since=at + timedelta(seconds=4), calls=1)
        steps.append([CallQueued(call), AgentChanged(reserved, "ready", "offered"),
                      Offer(cid, aid, "scheduling", at + timedelta(seconds=20), {"rule": "longest_idle", "step": 1})])
        steps.append([AgentChanged(on_call, "reserved", "answered"), CallLeft(cid, "scheduling", "answered",
                                                                              on_call.since)])  # type: ignore[arg-type]
        steps.append([AgentChanged(on_call._replace(status=Status.WRAP_UP, since=at + timedelta(seconds=200)),
                                   "on_call", "call-ended")])
        steps.append([AgentChanged(ready._replace(since=at + timedelta(seconds=230),
                                                  idle_since=at + timedelta(seconds=230)), "wrap_up", "wrap-up-ended")])
    return steps


async def _measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    store = await Store.open(url)
    try:
        await store.apply(agent_changes(args.agents, args.agents))  # every agent has a row: all later writes update
        n_one, n_batch, n_calls = args.baseline_changes, args.changes, args.calls
        cursor = args.agents
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            changes = agent_changes(n_one, args.agents, cursor)
            cursor += n_one
            t0 = time.perf_counter()
            for ch in changes:
                await store.set_agent_state(ch.state, ch.previous, ch.cause)
            rate = n_one / (time.perf_counter() - t0)
            best["one_per_txn"] = max(best.get("one_per_txn", 0.0), rate)

            changes = agent_changes(n_batch, args.agents, cursor)
            cursor += n_batch
            t0 = time.perf_counter()
            for i in range(0, n_batch, args.batch):
                await store.apply(changes[i:i + args.batch])
            rate = n_batch / (time.perf_counter() - t0)
            best["batched"] = max(best.get("batched", 0.0), rate)

            if n_calls:
                steps = call_steps(n_calls, args.agents, cursor)
                cursor += n_calls
                t0 = time.perf_counter()
                for step in steps:
                    await store.apply(step)
                rate = n_calls / (time.perf_counter() - t0)
                best["call_lifecycles"] = max(best.get("call_lifecycles", 0.0), rate)
        stored = len(await store.agent_events())
        expected = args.agents + args.rounds * (n_one + n_batch + 4 * n_calls)
        assert stored == expected, f"{stored} agent events stored, {expected} written"
        return best
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=20_000, help="agent-state changes per round, batched")
    ap.add_argument("--baseline-changes", type=int, default=2_000, help="changes per round, one per transaction")
    ap.add_argument("--batch", type=int, default=100, help="changes per apply() batch")
    ap.add_argument("--calls", type=int, default=500, help="whole call lifecycles per round (0: skip)")
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", help="database URL (default: a SQLite file in a temp dir)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ivr-bench-store-") as tmp:
        url = args.url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        results = asyncio.run(_measure(url, args))
        where = "SQLite file (WAL, synchronous=NORMAL)" if url.startswith("sqlite") else url.split(":", 1)[0]

    base = results["one_per_txn"]
    print(f"routing store on {where}: {args.agents} agents, best of {args.rounds} rounds")
    print(f"  one change per transaction (baseline): {base:>9,.0f} changes/s   1.00 x")
    print(f"  apply() batches of {args.batch:<4}               : {results['batched']:>9,.0f} changes/s "
          f"{results['batched'] / base:6.2f} x")
    if "call_lifecycles" in results:
        cl = results["call_lifecycles"]
        print(f"  whole calls, one transaction per routing step (4 steps, 8 decisions): {cl:,.0f} calls/s "
              f"({cl * 4:,.0f} transactions/s)")
    verdict = "met" if results["batched"] >= TARGET else "NOT met"
    print(f"  target {TARGET:,} committed agent-state changes/s: {results['batched']:,.0f}/s batched: {verdict}")
    return results


if __name__ == "__main__":
    main()
