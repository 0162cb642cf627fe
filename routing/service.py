"""The routing service: the one owner of the router and the only writer of routing state in a process.

Every event runs under one lock: the pure router decides, then the store
commits all of that step's decisions in one transaction. If the commit fails,
the router is rebuilt from the store, so what is in memory never drifts from
what survives a restart. On start, the router is restored from the store and
whatever was in flight (a call ringing an agent when the process died) is
settled, and those settlements are committed too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from agents.roster import AgentSpec, load_roster
from agents.state import AgentState, Status
from routing.model import Decision
from routing.queues import QueueSpec, load_queues
from routing.router import Router
from routing.store import Store


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a step's outcome as seen: its caller may have been cancelled and never look."""
    if not fut.cancelled():
        fut.exception()


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class RoutingService:
    def __init__(self, router: Router, store: Store, roster: list[AgentSpec], queues: dict[str, QueueSpec],
                 clock: Callable[[], datetime]) -> None:
        self.router = router
        self.store = store
        self.roster = roster
        self.queues = queues
        self.clock = clock
        self._lock = asyncio.Lock()
        self._pending: list[tuple[Callable[[datetime], list[Decision]], asyncio.Future[Any]]] = []

    @classmethod
    async def open(cls, agents: str | Path, queues: str | Path, *, url: str | None = None,
                   clock: Callable[[], datetime] = wall_clock, settle: bool = True,
                   write: bool = True) -> "RoutingService":
        """Load the roster and queues, open the store and restore the router.

        ``settle``: this process is the engine starting after a stop or crash, so offers that were
        ringing cannot be answered any more: put those calls back and free the agents. A command-line
        process sharing the database with a running engine passes False. ``write=False`` restores in
        memory only (for read-only commands: listing must not change anything).
        """
        roster = load_roster(agents).agents
        queue_specs = load_queues(queues)
        store = await Store.open(url)
        svc = cls(Router(queue_specs, roster), store, roster, queue_specs, clock)
        async with svc._lock:
            await svc._restore(settle=settle, write=write)
        return svc

    async def _restore(self, *, settle: bool, write: bool = True) -> list[Decision]:
        snap = await self.store.snapshot()
        previous, self.router = self.router, Router(self.queues, self.roster)
        now = self.clock()
        decisions = self.router.restore(snap.agents, snap.waiting, snap.reservations, now, snap.next_seq,
                                        settle=settle)
        if not settle:  # a re-sync within this process: what the store does not hold is still known
            self.router.keep_memory_of(previous)
        if write:
            await self.store.apply(decisions, at=now)
        return decisions

    async def close(self) -> None:
        await self.store.close()

    async def _do(self, method: Callable[..., list[Decision]], *args: Any, **kw: Any) -> list[Decision]:
        """One routing step: decided by the router, committed, then returned.

        Group commit: steps that arrive while a commit is in flight wait for the lock together, and the
        first of them to get it runs all of them, in arrival order, and commits them in ONE transaction.
        Each step still sees only what was committed before it returns, and its own answer (or refusal) is
        exactly what running it alone would give; a burst of 300 callers joining queues costs a handful of
        commits instead of 300. Timers due by now are applied before each step, so a refused step never
        loses what time had already decided (the refusal carries those decisions as ``due``).
        """
        fut: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._pending.append((lambda now: method(*args, now, **kw), fut))
        async with self._lock:
            if not fut.done():
                batch, self._pending = self._pending, []
                await self._run_batch(batch)
        return await fut

    async def _run_batch(self, batch: list[tuple[Callable[[datetime], list[Decision]], asyncio.Future[Any]]]) -> None:
        now = self.clock()
        outcomes: list[tuple[asyncio.Future[Any], list[Decision] | None, BaseException | None]] = []
        committed: list[Decision] = []
        for fn, fut in batch:
            due = self.router.tick(now)
            committed += due
            try:
                decisions = fn(now)  # raises before changing anything when the event is refused
            except Exception as exc:
                exc.due = due  # type: ignore[attr-defined]
                outcomes.append((fut, None, exc))
                continue
            committed += decisions
            outcomes.append((fut, due + decisions, None))
        try:
            await self._commit(committed, now)
        except BaseException as exc:
            for fut, _, _ in outcomes:
                if not fut.done():
                    if isinstance(exc, asyncio.CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for fut, decisions, exc in outcomes:
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(decisions)

    async def _commit(self, decisions: list[Decision], now: datetime) -> None:
        try:
            await self.store.apply(decisions, at=now)
        except BaseException:
            # The store refused (or we were cancelled mid-write): memory must not run ahead of disk. This is
            # not a restart: offers still ringing stay ringing.
            await asyncio.shield(self._restore(settle=False))
            raise

    # ---------------------------------------------------------------- events

    async def login(self, agent_id: str, *, ready: bool = True) -> list[Decision]:
        return await self._do(lambda now: self.router.login(agent_id, now, ready=ready))

    async def ready(self, agent_id: str) -> list[Decision]:
        return await self._do(self.router.ready, agent_id)

    async def pause(self, agent_id: str, reason: str) -> list[Decision]:
        return await self._do(lambda now: self.router.pause(agent_id, reason, now))

    async def after_call(self, agent_id: str, to: Status, *, reason: str | None = None) -> list[Decision]:
        """Pause or log out when the current call and its wrap-up end (:meth:`Router.after_call`)."""
        return await self._do(lambda now: self.router.after_call(agent_id, to, now, reason=reason))

    async def unavailable(self, agent_id: str, reason: str = "offline") -> list[Decision]:
        return await self._do(lambda now: self.router.unavailable(agent_id, now, reason=reason))

    async def logout(self, agent_id: str) -> list[Decision]:
        return await self._do(self.router.logout, agent_id)

    async def enqueue(self, call_id: str, queue: str, **kw: Any) -> list[Decision]:
        return await self._do(lambda now: self.router.enqueue(call_id, queue, now, **kw))

    async def answered(self, call_id: str, agent_id: str | None = None, offered_at: Any = None) -> list[Decision]:
        return await self._do(lambda now: self.router.answered(call_id, now, agent_id=agent_id, offered_at=offered_at))

    async def no_answer(self, call_id: str, agent_id: str | None = None, offered_at: Any = None) -> list[Decision]:
        return await self._do(lambda now: self.router.no_answer(call_id, now, agent_id=agent_id,
                                                                offered_at=offered_at))

    async def abandon(self, call_id: str, *, why: str = "abandoned") -> list[Decision]:
        return await self._do(lambda now: self.router.abandon(call_id, now, why=why))

    async def call_ended(self, agent_id: str) -> list[Decision]:
        return await self._do(self.router.call_ended, agent_id)

    async def tick(self) -> list[Decision]:
        return await self._do(self.router.tick)

    # ---------------------------------------------------------------- reading

    def agent_states(self) -> Iterable[tuple[AgentSpec, AgentState]]:
        for spec in self.roster:
            yield spec, self.router.agents[spec.id]

    async def explain(self, call_id: str) -> list[dict[str, Any]]:
        """Why the call went where it went: the router's explanation of each offer, from the store."""
        return await self.store.explanations(call_id)
