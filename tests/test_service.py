"""The routing service end to end on a real database: restart after SIGKILL, and concurrency without double assignment."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agents.state import ALLOWED, IllegalTransition, Status, UnknownAgent
from routing.model import Offer
from routing.router import UnknownCall
from routing.service import RoutingService
from conftest import ROOT

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)

AGENTS = "agents:\n" + "".join(
    f"  - {{id: a{i}, name: Agent {i}, endpoint: PJSIP/{1000 + i}, languages: [en], skills: {skills}}}\n"
    for i, skills in enumerate(["{rare: 5, common: 5}"] * 3 + ["{common: 5}"] * 7)
)
QUEUES = """queues:
  q1: {skills: {rare: 3}, when_nobody_logged_in: wait, ring_timeout: 3600, wrap_up: 3600}
  q2: {skills: {rare: 3}, when_nobody_logged_in: wait, ring_timeout: 3600, wrap_up: 3600}
  q3: {skills: {rare: 3}, when_nobody_logged_in: wait, ring_timeout: 3600, wrap_up: 3600}
  common: {skills: {common: 1}, when_nobody_logged_in: wait, ring_timeout: 3600, wrap_up: 0}
"""


def urls(tmp_path: Path) -> list[str]:
    out = [f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"]
    if os.environ.get("IVR_TEST_POSTGRES_URL"):
        out.append(os.environ["IVR_TEST_POSTGRES_URL"])
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    url = os.environ.get("IVR_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("IVR_TEST_POSTGRES_URL not set (.ci/run starts a local PostgreSQL and sets it)")
    asyncio.run(_reset_pg(url))
    return url


async def _reset_pg(url: str) -> None:
    from routing.store import Store

    store = await Store.open(url)
    try:
        from sqlalchemy import text

        async with store.engine.begin() as conn:  # a fresh state for each test
            for table in ("reservations", "waiting_calls", "agent_states", "agent_events", "call_events", "routing_decisions"):
                await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await store.close()


def config(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "agents.yaml").write_text(AGENTS)
    (tmp_path / "queues.yaml").write_text(QUEUES)
    return tmp_path / "agents.yaml", tmp_path / "queues.yaml"


class FakeClock:
    def __init__(self, start: datetime, step: float = 1.0) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=self.step)
        return self.now


WRITER = textwrap.dedent("""
    import asyncio, json, sys, time
    from datetime import datetime, timedelta, timezone
    sys.path.insert(0, {root!r})
    from routing.service import RoutingService
    from routing.model import Offer

    class Clock:
        def __init__(self): self.now = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
        def __call__(self):
            self.now += timedelta(seconds=1)
            return self.now

    async def main():
        svc = await RoutingService.open({agents!r}, {queues!r}, url={url!r}, clock=Clock())
        # a0, a1, a2 can serve the rare queues; a3..a9 only 'common'
        for i in range(10):
            if i != 9:
                await svc.login(f"a{{i}}", ready=False)
        for i in range(50):
            await svc.enqueue(f"c{{i:02d}}", f"q{{1 + i % 3}}", priority=5 if i % 10 == 0 else 0)
        await svc.ready("a1")                       # takes the first call in line...
        first = next(iter(svc.router.reservations))
        await svc.answered(first)                   # ...and is on a call
        await svc.ready("a2")
        second = next(c for c in svc.router.reservations if c != first)
        await svc.answered(second)
        await svc.call_ended("a2")                  # a2: wrap-up
        await svc.pause("a3", "lunch")
        await svc.pause("a4", "break")
        await svc.logout("a5")
        await svc.ready("a6")                       # ready, but nothing it can take
        await svc.ready("a0")                       # a0: ringing when the process dies
        ringing = [(r.call_id, r.agent_id) for r in svc.router.reservations.values()]
        order = {{q: [k[3] for k in line if svc.router.calls[k[3]].offered_to is None] for q, line in svc.router.lines.items()}}
        since = {{c.call_id: c.since.isoformat() for c in svc.router.calls.values()}}
        states = {{a: [s.status.value, s.reason] for a, s in svc.router.agents.items()}}
        print(json.dumps({{"ringing": ringing, "order": order, "since": since, "states": states}}), flush=True)
        print("written", flush=True)
        time.sleep(600)                             # killed before this ends

    asyncio.run(main())
