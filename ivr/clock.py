"""Time for the live adapters: the wall clock in production, a hand-driven one in tests and benchmarks.

The interpreter and router take time as an input; adapters still need to *wait*
(an input timeout, an agent's ring, the next routing timer, the next position
announcement). They do it only through a :class:`Clock`, so a test can move
time forward by ten minutes in a microsecond (``await clock.advance(600)``)
instead of sleeping, and the engine behaves exactly as it would live.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        """Run ``fn`` (a plain, quick function) after ``delay`` seconds."""
        ...


class WallClock:
    """Real time: ``datetime.now(UTC)`` and the event loop's timers."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn)


class ShiftedClock(WallClock):
    """Real seconds, starting from a chosen moment (demos that must run in office hours whenever they run)."""

    def __init__(self, start: datetime) -> None:
        import time

        self._start, self._t0, self._mono = start, time.monotonic(), time.monotonic

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._mono() - self._t0)


class _FakeHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Virtual time that moves only when told: ``await advance(seconds)`` fires what falls due, in order.

    Between timers ``advance`` yields to the event loop until it is quiet, so the
    work a timer starts (a request to the stand-in, a database commit) finishes
    before the next timer fires, just as it would with real seconds in between.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 23, 14, 30, tzinfo=timezone.utc)
        self._heap: list[tuple[datetime, int, _FakeHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        h = _FakeHandle()
        heapq.heappush(self._heap, (self._now + timedelta(seconds=max(0.0, delay)), next(self._seq), h, fn))
        return h

    def pending(self) -> int:
        return sum(1 for *_, h, _fn in self._heap if not h.cancelled)

    async def advance(self, seconds: float, settle: Callable[[], Awaitable[object]] | None = None) -> None:
        """Move time ``seconds`` forward, firing every timer due on the way (and letting its work run).

        ``settle`` waits until the work a timer started is done (the engine's ``settled``); without
        it the loop is only given a few turns, enough for work that does no I/O.
        """
        wait = settle or _quiet
        end = self._now + timedelta(seconds=seconds)
        await wait()
        while self._heap and self._heap[0][0] <= end:
            at, _, h, fn = heapq.heappop(self._heap)
            if h.cancelled:
                continue
            self._now = max(self._now, at)
            fn()
            await wait()
        self._now = end
        await wait()


async def _quiet(rounds: int = 30) -> None:
    """Let tasks and loopback I/O that are already under way run before time moves on."""
    for _ in range(rounds):
        await asyncio.sleep(0)
