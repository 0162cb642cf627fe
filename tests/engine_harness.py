"""A live Asterisk engine against the ARI stand-in, on fake time: shared by the end-to-end tests and the benchmark.

Everything is real except Asterisk and the clock: the engine's ARI client talks
HTTP and WebSocket to the stand-in on 127.0.0.1 (which checks every request
against Asterisk's API description), routing runs through the real service
and a real SQLite file. Timers (input timeouts, rings, wrap-up, announcements)
run on a :class:`FakeClock` that the test moves forward.
"""
from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from standin.ari import AriStandIn, assert_no_violations  # noqa: E402

from ivr.ari import AriClient, AriConfig  # noqa: E402
from ivr.ari.engine import AriEngine, TreeRoute  # noqa: E402
from ivr.clock import FakeClock  # noqa: E402
from ivr.tree import load_tree  # noqa: E402
from routing.service import RoutingService  # noqa: E402

MONDAY_930_NY = datetime(2026, 11, 23, 14, 30, tzinfo=timezone.utc)  # office hours at the sample clinic
AGENT_ENDPOINTS = {f"PJSIP/{n}": "online" for n in range(1001, 1008)}


async def eventually(cond: Callable[[], Any], what: str = "condition", timeout: float = 5.0) -> Any:
    """Wait for loopback I/O to make ``cond`` true (a safety net, never a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class EngineHarness:
    def __init__(self, tmp: Path, *, tree: str | Path = ROOT / "calltrees" / "clinic-main.yaml",
                 agents: str | Path = ROOT / "agents.yaml", queues: str | Path = ROOT / "queues.yaml",
                 endpoints: dict[str, str] | None = None, start: datetime = MONDAY_930_NY,
                 login: tuple[str, ...] | None = None, db: Path | None = None, announce_every: float = 45.0) -> None:
        self.tmp = tmp
        self.tree_path, self.agents_path, self.queues_path = tree, agents, queues
        self.endpoint_states = dict(AGENT_ENDPOINTS if endpoints is None else endpoints)
        self.clock = FakeClock(start)
        self.login = login
        self.db = db or tmp / "state.db"
        self.announce_every = announce_every
        self.server: AriStandIn | None = None
        self.engine: AriEngine | None = None
        self.routing: RoutingService | None = None
        self._run: asyncio.Task[Any] | None = None
        self.reconnect_gate = asyncio.Event()  # cleared: the engine's reconnect waits (the gap of a WS drop)
        self.reconnect_gate.set()

    async def _reconnect_sleep(self, _: float) -> None:
        """The client's backoff pause: no real seconds, only as long as the test holds the gate shut."""
        await self.reconnect_gate.wait()
        await asyncio.sleep(0)

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.db}"

    async def __aenter__(self) -> "EngineHarness":
        self.server = await AriStandIn(endpoints=self.endpoint_states).start()
        await self.start_engine()
        return self

    async def start_engine(self, *, settle: bool = True, login: bool = True) -> None:
        assert self.server is not None
        self.routing = await RoutingService.open(self.agents_path, self.queues_path, url=self.url,
                                                 clock=self.clock.now, settle=settle)
        client = AriClient(AriConfig(base_url=self.server.base_url, username=self.server.username,
                                     password=self.server.password, app=self.server.app_name),
                           sleep=self._reconnect_sleep)
        tree = load_tree(self.tree_path)
        route = TreeRoute(Path(self.tree_path).stem, tree)
        self.engine = AriEngine(client, {"100": route}, route, clock=self.clock, routing=self.routing,
                                app=self.server.app_name, announce_every=self.announce_every)
        self._run = asyncio.get_running_loop().create_task(self.engine.run())
        await self.server.wait_connected()
        await eventually(lambda: self.engine.connected, "the engine to connect")
        await self.settle()
        if self.login is not None and login:
            for a in self.login:
                await self.routing.login(a)
            await self.settle()

    async def stop_engine(self, *, graceful: bool = True) -> None:
        """Stop the engine: SIGTERM-like (graceful) or as if the process died (the sockets just close)."""
        assert self.engine is not None and self.routing is not None
        if graceful:
            await self.engine.shutdown()
        else:
            for t in list(self.engine.tasks):
                t.cancel()
            await self.engine.client.close()
        if self._run is not None:
            self._run.cancel()
            await asyncio.gather(self._run, return_exceptions=True)
        await self.routing.close()

    async def __aexit__(self, et: Any, e: Any, tb: Any) -> None:
        try:
            if self.engine is not None and not self.engine.client._closing.is_set():
                await self.stop_engine()
        finally:
            assert self.server is not None
            await self.server.close()
        if et is None:
            assert_no_violations(self.server)

    # ------------------------------------------------------------------ driving

    async def settle(self) -> None:
        """Let in-flight events reach the engine and the engine finish handling them."""
        assert self.engine is not None
        for _ in range(3):
            await asyncio.sleep(0.005)
            await self.engine.settled()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds, settle=self.settle)

    async def call(self, caller: str = "+15555550123", exten: str = "100") -> str:
        assert self.server is not None
        cid = await self.server.inject_call(caller=caller, exten=exten)
        await self.settle()
        return cid

    def requests(self, method: str | None = None, contains: str = "") -> list[tuple]:
        assert self.server is not None
        return [r for r in self.server.requests if (method is None or r[0] == method) and contains in r[1]]

    def current_playback(self, channel_id: str) -> str | None:
        assert self.server is not None
        ch = self.server.channels.get(channel_id)
        return ch.queue[0].id if ch is not None and ch.queue else None

    async def finish_prompts(self, channel_id: str, upto: int = 50) -> int:
        """Play out every queued playback on the channel (the stand-in ends playbacks only when told)."""
        assert self.server is not None
        n = 0
        while n < upto:
            pb = self.current_playback(channel_id)
            if pb is None:
                await self.settle()
                pb = self.current_playback(channel_id)
                if pb is None:
                    return n
            await self.server.finish_playback(pb)
            await self.settle()
            n += 1
        return n

    async def press(self, channel_id: str, digits: str) -> None:
        assert self.server is not None
        await self.server.send_dtmf(channel_id, digits)
        await self.settle()

    def agent_legs(self) -> list[Any]:
        assert self.server is not None
        return [c for c in self.server.channels.values() if c.originated]
