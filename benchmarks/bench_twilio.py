"""Twilio webhook answer times: whole calls through the engine's endpoints, beside a bare signed endpoint.

Calls are played by the simulated Twilio (signed webhooks over real HTTP on
127.0.0.1, TwiML followed verb by verb) through the sample clinic tree to an
agent and back. Each webhook's handling time is measured inside the server (from
the request reaching aiohttp to the TwiML being ready). The baseline, measured in
the same run, is the least a Twilio endpoint can do: check the signature and
answer a fixed ``<Say>``. Twilio allows 15 s per webhook; the target is
milliseconds.

Run: ``python -m benchmarks.bench_twilio [--calls 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from twilio.request_validator import RequestValidator  # noqa: E402

from ivr.ari.engine import TreeRoute  # noqa: E402
from ivr.clock import ShiftedClock  # noqa: E402
from ivr.tree import load_tree  # noqa: E402
from ivr.twilio.adapter import TwilioAdapter  # noqa: E402
from ivr.twilio.app import add_twilio_routes  # noqa: E402
from ivr.twilio.demo import write_client_roster  # noqa: E402
from ivr.twilio.rest import TwilioRest  # noqa: E402
from ivr.twilio.sim import FakeTwilioRest, SimTwilio  # noqa: E402
from ivr.web import build_app  # noqa: E402

ACCOUNT, TOKEN = "AC" + "0" * 32, "bench-token"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def timing_middleware(out: list[float]) -> Any:
    @web.middleware
    async def mw(request: web.Request, handler: Any) -> web.StreamResponse:
        t0 = time.perf_counter()
        resp = await handler(request)
        if request.path.startswith("/twilio/"):
            out.append(time.perf_counter() - t0)
        return resp

    return mw


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


async def run_engine(calls: int) -> tuple[list[float], int, int]:
    from datetime import datetime, timezone

    from routing.service import RoutingService

    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_client_roster(ROOT / "agents.yaml", Path(tmp) / "agents.yaml")
        # Real seconds pass here: no wrap-up and no expert-only first step, so a freed agent takes the next
        # caller at once and the run measures webhooks, not waiting.
        queues = yaml.safe_load((ROOT / "queues.yaml").read_text())
        for q in queues["queues"].values():
            q["wrap_up"] = 0
            q.pop("steps", None)
        (Path(tmp) / "queues.yaml").write_text(yaml.safe_dump(queues))
        clock = ShiftedClock(datetime(2026, 11, 23, 14, 30, tzinfo=timezone.utc))
        routing = await RoutingService.open(Path(tmp) / "agents.yaml", Path(tmp) / "queues.yaml",
                                            url=f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}", clock=clock.now)
        for a in ("ana.lopez", "ben.carter", "dolores.ruiz", "gus.records"):
            await routing.login(a)
        route = TreeRoute("clinic-main", load_tree(ROOT / "calltrees" / "clinic-main.yaml"))
        adapter = TwilioAdapter({}, route, clock=clock, routing=routing, fallback_number="+15550100200")
        app = build_app(_ok)
        app.middlewares.append(timing_middleware(times))
        add_twilio_routes(app, adapter, auth_token=TOKEN)
        runner, base = await serve(app)
        try:
            async with FakeTwilioRest(ACCOUNT, TOKEN) as rest:
                adapter.rest = TwilioRest(ACCOUNT, TOKEN, base, api_base=rest.base_url)
                async with SimTwilio(base, ACCOUNT, TOKEN, rest) as sim:
                    placed = [await sim.place_call(keys="1 1 5", agent="answer", talk_seconds=60, enqueue_timeout=30)
                              for _ in range(calls)]
                    await asyncio.gather(*(c.run() for c in placed))
                await adapter.settled()
            records = len(await routing.store.call_records())
            errors = sum(len(c.errors) for c in placed)
        finally:
            await runner.cleanup()
            await routing.close()
    return times, records, errors


async def _ok() -> dict[str, Any]:
    return {"status": "ok"}


async def run_baseline(requests: int) -> list[float]:
    times: list[float] = []
    validator = RequestValidator(TOKEN)

    async def bare(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not validator.validate(str(request.url), form, request.headers.get("X-Twilio-Signature", "")):
            raise web.HTTPForbidden()
        return web.Response(text="<Response><Say>Hello</Say></Response>", content_type="application/xml")

    app = web.Application(middlewares=[timing_middleware(times)])
    app.router.add_post("/twilio/bare", bare)
    runner, base = await serve(app)
    try:
        import aiohttp

        form = {"CallSid": "CA" + "1" * 32, "From": "+15555550123", "To": "+15550100000", "CallStatus": "ringing"}
        sig = validator.compute_signature(base + "/twilio/bare", form)
        async with aiohttp.ClientSession() as s:
            async def one() -> None:
                async with s.post(base + "/twilio/bare", data=form, headers={"X-Twilio-Signature": sig}) as r:
                    await r.read()
            for i in range(0, requests, 50):
                await asyncio.gather(*(one() for _ in range(min(50, requests - i))))
    finally:
        await runner.cleanup()
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    args = ap.parse_args(argv)
    times, records, errors = asyncio.run(run_engine(args.calls))
    base = asyncio.run(run_baseline(len(times)))
    e50, e99, b50, b99 = (pct(times, 50) * 1e3, pct(times, 99) * 1e3, pct(base, 50) * 1e3, pct(base, 99) * 1e3)
    print(f"{args.calls} concurrent Twilio calls through the clinic tree to an agent and back: "
          f"{len(times)} webhooks, {records} call records, {errors} errors")
    print(f"  engine webhook handling   p50 {e50:7.2f} ms   p99 {e99:7.2f} ms   max {max(times) * 1e3:7.2f} ms")
    print(f"  baseline (signature + fixed TwiML) p50 {b50:5.2f} ms   p99 {b99:7.2f} ms")
    print(f"  ratio engine/baseline     p50 {e50 / b50:6.1f}x    p99 {e99 / b99:6.1f}x")
    return {"p50_ms": e50, "p99_ms": e99, "base_p50_ms": b50, "base_p99_ms": b99, "records": records,
            "errors": errors, "webhooks": len(times)}


if __name__ == "__main__":
    main()
