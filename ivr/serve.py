"""``ivr serve``: the live engine process.

It loads and checks the trees, queues and roster, opens the routing store
(settling offers that were ringing when the last process stopped), serves the
web endpoints, and, when Asterisk is configured, runs the ARI engine and the AMI
presence feed. SIGTERM or SIGINT stops it cleanly: callers who are not yet
talking to an agent are handed to the dialplan's human fallback, conversations
are left up in Asterisk, and the store is closed after its last write.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from ivr.clock import WallClock
from ivr.engine_config import EngineConfig
from ivr.tree import CallTree, load_tree
from ivr.web import add_agent_api, build_app

log = logging.getLogger("ivr.serve")


@dataclass
class Running:
    """What a started engine holds (returned by :func:`start` so tests can drive and inspect it)."""

    config: EngineConfig
    trees: dict[str, CallTree]
    routing: Any
    runner: web.AppRunner
    url: str
    engine: Any = None
    ami: Any = None
    twilio: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "trees": sorted(self.trees)}
        try:
            await self.routing.store.snapshot()
            report["store"] = "ok"
        except Exception as exc:  # the probe must answer whatever is wrong
            report["store"] = f"unavailable ({getattr(exc, 'error_id', type(exc).__name__)})"
            report["status"] = "degraded"
        report["agents_ready"] = sum(1 for a in self.routing.router.agents.values() if a.status.value == "ready")
        report["calls_waiting"] = len(self.routing.router.calls)
        if self.engine is not None:
            report["asterisk"] = self.engine.status()
            if not self.engine.connected:
                report["status"] = "degraded"
        if self.ami is not None:
            report["ami"] = {"connected": self.ami.connected}
        if self.twilio is not None:
            report["twilio"] = {"calls_in_progress": len(self.twilio.calls), "calls_handled": self.twilio.calls_handled}
        return report

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.shutdown()
        if self.ami is not None:
            await self.ami.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.runner.cleanup()
        await self.routing.close()


def load_trees(cfg: EngineConfig) -> dict[str, CallTree]:
    """Every tree the config names, checked: a tree with blocking problems stops the start (TreeInvalid)."""
    paths = {cfg.trees.default, *cfg.trees.numbers.values()}
    return {p: load_tree(cfg.path(p)) for p in sorted(paths)}


async def start(cfg: EngineConfig, *, clock: Any = None) -> Running:
    from ivr import hooks as hooks_mod
    from routing.service import RoutingService

    clock = clock or WallClock()
    trees = load_trees(cfg)
    hooks = hooks_mod.load(str(cfg.path(cfg.hooks))) if cfg.hooks else {}
    routing = await RoutingService.open(cfg.path(cfg.agents), cfg.path(cfg.queues), url=cfg.database,
                                        clock=clock.now, settle=True)
    running: Running | None = None

    async def health() -> dict[str, Any]:
        assert running is not None
        return await running.health()

    app = build_app(health)
    twilio = _twilio_routes(app, cfg, clock, routing, trees, hooks) if cfg.twilio is not None else None

    def fan_out(decisions: list[Any]) -> None:
        """Agent changes made through the API reach whichever adapter holds the calls they concern."""
        assert running is not None
        for adapter in (running.engine, running.twilio):
            if adapter is not None:
                adapter._routed(decisions, forward=False)

    add_agent_api(app, routing, token=cfg.api_token, fan_out=fan_out)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, cfg.listen.host, cfg.listen.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        await routing.close()
        raise
    host, port = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
    running = Running(cfg, trees, routing, runner, f"http://{host}:{port}")
    running.twilio = twilio
    if cfg.asterisk is not None:
        _start_asterisk(running, cfg, clock, hooks)
        if twilio is not None:  # one router, two adapters: each hears the other's routing decisions
            running.engine.peers.append(twilio)
            twilio.peers.append(running.engine)
    return running


def _routes_for(cfg: EngineConfig, trees: dict[str, CallTree]) -> tuple[dict[str, Any], Any]:
    from ivr.ari.engine import TreeRoute

    by_path = {p: TreeRoute(p.rsplit("/", 1)[-1].removesuffix(".yaml"), t) for p, t in trees.items()}
    return {num: by_path[p] for num, p in cfg.trees.numbers.items()}, by_path[cfg.trees.default]


def _twilio_routes(app: web.Application, cfg: EngineConfig, clock: Any, routing: Any, trees: dict[str, CallTree],
                   hooks: dict[str, Any]) -> Any:
    from ivr.twilio.adapter import TwilioAdapter
    from ivr.twilio.app import add_twilio_routes, media_routes
    from ivr.twilio.rest import TwilioRest

    tw = cfg.twilio
    assert tw is not None and cfg.twilio_token is not None
    routes, default = _routes_for(cfg, trees)
    public = tw.public_url or f"http://{cfg.listen.host}:{cfg.listen.port}"
    rest = TwilioRest(tw.account_sid, cfg.twilio_token, public, api_base=tw.api_base)
    adapter = TwilioAdapter(routes, default, clock=clock, routing=routing, rest=rest,
                            fallback_number=tw.fallback_number, media_base=tw.public_url or "", hooks=hooks,
                            announce_every=tw.announce_every, from_number=tw.from_number,
                            **({"hold_music": tw.hold_music} if tw.hold_music else {}))
    add_twilio_routes(app, adapter, auth_token=cfg.twilio_token, public_url=tw.public_url,
                      trust_forwarded=tw.trust_forwarded)
    media_routes(app, cfg.path("recordings"))
    return adapter


def _start_asterisk(running: Running, cfg: EngineConfig, clock: Any, hooks: dict[str, Any]) -> None:
    from ivr.ari import AriClient, AriConfig
    from ivr.ari.engine import AriEngine

    ast = cfg.asterisk
    assert ast is not None and cfg.ari_password is not None
    client = AriClient(AriConfig(base_url=ast.ari_url, username=ast.ari_user, password=cfg.ari_password,
                                 app=ast.app, request_timeout=ast.request_timeout))
    routes, default = _routes_for(cfg, running.trees)
    engine = AriEngine(client, routes, default, clock=clock, routing=running.routing,
                       app=ast.app, fallback=(ast.fallback.context, ast.fallback.extension, ast.fallback.priority),
                       transfer_context=ast.transfer_context, announce_every=ast.announce_every, hooks=hooks)
    running.engine = engine
    running.tasks.append(asyncio.get_running_loop().create_task(_supervise(engine.run, "ARI events")))
    if cfg.ami_password:
        running.ami = _start_ami(running, cfg, engine)


def _start_ami(running: Running, cfg: EngineConfig, engine: Any) -> Any:
    """Agent presence from AMI: a snapshot after every (re)login, then registration events as they come."""
    from ivr.ami.client import AmiClient, AmiConfig
    from ivr.ami.feed import PresenceFeed

    ast = cfg.asterisk
    assert ast is not None and cfg.ami_password is not None
    feed = PresenceFeed(engine)
    ami = AmiClient(AmiConfig(host=ast.ami_host, port=ast.ami_port, username=ast.ami_user,
                              password=cfg.ami_password), on_connected=feed.resync)
    feed.attach(ami)
    running.tasks.append(asyncio.get_running_loop().create_task(_supervise(ami.run, "AMI")))
    return ami


async def _supervise(fn: Callable[[], Any], what: str) -> None:
    """Run a connection loop; a fatal error (bad credentials) is logged once, and the engine keeps serving."""
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("%s stopped: %s (%s); fix the configuration and restart", what, getattr(exc, "error_id", ""),
                  type(exc).__name__)


async def serve(cfg: EngineConfig, *, on_ready: Callable[[Running], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT."""
    running = await start(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready(running)
    try:
        await stop.wait()
    finally:
        log.info("stopping: handing waiting callers to the dialplan fallback")
        await running.stop()
