"""What every telephony adapter shares about the router: a routing step, its fan-out, and the router's timer.

The Asterisk engine and the Twilio adapter both drive the one routing service.
Each step's decisions must reach whichever adapter holds the calls they concern
(``peers``), decisions of timers that fell due before a refused step must still
be carried out, and exactly when the router next needs time to pass (a ring
timeout, the end of a wrap-up) a tick must run. Adapters subclass this and
implement :meth:`on_decisions` (act on the decisions about their own calls) and
``_spawn`` (run a coroutine as a tracked task).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ivr.errors import IvrError

log = logging.getLogger(__name__)


class RoutingAdapter:
    routing: Any  # a routing.service.RoutingService, or None
    clock: Any  # an ivr.clock.Clock

    def _init_routing_link(self) -> None:
        self.peers: list[RoutingAdapter] = []  # other adapters sharing the router: they hear our decisions too
        self._tick: tuple[datetime, Any] | None = None

    @property
    def router(self) -> Any:
        return self.routing.router if self.routing is not None else None

    def on_decisions(self, decisions: list[Any]) -> None:  # pragma: no cover - every adapter overrides it
        raise NotImplementedError

    def _spawn(self, coro: Any) -> Any:  # pragma: no cover - every adapter overrides it
        raise NotImplementedError

    async def route(self, method: str, *args: Any, **kw: Any) -> list[Any] | None:
        """One routing step through the service; its decisions reach every call they concern.

        Returns None when routing refused or failed (logged with its error id): the caller then takes the
        tree's fallback rather than waiting on a queue that will never serve them.
        """
        if self.routing is None:
            return None
        try:
            decisions = await getattr(self.routing, method)(*args, **kw)
        except Exception as exc:
            # Timers that fell due before the refusal were committed: their decisions must still be carried
            # out (a caller's max wait, a ring-out), or someone is left waiting on a decision nobody acts on.
            self._routed(getattr(exc, "due", []))
            if isinstance(exc, IvrError):
                log.info("routing %s refused: %s", method, exc.error_id)
            else:
                log.error("routing %s failed: %s", method, type(exc).__name__)
            return None
        self._routed(decisions)
        return decisions

    def _routed(self, decisions: list[Any], *, forward: bool = True) -> None:
        self.on_decisions(decisions)
        if forward:
            for p in self.peers:
                p.on_decisions(decisions)
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        router = self.router
        wake = router.next_wakeup() if router is not None else None
        if wake is None:
            return
        if self._tick is not None:
            if self._tick[0] <= wake:
                return
            self._tick[1].cancel()
        self._tick = (wake, self.clock.call_later((wake - self.clock.now()).total_seconds(), self._fire_tick))

    def _fire_tick(self) -> None:
        self._tick = None
        self._spawn(self.route("tick"))

    def _cancel_tick(self) -> None:
        if self._tick is not None:
            self._tick[1].cancel()
            self._tick = None