""")


def test_restart_after_sigkill_keeps_calls_order_and_settles_ringing(tmp_path: Path, db_url: str):
    agents, queues = config(tmp_path)
    script = WRITER.format(root=str(ROOT), agents=str(agents), queues=str(queues), url=db_url)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        expected = json.loads(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "written", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown: whatever was committed must be enough
        proc.wait(timeout=30)
    assert len(expected["since"]) == 48 and expected["ringing"][0][1] == "a0"

    clock = FakeClock(T0 + timedelta(hours=1))

    async def reopen():
        svc = await RoutingService.open(agents, queues, url=db_url, clock=clock)
        try:
            r = svc.router
            states = {a: [s.status.value, s.reason] for a, s in r.agents.items()}
            since = {c.call_id: c.since.isoformat() for c in r.calls.values()}
            res = [(x.call_id, x.agent_id) for x in r.reservations.values()]
            order = {q: [k[3] for k in line if r.calls[k[3]].offered_to is None] for q, line in r.lines.items()}
            settled = [e for e in await svc.store.agent_events("a0") if e.cause == "restart-settled"]
            return states, since, res, order, settled, r.agents["a0"].missed
        finally:
            await svc.close()

    states, since, res, order, settled, missed = asyncio.run(reopen())
    assert since == expected["since"]  # the same calls, with the same place in line (time waited unchanged)
    ring_call, _ = expected["ringing"][0]
    # the ringing offer was settled (a0 back to ready without a miss) and the first call offered again
    assert len(settled) == 1 and missed == 0
    assert res == [(ring_call, "a0")] and states["a0"] == ["reserved", None]
    for q, calls in expected["order"].items():
        assert order[q] == calls, q
    for a in ("a1", "a2", "a3", "a4", "a5", "a6", "a7"):
        assert states[a] == expected["states"][a], a
    assert states["a3"] == ["not_ready", "lunch"] and states["a2"][0] == "wrap_up" and states["a5"][0] == "logged_out"


def test_concurrent_tasks_never_double_assign(tmp_path: Path, db_url: str):
    agents, queues = config(tmp_path)
    rng = random.Random(5)

    async def scenario():
        svc = await RoutingService.open(agents, queues, url=db_url, clock=FakeClock(T0, 0.01))
        offers: list[Offer] = []
        checks = 0
        try:
            for i in range(10):
                await svc.login(f"a{i}")

            async def worker(n: int) -> None:
                nonlocal checks
                for k in range(20):
                    op = rng.random()
                    r = svc.router
                    try:
                        if op < 0.35:
                            d = await svc.enqueue(f"w{n}-{k}", rng.choice(["q1", "q2", "common"]))
                        elif op < 0.55 and r.reservations:
                            d = await svc.answered(rng.choice(list(r.reservations)))
                        elif op < 0.65 and r.reservations:
                            d = await svc.no_answer(rng.choice(list(r.reservations)))
                        elif op < 0.75 and r.calls:
                            d = await svc.abandon(rng.choice(list(r.calls)))
                        elif op < 0.9:
                            busy = [a for a, s in r.agents.items() if s.status is Status.ON_CALL]
                            d = await svc.call_ended(rng.choice(busy)) if busy else []
                        else:
                            a = f"a{rng.randrange(10)}"
                            d = await (svc.pause(a, "break") if r.agents[a].status is Status.READY else svc.ready(a))
                    except (IllegalTransition, UnknownCall, UnknownAgent):
                        d = []  # another task got there first: the router refused, nothing was written
                    offers.extend(x for x in d if isinstance(x, Offer))
                    # invariant after every step: one call per agent, one agent per call
                    held = list(r.reserved_agent)
                    assert len(held) == len(set(held)) == len(r.reservations)
                    assert len({x.agent_id for x in r.reservations.values()}) == len(r.reservations)
                    checks += 1
                    await asyncio.sleep(0)

            await asyncio.gather(*(worker(n) for n in range(25)))
            snap = await svc.store.snapshot()
            events = await svc.store.agent_events()
            return svc, snap, events, offers, checks
        finally:
            await svc.close()

    svc, snap, events, offers, checks = asyncio.run(scenario())
    assert checks == 500 and len(offers) >= 30  # enough contention to matter: each offer raced 24 other tasks
    # the database agrees with memory
    assert {a: s.status for a, s in snap.agents.items()} == {a: s.status for a, s in svc.router.agents.items()}
    assert sorted(c.call_id for c in snap.waiting) == sorted(svc.router.calls)
    assert {(r.call_id, r.agent_id) for r in snap.reservations} == {(r.call_id, r.agent_id) for r in svc.router.reservations.values()}
    # the event log is one unbroken chain per agent: every change starts where the previous ended, and is allowed
    last: dict[str, str] = {}
    for e in events:
        if e.agent_id in last:
            assert e.from_status == last[e.agent_id], e
        assert Status(e.to_status) in ALLOWED[Status(e.from_status)], e
        last[e.agent_id] = e.to_status
    # and so no agent was ever offered a second call while still holding one
    holding: dict[str, bool] = {}
    for e in events:
        if e.to_status == "reserved":
            assert not holding.get(e.agent_id), e
            holding[e.agent_id] = True
        elif e.from_status == "reserved":
            holding[e.agent_id] = False


async def login_with_a_failed_write(svc: RoutingService, agent_id: str) -> None:
    """Log ``agent_id`` in while the store refuses the write ("disk full"): the service re-syncs."""
    real_apply = svc.store.apply

    async def broken(decisions, at=None):
        raise RuntimeError("disk full")

    svc.store.apply = broken
    try:
        with pytest.raises(RuntimeError):
            await svc.login(agent_id)
    finally:
        svc.store.apply = real_apply


def test_a_failed_write_resyncs_without_re_offering_ringing_calls(tmp_path: Path, db_url: str):
    agents, queues = config(tmp_path)

    async def scenario():
        svc = await RoutingService.open(agents, queues, url=db_url, clock=FakeClock(T0, 1.0))
        try:
            await svc.login("a0")
            await svc.enqueue("c1", "q1")
            ringing = dict(svc.router.reservations)
            await login_with_a_failed_write(svc, "a1")
            events = [e.cause for e in await svc.store.agent_events("a0")]
            return ringing, dict(svc.router.reservations), svc.router.agents["a1"].status, events
        finally:
            await svc.close()

    before, after, a1, events = asyncio.run(scenario())
    assert before == after  # same offer, same expiry: still ringing
    assert a1 is Status.LOGGED_OUT  # the refused login was rolled back in memory too
    assert "restart-settled" not in events


def test_pause_after_call_is_committed_with_the_wrap_up_end(tmp_path: Path):
    """The pause asked for during a call is stored when wrap-up ends, and no offer is stored in between."""
    async def go():
        agents, queues = config(tmp_path)
        url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
        clock = FakeClock(T0)
        svc = await RoutingService.open(agents, queues, url=url, clock=clock)
        try:
            await svc.login("a3")  # the only agent logged in
            await svc.enqueue("c1", "common")
            call_id, agent = "c1", "a3"
            assert svc.router.reservations[call_id].agent_id == agent
            await svc.answered(call_id)
            await svc.enqueue("c2", "common")  # waits: the only ready-able agent is on c1
            assert await svc.after_call(agent, Status.NOT_READY, reason="break") == []
            await svc.call_ended(agent)  # 'common' has no wrap-up: the pause starts as the call ends
            assert (svc.router.agents[agent].status, svc.router.agents[agent].reason) == (Status.NOT_READY, "break")
            assert svc.router.calls["c2"].offered_to is None
        finally:
            await svc.close()
        svc = await RoutingService.open(agents, queues, url=url, clock=clock)  # what the store holds
        try:
            assert (svc.router.agents[agent].status, svc.router.agents[agent].reason) == (Status.NOT_READY, "break")
            assert "c2" in svc.router.calls and not svc.router.reservations
        finally:
            await svc.close()

    asyncio.run(go())


def test_a_resync_keeps_what_only_memory_holds(tmp_path: Path):
    """A failed write re-syncs the router from the store; a pending "after this call" and the queue of the
    call in progress (its wrap-up length) are not in the store and must survive it."""
    async def go():
        agents, queues = config(tmp_path)
        svc = await RoutingService.open(agents, queues, url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
                                        clock=FakeClock(T0))
        try:
            await svc.login("a3")
            await svc.enqueue("c1", "common")  # no wrap-up in 'common'
            await svc.answered("c1")
            await svc.enqueue("c2", "common")
            await svc.after_call("a3", Status.LOGGED_OUT)
            await login_with_a_failed_write(svc, "a4")
            assert svc.router.after_call_to == {"a3": (Status.LOGGED_OUT, None)}
            await svc.call_ended("a3")  # without the queue, wrap-up would be 'q1''s 3600 s
            assert svc.router.agents["a3"].status is Status.LOGGED_OUT and svc.router.calls["c2"].offered_to is None
        finally:
            await svc.close()

    asyncio.run(go())
