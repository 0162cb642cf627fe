"""The routing store on real databases: a SQLite file always, PostgreSQL when IVR_TEST_POSTGRES_URL is set.

No mocks, no sleeps, no timing asserts. Every storage test runs once per backend through the
``store_url`` fixture; each PostgreSQL test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import subprocess
import sys
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from agents.state import AgentState, Status
from routing.model import (
    AgentChanged,
    CallLeft,
    CallQueued,
    Decision,
    Offer,
    Overflowed,
    QueueFailed,
    Reservation,
    WaitingCall,
)
from routing.store import (
    TABLES,
    DoubleAssignment,
    InvalidRecord,
    Snapshot,
    Store,
    StoreClosed,
    StoreError,
    StoreIntegrityError,
    head_revision,
    mask_number,
    metadata,
)

ROOT = Path(__file__).resolve().parent.parent
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=NY)  # callers' times arrive in local time; the store gives back UTC
PG_ENV = "IVR_TEST_POSTGRES_URL"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ============================================================== fixtures


async def _pg_admin(url: str, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A database URL for one test: a fresh SQLite file, or a fresh PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ivr-state.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server for this run (.ci/run starts one and sets it)")
    name = f"ivr_test_{uuid.uuid4().hex[:16]}"
    run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ivr-state.db'}"


# ============================================================== data


def ready(agent_id: str, t: datetime, **kw: Any) -> AgentState:
    return AgentState(agent_id, Status.READY, t, idle_since=kw.pop("idle_since", t), **kw)


def call(call_id: str, queue: str, since: datetime, seq: int, **kw: Any) -> WaitingCall:
    return WaitingCall(call_id, queue, since, seq, entered_queue_at=kw.pop("entered_queue_at", since), **kw)


def world() -> tuple[list[list[Decision]], Snapshot]:
    """A busy moment: 10 agents in every state, 50 calls waiting in 3 queues, 2 of them ringing agents.

    Returns the batches that build it (as routing steps) and the snapshot the store must give back.
    """
    queues = ("scheduling", "nurse", "billing")
    calls: list[WaitingCall] = []
    for i in range(50):
        q = queues[i % 3]
        calls.append(WaitingCall(
            f"call-{i:02d}", q, at(i * 7 % 40 + 0.125 * i), i, priority=(5 if i % 11 == 0 else 0),
            skills=(("spanish", 3), (q, 2 + i % 4)) if i % 4 == 0 else ((q, 1 + i % 5),),
            language="es" if i % 4 == 0 else "en", preferred_agent="ana" if i % 9 == 0 else None,
            callback_number=f"+1555010{i:04d}" if i % 6 == 0 else None,
            entered_queue_at=at(i * 7 % 40 + 0.125 * i + (30 if i % 10 == 0 else 0))))
    t = at(100)
    agents = [
        ready("ana", t),
        ready("ben", at(90), idle_since=at(42), missed=1, calls=3),
        AgentState("cy", Status.NOT_READY, t, reason="break", calls=2),
        AgentState("dee", Status.NOT_READY, at(95), reason="lunch"),
        AgentState("eli", Status.NOT_READY, at(96), reason="no-answer", missed=3),
        AgentState("fay", Status.RESERVED, t, call_id="call-03", idle_since=at(10), calls=1),
        AgentState("gus", Status.RESERVED, t, call_id="call-07", idle_since=at(12)),
        AgentState("hal", Status.ON_CALL, at(80), call_id="call-99", calls=5),
        AgentState("ivy", Status.WRAP_UP, at(85), call_id="call-98", calls=4),
        AgentState("jo", Status.LOGGED_OUT, at(20)),
    ]
    batches: list[list[Decision]] = [
        [AgentChanged(AgentState(a.agent_id, Status.READY, at(0), idle_since=at(0)), "logged_out", "login")
         for a in agents],
        [CallQueued(c) for c in calls[:25]],
        [CallQueued(c) for c in calls[25:]],
    ]
    for a in agents:
        if a.status is not Status.RESERVED:
            batches.append([AgentChanged(a, "ready", "setup")])
    offers = []
    for a, cid in (("fay", "call-03"), ("gus", "call-07")):
        st = next(x for x in agents if x.agent_id == a)
        offers += [AgentChanged(st, "ready", "offered"),
                   Offer(cid, a, calls[int(cid[-2:])].queue, t + timedelta(seconds=20),
                         {"rule": "longest_idle", "agent": a, "step": 1})]
    batches.append(offers)
    waiting = [c._replace(offered_to={"call-03": "fay", "call-07": "gus"}.get(c.call_id)) for c in calls]
    waiting.sort(key=lambda c: (-c.priority, c.since, c.seq))
    expected = Snapshot(
        agents={a.agent_id: a for a in sorted(agents, key=lambda a: a.agent_id)},
        waiting=waiting,
        reservations=[Reservation("call-03", "fay", t, t + timedelta(seconds=20)),
                      Reservation("call-07", "gus", t, t + timedelta(seconds=20))],
        next_seq=50,
    )
    return batches, expected


async def _write_world(store: Store) -> Snapshot:
    batches, expected = world()
    for b in batches:
        await store.apply(b)
    return expected


def assert_snapshot_equal(got: Snapshot, want: Snapshot) -> None:
    assert got.agents == want.agents
    assert list(got.agents) == list(want.agents)
    assert [c.call_id for c in got.waiting] == [c.call_id for c in want.waiting]
    assert got.waiting == want.waiting
    assert got.reservations == want.reservations
    assert got.next_seq == want.next_seq
    assert_all_aware_utc(got)


def assert_all_aware_utc(snap: Snapshot) -> None:
    times: list[datetime | None] = []
    for a in snap.agents.values():
        times += [a.since, a.idle_since]
    for c in snap.waiting:
        times += [c.since, c.entered_queue_at]
    for r in snap.reservations:
        times += [r.offered_at, r.expires_at]
    for t in times:
        if t is not None:
            assert t.tzinfo is not None and t.utcoffset() == timedelta(0), t


# ============================================================== migrations


async def _schema(url: str) -> tuple[str | None, set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        return version, tables
    finally:
        await engine.dispose()


def test_fresh_database_opens_at_head_and_reopening_is_a_no_op(store_url: str):
    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await store.set_agent_state(ready("ana", at(0)), "logged_out", "login")
        finally:
            await store.close()
        version, tables = await _schema(store_url)
        assert version == head_revision() == "0002"
        assert tables >= set(TABLES) | {"alembic_version"}

        again = await Store.open(store_url)  # already at head: nothing to do, nothing lost
        try:
            assert (await again.snapshot()).agents == {"ana": ready("ana", at(0))}
        finally:
            await again.close()
        assert await _schema(store_url) == (version, tables)

    run(go())


def test_migrations_and_models_agree(store_url: str):
    """Autogenerate finds nothing to do at head: the hand-written revision and the Core tables describe one schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    async def go() -> list[Any]:
        await (await Store.open(store_url)).close()
        engine = create_async_engine(store_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata))
        finally:
            await engine.dispose()

    assert run(go()) == []


