"""``ivr demo twilio``: a whole call through the Twilio endpoints, with no Twilio account and no network.

The engine's real web application serves the Twilio webhooks on 127.0.0.1; a
simulated Twilio (:mod:`ivr.twilio.sim`) places a signed call, follows the TwiML
verb by verb, presses the caller's keys, answers as the agent, and plays the
REST API the engine uses to move a waiting caller to their agent. The routing
store is a throwaway SQLite file; the agents are the sample roster, each on a
Twilio Voice SDK client named after them.
"""

from __future__ import annotations

import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from ivr.ari.engine import TreeRoute
from ivr.clock import ShiftedClock, WallClock
from ivr.tree import load_tree
from ivr.web import build_app

from .adapter import TwilioAdapter
from .app import add_twilio_routes
from .rest import TwilioRest
from .sim import FakeTwilioRest, SimTwilio, format_transcript


def write_client_roster(agents: Path, out: Path) -> Path:
    """The roster with every agent on a Twilio Voice SDK client named after them (``client:<id>``)."""
    roster = yaml.safe_load(agents.read_text(encoding="utf-8"))
    for a in roster["agents"]:
        a["endpoint"] = f"client:{a['id']}"
    out.write_text(yaml.safe_dump(roster), encoding="utf-8")
    return out


async def run_demo(tree: Path, agents: Path, queues: Path, *, keys: str, agent: list[str],
                   ready: tuple[str, ...], at: datetime | None = None) -> dict[str, Any]:
    from routing.service import RoutingService

    account, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        demo_agents = write_client_roster(agents, Path(tmp) / "agents.yaml")
        clock = ShiftedClock(at) if at is not None else WallClock()
        routing = await RoutingService.open(demo_agents, queues, url=f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}",
                                            clock=clock.now)
        route = TreeRoute(tree.stem, load_tree(tree))
        adapter = TwilioAdapter({}, route, clock=clock, routing=routing, fallback_number="+15550100200")
        for a in ready:
            await adapter.route("login", a)

        async def health() -> dict[str, Any]:
            return {"status": "ok"}

        app = build_app(health)
        add_twilio_routes(app, adapter, auth_token=token)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        try:
            async with FakeTwilioRest(account, token) as rest:
                adapter.rest = TwilioRest(account, token, base, api_base=rest.base_url)
                async with SimTwilio(base, account, token, rest) as sim:
                    call = await sim.place_call(keys=keys, agent=agent, talk_seconds=95)  # type: ignore[arg-type]
                    await call.run()
                await adapter.settled()
                records = await routing.store.call_records(call.sid)
                return {"transcript": format_transcript(call.transcript), "errors": list(call.errors),
                        "record": records[0] if records else None, "base": base}
        finally:
            await runner.cleanup()
            await routing.close()
