"""The Twilio endpoints served for real on 127.0.0.1, over the real router and a SQLite file, on fake time."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from ivr.ari.engine import TreeRoute
from ivr.clock import FakeClock
from ivr.tree import load_tree
from ivr.twilio.adapter import TwilioAdapter
from ivr.twilio.app import add_twilio_routes
from ivr.web import build_app
from routing.service import RoutingService

ROOT = Path(__file__).resolve().parent.parent
from engine_harness import MONDAY_930_NY  # noqa: E402

ACCOUNT = "AC" + "0" * 32
TOKEN = "twilio-test-auth-token"
ALL_TWILIO = ("hana.pharm", "ivan.tech")


class TwilioHarness:
    def __init__(self, tmp: Path, *, tree: Path = ROOT / "calltrees" / "clinic-main.yaml",
                 agents: Path = ROOT / "agents.yaml", queues: Path = ROOT / "queues.yaml",
                 login: tuple[str, ...] = (), public_url: str | None = None, rest: Any = None,
                 fallback_number: str | None = "+15550100200", hooks: dict[str, Any] | None = None,
                 trust_forwarded: bool = False) -> None:
        self.tmp, self.tree_path, self.agents, self.queues = tmp, tree, agents, queues
        self.login, self.public_url, self.rest, self.fallback_number = login, public_url, rest, fallback_number
        self.clock = FakeClock(MONDAY_930_NY)
        self.hooks, self.trust_forwarded = hooks or {}, trust_forwarded

    async def __aenter__(self) -> "TwilioHarness":
        self.routing = await RoutingService.open(self.agents, self.queues, url=f"sqlite+aiosqlite:///{self.tmp / 's.db'}",
                                                 clock=self.clock.now)
        for a in self.login:
            await self.routing.login(a)
        route = TreeRoute(self.tree_path.stem, load_tree(self.tree_path))
        self.adapter = TwilioAdapter({}, route, clock=self.clock, routing=self.routing, rest=self.rest,
                                     fallback_number=self.fallback_number, hooks=self.hooks,
                                     from_number="+15550100000")

        async def health() -> dict[str, Any]:
            return {"status": "ok"}

        app = build_app(health)
        add_twilio_routes(app, self.adapter, auth_token=TOKEN, public_url=self.public_url,
                          trust_forwarded=self.trust_forwarded)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.adapter.settled()
        await self.session.close()
        await self.runner.cleanup()
        await self.routing.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def post(self, path: str, form: dict[str, str], *, sign: bool = True, signature: str | None = None,
                   headers: dict[str, str] | None = None, signed_url: str | None = None) -> tuple[int, str]:
        url = self.base + path
        h = dict(headers or {})
        if sign:
            h["X-Twilio-Signature"] = signature or RequestValidator(TOKEN).compute_signature(signed_url or url, form)
        async with self.session.post(url, data=form, headers=h) as r:
            return r.status, await r.text()


def call_form(sid: str, **kw: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT, "From": "+15555550123", "To": "+15550100000",
            "Direction": "inbound", "ApiVersion": "2010-04-01", "CallStatus": "in-progress", **kw}


async def settle(h: TwilioHarness) -> None:
    await asyncio.sleep(0)
    await h.adapter.settled()


def twilio_roster(tmp: Path) -> Path:
    """The sample roster with every softphone a Twilio Voice SDK client (``client:<agent id>``)."""
    from ivr.twilio.demo import write_client_roster

    return write_client_roster(ROOT / "agents.yaml", tmp / "agents.yaml")