def test_two_stores_opening_a_fresh_database_at_once_both_get_there(store_url: str):
    async def go() -> None:
        a, b = await asyncio.gather(Store.open(store_url), Store.open(store_url))
        await a.close()
        await b.close()
        assert (await _schema(store_url))[0] == head_revision()

    run(go())


def test_open_without_url_uses_database_url_then_ivr_db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    async def go() -> None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.setenv("IVR_DB_PATH", str(tmp_path / "from-env.db"))
        await (await Store.open()).close()
        assert (tmp_path / "from-env.db").exists()
        monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'from-url.db'}")
        await (await Store.open()).close()
        assert (tmp_path / "from-url.db").exists()
        monkeypatch.delenv("DATABASE_URL")
        monkeypatch.delenv("IVR_DB_PATH")
        monkeypatch.chdir(tmp_path)
        await (await Store.open()).close()
        assert (tmp_path / "ivr-state.db").exists()

    run(go())


def test_sqlite_connections_have_the_settings_that_prevent_lost_updates(sqlite_url: str):
    async def go() -> None:
        store = await Store.open(sqlite_url)
        try:
            async with store.engine.connect() as conn:  # a reader
                got = {p: (await conn.exec_driver_sql(f"PRAGMA {p}")).scalar()
                       for p in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")}
            assert got == {"journal_mode": "wal", "busy_timeout": 5000, "synchronous": 1, "foreign_keys": 1}
            assert store._sqlite_writer is not None
            with store._sqlite_writer.connect() as wconn:  # the writer (checked here, off its thread: no write)
                assert wconn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
                assert wconn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert wconn.connection.dbapi_connection.isolation_level is None  # the driver starts no transactions
        finally:
            await store.close()

    run(go())


# ============================================================== round trips


def test_every_decision_type_round_trips(store_url: str):
    c1 = call("c1", "scheduling", at(0), 0, skills=(("scheduling", 3), ("spanish", 2)), language="es",
              callback_number="+15558675309")
    c2 = call("c2", "scheduling", at(1), 1, priority=5)
    c3 = call("c3", "scheduling", at(0), 2, preferred_agent="ana")  # same place as c1, later arrival: after c1
    offer_expl = {"call": "c1", "queue": "scheduling", "agent": "ana", "at": at(10).isoformat(), "waited": 10.0,
                  "step": 1, "skills": {"scheduling": 3}, "language": "es", "rule": "longest_idle",
                  "eligible_ready_agents": 2, "missed_by": []}

    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await store.apply([AgentChanged(ready("ana", at(0)), "logged_out", "login"),
                               AgentChanged(ready("ben", at(0)), "logged_out", "login"),
                               AgentChanged(AgentState("cy", Status.NOT_READY, at(0), reason="lunch"), "logged_out",
                                            "login"),
                               CallQueued(c1), CallQueued(c2), CallQueued(c3)])
            reserved = AgentState("ana", Status.RESERVED, at(10), call_id="c1", idle_since=at(0))
            await store.apply([AgentChanged(reserved, "ready", "offered"),
                               Offer("c1", "ana", "scheduling", at(30), offer_expl)])
            snap = await store.snapshot()
            assert snap.reservations == [Reservation("c1", "ana", at(10), at(30))]
            assert [c.offered_to for c in snap.waiting if c.call_id == "c1"] == ["ana"]

            moved = c3._replace(queue="front_desk", entered_queue_at=at(60))
            await store.apply([Overflowed("c3", "scheduling", "front_desk"), CallQueued(moved)])
            await store.apply([QueueFailed("c2", "scheduling", "timeout"), CallLeft("c2", "scheduling", "timeout", at(70))])
            # ring-no-answer: the agent is back to ready keeping the idle place, the call back in line
            await store.apply([AgentChanged(ready("ana", at(31), idle_since=at(0), missed=1), "reserved", "no-answer"),
                               CallQueued(c1)])

            snap = await store.snapshot()
            assert snap.agents == {"ana": ready("ana", at(31), idle_since=at(0), missed=1),
                                   "ben": ready("ben", at(0)),
                                   "cy": AgentState("cy", Status.NOT_READY, at(0), reason="lunch")}
            assert snap.waiting == [c1, moved]  # c2 left; c1 and c3 have the same since: seq decides
            assert snap.waiting[0].since == at(0) and snap.waiting[0].skills == (("scheduling", 3), ("spanish", 2))
            assert snap.reservations == []
            assert snap.next_seq == 3
            assert_all_aware_utc(snap)
            assert snap.waiting[0].since.tzinfo is UTC

            events = await store.call_events()
            assert [(e.call_id, e.kind, e.why, e.queue, e.to_queue, e.at) for e in events] == [
                ("c3", "overflowed", "overflowed", "scheduling", "front_desk", at(60)),
                ("c2", "queue_failed", "timeout", "scheduling", None, at(70)),
                ("c2", "left", "timeout", "scheduling", None, at(70)),
            ]
            assert [e.kind for e in await store.call_events("c2")] == ["queue_failed", "left"]
            assert await store.explanations("c1") == [offer_expl]
            assert await store.explanations("c2") == []

            await store.apply([CallLeft("c1", "scheduling", "abandoned", at(80))])
            assert [c.call_id for c in (await store.snapshot()).waiting] == ["c3"]
        finally:
            await store.close()

    run(go())


def test_a_batch_keeps_its_order_ring_no_answer_and_reoffer_in_one_step(store_url: str):
    """Call-state changes in one batch apply in order: offered to ana, back in line, offered to ben."""

    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await store.apply([AgentChanged(ready("ana", at(0)), "logged_out", "login"),
                               AgentChanged(ready("ben", at(0)), "logged_out", "login"),
                               CallQueued(call("c1", "nurse", at(0), 0))])
            ana_r = AgentState("ana", Status.RESERVED, at(5), call_id="c1", idle_since=at(0))
            ben_r = AgentState("ben", Status.RESERVED, at(25), call_id="c1", idle_since=at(0))
            await store.apply([
                AgentChanged(ana_r, "ready", "offered"), Offer("c1", "ana", "nurse", at(25), {"n": 1}),
                AgentChanged(ready("ana", at(25), idle_since=at(0), missed=1), "reserved", "no-answer"),
                CallQueued(call("c1", "nurse", at(0), 0)),
                AgentChanged(ben_r, "ready", "offered"), Offer("c1", "ben", "nurse", at(45), {"n": 2}),
            ])
            snap = await store.snapshot()
            assert snap.reservations == [Reservation("c1", "ben", at(25), at(45))]
            assert snap.waiting[0].offered_to == "ben"
            assert snap.agents["ana"].status is Status.READY and snap.agents["ana"].missed == 1
            assert await store.explanations("c1") == [{"n": 1}, {"n": 2}]
            assert [(e.agent_id, e.to_status) for e in await store.agent_events(since=at(1))] == [
                ("ana", "reserved"), ("ana", "ready"), ("ben", "reserved")]
        finally:
            await store.close()

    run(go())


def test_agent_events_keep_every_transition_with_its_time_in_order(store_url: str):
    path = [(Status.READY, None, "login"), (Status.RESERVED, None, "offered"), (Status.ON_CALL, None, "answered"),
            (Status.WRAP_UP, None, "call-ended"), (Status.NOT_READY, "break", "pause"), (Status.READY, None, "ready"),
            (Status.LOGGED_OUT, None, "logout")]

    async def go() -> None:
        store = await Store.open(store_url)
        try:
            prev = "logged_out"
            for i, (status, reason, cause) in enumerate(path):
                st = AgentState("ana", status, at(10 * i), reason=reason,
                                call_id="c1" if status in (Status.RESERVED, Status.ON_CALL, Status.WRAP_UP) else None)
                if i % 2:
                    await store.set_agent_state(st, prev, cause)  # one at a time...
                else:
                    await store.apply([AgentChanged(st, prev, cause),  # ...or in a batch with someone else
                                       AgentChanged(ready("ben", at(10 * i + 1)), "ready", "noise")])
                prev = status.value
            events = await store.agent_events("ana")
            assert [(e.from_status, e.to_status, e.reason, e.cause, e.at) for e in events] == [
                (p, s.value, r, c, at(10 * i))
                for i, ((s, r, c), p) in enumerate(zip(path, ["logged_out"] + [s.value for s, _, _ in path]))]
            assert [e.call_id for e in events][1:4] == ["c1"] * 3
            assert all(e.at.tzinfo is not None for e in events)
            assert [e.to_status for e in await store.agent_events("ana", since=at(40))] == ["not_ready", "ready",
                                                                                            "logged_out"]
            assert len(await store.agent_events()) == len(path) + 4
            assert [e.id for e in await store.agent_events()] == sorted(e.id for e in await store.agent_events())
        finally:
            await store.close()

    run(go())


def test_explanations_come_back_per_call_in_order(store_url: str):
    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await store.apply([AgentChanged(ready(a, at(0)), "logged_out", "login") for a in ("ana", "ben")]
                              + [CallQueued(call(c, "nurse", at(i), i)) for i, c in enumerate(("c1", "c2"))])
            for n in range(3):  # each call rings, is not answered, comes back: three offers each
                batch: list[Decision] = []
                for cid, aid in (("c1", "ana"), ("c2", "ben")):
                    batch.append(Offer(cid, aid, "nurse", at(20 * n + 20),
                                       {"call": cid, "agent": aid, "attempt": n, "skills": {"nurse": 2},
                                        "missed_by": ["zed"] * n, "at": at(20 * n)}))
                await store.apply(batch)
                await store.apply([CallQueued(call(c, "nurse", at(i), i)) for i, c in enumerate(("c1", "c2"))])
            for cid, aid in (("c1", "ana"), ("c2", "ben")):
                assert await store.explanations(cid) == [
                    {"call": cid, "agent": aid, "attempt": n, "skills": {"nurse": 2}, "missed_by": ["zed"] * n,
                     "at": at(20 * n).isoformat()} for n in range(3)]
            assert await store.explanations("nobody") == []
        finally:
            await store.close()

    run(go())


# ============================================================== restarts


def test_restart_gives_back_what_was_written(store_url: str):
    """50 waiting calls in 3 queues and 10 agents in every state survive a close and a NEW Store object."""

    async def go() -> None:
        store = await Store.open(store_url)
        try:
            expected = await _write_world(store)
            assert_snapshot_equal(await store.snapshot(), expected)
        finally:
            await store.close()
        reopened = await Store.open(store_url)  # as a new process would
        try:
            snap = await reopened.snapshot()
            assert_snapshot_equal(snap, expected)
            assert len(snap.waiting) == 50 and len({c.queue for c in snap.waiting}) == 3 and len(snap.agents) == 10
            assert {a.status for a in snap.agents.values()} == set(Status)
            # the time each caller has waited is unchanged: same `since` instant
            before = {c.call_id: c.since for c in expected.waiting}
            assert all(c.since == before[c.call_id] for c in snap.waiting)
        finally:
            await reopened.close()

    run(go())


CHILD = """
import asyncio, os, sys
sys.path[:0] = [os.environ["IVR_ROOT"], os.path.join(os.environ["IVR_ROOT"], "tests")]
from routing.store import Store
from test_store import world

async def main():
    store = await Store.open(os.environ["IVR_TEST_CHILD_URL"])
    for batch in world()[0]:
        await store.apply(batch)
    print("written", flush=True)
    await asyncio.get_running_loop().create_future()  # never done: the test kills this process

asyncio.run(main())
"""


def test_data_survives_sigkill_of_the_writing_process(store_url: str):
    """Another process writes, says "written", and is killed with SIGKILL: no close, no checkpoint, no goodbye."""
    env = dict(os.environ, IVR_TEST_CHILD_URL=store_url, IVR_ROOT=str(ROOT))  # the URL (a password) not in argv
    proc = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready_to_read, _, _ = select.select([proc.stdout], [], [], 120)  # a guard against a hung child, not a timing
        assert ready_to_read, "the writer process said nothing"
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "written", (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if store_url.startswith("sqlite"):
        wal = Path(make_url(store_url).database + "-wal")  # type: ignore[operator]
        assert wal.exists() and wal.stat().st_size > 0  # the commits were in the WAL, not yet in the main file

    async def read() -> Snapshot:
        store = await Store.open(store_url)
        try:
            return await store.snapshot()
        finally:
            await store.close()

    assert_snapshot_equal(run(read()), world()[1])


# ============================================================== the database refuses double assignment


async def _two_agents_two_calls(store: Store) -> None:
    await store.apply([AgentChanged(ready("ana", at(0)), "logged_out", "login"),
                       AgentChanged(ready("ben", at(0)), "logged_out", "login"),
                       CallQueued(call("c1", "nurse", at(0), 0)),
                       CallQueued(call("c2", "nurse", at(1), 1, callback_number="+15558675309"))])


async def _everything(store: Store) -> tuple[Snapshot, int, int, list[Any]]:
    return (await store.snapshot(), len(await store.agent_events()), len(await store.call_events()),
            [await store.explanations(c) for c in ("c1", "c2", "c3")])


def reserve(agent: str, call_id: str, t: float) -> AgentChanged:
    return AgentChanged(AgentState(agent, Status.RESERVED, at(t), call_id=call_id, idle_since=at(0)), "ready",
                        "offered")


def test_two_calls_offered_to_one_agent_are_refused_and_nothing_is_half_written(store_url: str):
    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await _two_agents_two_calls(store)
            before = await _everything(store)
            with pytest.raises(DoubleAssignment) as err:
                await store.apply([reserve("ana", "c1", 5), Offer("c1", "ana", "nurse", at(25), {"n": 1}),
                                   CallQueued(call("c3", "nurse", at(2), 2)),  # unrelated work in the same batch
                                   QueueFailed("c3", "nurse", "full"),
                                   reserve("ana", "c2", 5), Offer("c2", "ana", "nurse", at(25), {"n": 2})])
            assert err.value.error_id == "E-ROUTING-DOUBLE-ASSIGNMENT"
            assert err.value.details["call"] == "c2" and err.value.details["agent"] == "ana"
            assert err.value.details["held_call"] == "c1"
            assert await _everything(store) == before  # the whole batch rolled back

            # across batches: ana holds c1; offering her c2 later is refused too, and c1 stays hers
            await store.apply([reserve("ana", "c1", 5), Offer("c1", "ana", "nurse", at(25), {})])
            with pytest.raises(DoubleAssignment) as err:
                await store.apply([Offer("c2", "ana", "nurse", at(26), {})])
            assert (err.value.details["call"], err.value.details["agent"], err.value.details["held_call"]) == (
                "c2", "ana", "c1")
            assert (await store.snapshot()).reservations == [Reservation("c1", "ana", at(5), at(25))]
        finally:
            await store.close()

    run(go())


def test_one_call_offered_to_two_agents_is_refused(store_url: str):
    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await _two_agents_two_calls(store)
            before = await _everything(store)
            with pytest.raises(DoubleAssignment) as err:
                await store.apply([reserve("ana", "c1", 5), Offer("c1", "ana", "nurse", at(25), {}),
                                   reserve("ben", "c1", 5), Offer("c1", "ben", "nurse", at(25), {})])
            assert err.value.details == {"call": "c1", "agent": "ben", "held_call": None, "held_agent": "ana"}
            assert await _everything(store) == before
            # and after a ring-no-answer put the call back in line, offering it to ben is fine
            await store.apply([reserve("ana", "c1", 5), Offer("c1", "ana", "nurse", at(25), {})])
            await store.apply([AgentChanged(ready("ana", at(25), idle_since=at(0)), "reserved", "no-answer"),
                               CallQueued(call("c1", "nurse", at(0), 0)),
                               reserve("ben", "c1", 25), Offer("c1", "ben", "nurse", at(45), {})])
            assert (await store.snapshot()).reservations == [Reservation("c1", "ben", at(25), at(45))]
        finally:
            await store.close()

    run(go())


def test_errors_have_stable_ids_and_never_show_callback_numbers(store_url: str, caplog: pytest.LogCaptureFixture):
    number = "+15558675309"
    caplog.set_level(logging.DEBUG)

    def shown(exc: BaseException) -> str:
        return "".join(traceback.format_exception(exc)) + repr(getattr(exc, "details", {}))

    async def go() -> list[BaseException]:
        store = await Store.open(store_url)
        errors: list[BaseException] = []
        try:
            await _two_agents_two_calls(store)
            cq = CallQueued(call("c2", "nurse", at(1), 1, callback_number=number))
            for batch in ([cq, Offer("c1", "ana", "nurse", at(9), {}), Offer("c2", "ana", "nurse", at(9), {})],
                          [cq, Offer("c9", "ana", "nurse", at(9), {})],  # a call that was never queued
                          [cq._replace(call=cq.call._replace(since=datetime(2026, 11, 23, 9, 30)))]):  # naive time
                try:
                    await store.apply(batch)
                except StoreError as exc:
                    errors.append(exc)
            assert (await store.snapshot()).waiting[1].callback_number == number  # kept, just never shown
        finally:
            await store.close()
        return errors

    errors = run(go())
    assert [type(e) for e in errors] == [DoubleAssignment, StoreIntegrityError, InvalidRecord]
    assert [e.error_id for e in errors] == ["E-ROUTING-DOUBLE-ASSIGNMENT", "E-STORE-INTEGRITY",  # type: ignore[attr-defined]
                                            "E-STORE-INVALID"]
    for e in errors:
        assert number not in shown(e) and "8675309" not in shown(e)
    assert "8675309" not in caplog.text
    assert mask_number(number) == "***5309" and mask_number(None) is None


def test_a_closed_store_says_so_and_memory_databases_are_refused(sqlite_url: str):
    async def go(url: str) -> None:
        with pytest.raises(StoreError, match="in-memory"):
            await Store.open("sqlite+aiosqlite:///:memory:")
        store = await Store.open(url)
        await store.close()
        await store.close()  # twice is fine
        with pytest.raises(StoreClosed):
            await store.snapshot()
        with pytest.raises(StoreClosed):
            await store.set_agent_state(ready("ana", at(0)), "logged_out", "login")

    run(go(sqlite_url))


def test_an_unreachable_database_is_reported_without_its_password(tmp_path: Path):
    async def go() -> list[StoreError]:
        errors = []
        urls = [f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'ivr.db'}", "mysql+nodriver://x/y"]
        if os.environ.get(PG_ENV):
            urls.append(make_url(os.environ[PG_ENV]).set(password="not-the-S3CRET").render_as_string(False))
        for url in urls:
            with pytest.raises(StoreError) as err:
                await Store.open(url)
            errors.append(err.value)
        return errors

    errors = run(go())
    assert [e.error_id for e in errors][:2] == ["E-STORE-UNAVAILABLE", "E-STORE"]
    for e in errors[2:]:
        assert e.error_id == "E-STORE-UNAVAILABLE"
        assert "S3CRET" not in "".join(traceback.format_exception(e)) + repr(e.details)


# ============================================================== lost updates


def plus_one_call(st: AgentState) -> AgentState:
    return st._replace(status=Status.READY, since=st.since or at(0), calls=st.calls + 1)


def test_twenty_concurrent_read_modify_writes_lose_nothing(store_url: str):
    """The pitfall's shape: 20 tasks each read the agent's `calls`, add one and write it back, all at once.

    Through the store's write path the count is 20. Without the one writer and BEGIN IMMEDIATE, each
    task's SELECT would run outside any transaction (aiosqlite's driver does not BEGIN before a SELECT),
    the tasks would read the same count and the total would come out below 20 (the next test shows it on
    the bare driver). Inside one Store the single writer alone already serializes these; BEGIN IMMEDIATE
    (SQLite) and FOR UPDATE (PostgreSQL) are what protect writers in other Stores or processes: with the
    driver left to manage transactions, the two-Store test below ends at 21 instead of 40, and with a
    deferred BEGIN a "database is locked" error escapes (both checked by hand while building this).
    """

    async def go() -> None:
        store = await Store.open(store_url)
        try:
            await store.set_agent_state(ready("ana", at(0)), "logged_out", "login")
            results = await asyncio.gather(*(store.update_agent("ana", plus_one_call, cause="answered")
                                             for _ in range(20)))
            assert sorted(r.calls for r in results) == list(range(1, 21))
            assert (await store.snapshot()).agents["ana"].calls == 20
            assert len(await store.agent_events("ana")) == 21
        finally:
            await store.close()

    run(go())


def test_the_pitfall_itself_a_bare_aiosqlite_driver_loses_an_update(tmp_path: Path):
    """Why the store does what it does, shown deterministically on the bare driver (not the store)."""
    path = str(tmp_path / "bare.db")

    async def rmw(db: aiosqlite.Connection, barrier: asyncio.Barrier) -> None:
        n = (await (await db.execute("SELECT calls FROM agents WHERE agent_id = 'ana'")).fetchone())[0]
        await barrier.wait()  # both have read before either writes: an interleaving the event loop allows
        await db.execute("UPDATE agents SET calls = ? WHERE agent_id = 'ana'", (n + 1,))
        await db.commit()

    async def go() -> None:
        async with aiosqlite.connect(path) as setup:
            await setup.execute("CREATE TABLE agents (agent_id TEXT PRIMARY KEY, calls INTEGER)")
            await setup.execute("INSERT INTO agents VALUES ('ana', 0)")
            await setup.commit()
        async with aiosqlite.connect(path) as a, aiosqlite.connect(path) as b:  # driver-managed transactions
            barrier = asyncio.Barrier(2)
            await asyncio.gather(rmw(a, barrier), rmw(b, barrier))
            assert (await (await a.execute("SELECT calls FROM agents")).fetchone())[0] == 1  # two updates, one kept
        # With BEGIN IMMEDIATE before the read, the second read-modify-write cannot even start while the
        # first is open (busy_timeout 0 here, so it says so at once instead of waiting its turn).
        async with aiosqlite.connect(path, isolation_level=None) as a, \
                aiosqlite.connect(path, isolation_level=None, timeout=0) as b:
            await a.execute("BEGIN IMMEDIATE")
            await a.execute("SELECT calls FROM agents")
            with pytest.raises(Exception, match="locked"):
                await b.execute("BEGIN IMMEDIATE")
            await a.execute("ROLLBACK")

    run(go())


def test_two_store_objects_on_one_database_write_concurrently_without_loss(store_url: str):
    """Like two processes: each Store has its own writer; the database (busy_timeout / row locks) serializes them."""

    async def go() -> None:
        one, two = await Store.open(store_url), await Store.open(store_url)
        try:
            await one.set_agent_state(ready("ana", at(0)), "logged_out", "login")
            work = []
            for i in range(20):
                work.append(one.update_agent("ana", plus_one_call, cause="one"))
                work.append(two.update_agent("ana", plus_one_call, cause="two"))
                store = one if i % 2 else two
                work.append(store.apply([AgentChanged(ready(f"agent-{i}", at(i)), "logged_out", "login"),
                                         CallQueued(call(f"call-{i}", "nurse", at(i), i))]))
            await asyncio.gather(*work)  # a "database is locked" escaping would fail the gather
            for s in (one, two):
                snap = await s.snapshot()
                assert snap.agents["ana"].calls == 40
                assert len(snap.agents) == 21 and len(snap.waiting) == 20
            assert len(await two.agent_events("ana")) == 41
        finally:
            await one.close()
            await two.close()

    run(go())


# ============================================================== the benchmark still runs


def test_store_benchmark_runs(store_url: str, capsys: pytest.CaptureFixture[str]):
    from benchmarks.bench_store import main

    results = main(["--changes", "60", "--baseline-changes", "6", "--batch", "20", "--calls", "3", "--rounds", "1",
                    "--agents", "4", "--url", store_url])
    assert set(results) == {"one_per_txn", "batched", "call_lifecycles"} and all(v > 0 for v in results.values())
    out = capsys.readouterr().out
    assert "one change per transaction" in out and "target 5,000" in out


def test_call_records_round_trip_and_upgrade_in_place(store_url: str):
    """A finished call's record survives a reopen; writing the same call again keeps the newer record."""
    from routing.store import CallRecord

    async def go() -> None:
        store = await Store.open(store_url)
        try:
            rec = CallRecord("c1", "clinic-main", "asterisk", at(0), at(95), "agent", "scheduling_q", "caller",
                             queue="scheduling", agent_id="ana", queued_at=at(10), answered_at=at(30),
                             agent_ended_at=at(95))
            await store.record_call(rec)
            await store.record_call(rec._replace(ended_by="agent"))
            await store.record_call(CallRecord("c0", "clinic-main", "asterisk", at(-5), at(1), "abandoned",
                                               "main_menu", "caller"))
        finally:
            await store.close()
        again = await Store.open(store_url)
        try:
            rows = await again.call_records()
            assert [r.call_id for r in rows] == ["c0", "c1"]
            assert rows[1] == rec._replace(ended_by="agent")
            assert (await again.call_records("c1"))[0].answered_at == at(30)
        finally:
            await again.close()

    asyncio.run(go())
