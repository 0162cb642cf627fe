"""AMI presence into the engine: which agents' softphones are registered.

After every (re)login the feed reads every endpoint's state (``PJSIPShowEndpoints``),
because registrations that happened while AMI was down produced events nobody
heard; between logins it follows ``PeerStatus`` / ``ContactStatus`` /
``DeviceStateChange``. Only real flips reach the engine (:class:`PresenceTracker`
folds the burst of events one registration makes into one change).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .presence import PresenceChange, PresenceTracker, read_presence

log = logging.getLogger(__name__)


class _Engine(Protocol):
    by_endpoint: dict[str, str]

    async def presence(self, endpoint: str, online: bool) -> None: ...

    def _spawn(self, coro: Any) -> Any: ...


class PresenceFeed:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.tracker = PresenceTracker(endpoints=list(engine.by_endpoint))
        self.ami: Any = None

    def attach(self, ami: Any) -> None:
        """Subscribe to ``ami``'s events; pass :meth:`resync` as the client's ``on_connected``."""
        self.ami = ami
        ami.on_event(self.on_event)

    async def resync(self) -> None:
        self.tracker.reset()
        changes = await read_presence(self.ami, self.tracker)
        log.info("AMI presence snapshot: %d softphone state(s) changed", len(changes))
        await self._publish(changes)

    def on_event(self, event: dict[str, str]) -> None:
        changes = self.tracker.apply(event)
        if changes:
            self.engine._spawn(self._publish(changes))

    async def _publish(self, changes: list[PresenceChange]) -> None:
        for ch in changes:
            if ch.endpoint in self.engine.by_endpoint:
                await self.engine.presence(ch.endpoint, ch.online)
