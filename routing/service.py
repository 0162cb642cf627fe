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
from agents.state import AgentState
from routing.model import Decision
from routing.queues import QueueSpec, load_queues
from routing.router import Router
from routing.store import Store


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
        self.router = Router(self.queues, self.roster)
        now = self.clock()
        decisions = self.router.restore(snap.agents, snap.waiting, snap.reservations, now, snap.next_seq,
                                        settle=settle)
        if write:
            await self.store.apply(decisions, at=now)
        return decisions

    async def close(self) -> None:
        await self.store.close()

    async def _do(self, method: Callable[..., list[Decision]], *args: Any, **kw: Any) -> list[Decision]:
        async with self._lock:
            now = self.clock()
            # Timers due by now are their own step, committed first: if the event itself is then refused
            # (an agent unknown, a call already answered), what time had already decided is not lost.
            due = self.router.tick(now)
            if due:
                await self._commit(due, now)
            try:
                decisions = method(*args, now, **kw)  # raises before changing anything when the event is refused
            except Exception as exc:
                # what time decided is committed: hand it on with the refusal so callers can act on it
                exc.due = due  # type: ignore[attr-defined]
                raise
            await self._commit(decisions, now)
            return due + decisions

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
