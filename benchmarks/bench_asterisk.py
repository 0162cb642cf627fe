"""300 concurrent calls through the live engine and the ARI stand-in: no event lost, event->command latency.

Every call is real traffic on 127.0.0.1: StasisStart over the WebSocket, the
engine's answer/play/bridge/originate requests over HTTP (each checked against
Asterisk's API description by the stand-in), the real router and a real SQLite
store. Each caller walks the sample clinic's menus (1, 1), waits in the
scheduling queue, is answered by an agent when one is free and otherwise hangs up.

Latency is measured from an ARI event's arrival at the engine to the end of its
handling (every command it caused sent *and answered*). The baseline, measured
in the same run on the same machine, is the least any engine could do: a bare
client that answers each StasisStart with one REST call and nothing else.

Run: ``python -m benchmarks.bench_asterisk [--calls 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from engine_harness import EngineHarness  # noqa: E402
from standin.ari import AriStandIn  # noqa: E402

from ivr.ari import AriClient, AriConfig  # noqa: E402

ALL = ("ana.lopez", "ben.carter", "chen.wu", "dolores.ruiz", "erin.nurse", "fatima.nurse", "gus.records")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def _until(pred: Any, session: Any = None, limit: float = 120.0) -> None:
    """Wait for the engine: woken by the session's ``changed`` event (300 pollers would eat the CPU
    the engine is being measured on)."""
    end = time.monotonic() + limit
    await asyncio.sleep(0)
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("a simulated caller waited too long for the engine")
        if session is None:
            await asyncio.sleep(0.005)
        else:
            session.changed.clear()
            if pred():
                return
            try:
                await asyncio.wait_for(session.changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass


async def _caller(h: EngineHarness, answered: list[str]) -> None:
    server, engine = h.server, h.engine
    cid = await server.inject_call(caller="+15555550123")
    await _until(lambda: cid in engine.sessions and engine.sessions[cid].state is not None)
    s = engine.sessions[cid]
    for node, key in (("main", "1"), ("appointments", "1")):
        while not (s.state.node == node and s.state.phase == "collect"):
            pb = h.current_playback(cid)
            if pb is not None and pb in s.playing:
                await server.finish_playback(pb)
            else:
                await _until(lambda: h.current_playback(cid) in s.playing
                             or (s.state.node == node and s.state.phase == "collect"), s)
        await server.send_dtmf(cid, key)
    # the queue, or (once its 40 places are taken) the tree's "full" fallback: a callback offer
    await _until(lambda: s.in_router or s.gone or (s.state.node != "appointments" and s.state.phase != "queue"), s)
    await asyncio.sleep(0.05)  # a moment in the queue
    leg = s.leg
    if leg is not None and leg.channel_id in server.channels:
        await server.answer_originated(leg.channel_id)
        await _until(lambda: s.talk_bridge is not None or s.gone, s)
        answered.append(cid)
        await server.hangup(leg.channel_id)  # the agent ends the conversation...
        await _until(lambda: s.leg is None or s.gone, s)
    await server.hangup(cid)  # ...and the caller hangs up (or gives up waiting)
    await _until(lambda: cid not in engine.sessions, s)


async def run_engine(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with EngineHarness(Path(tmp), login=ALL, announce_every=3600) as h:
            answered: list[str] = []
            t0 = time.perf_counter()
            await asyncio.gather(*(_caller(h, answered) for _ in range(calls)))
            await h.settle()
            wall = time.perf_counter() - t0
            # A session leaves `engine.sessions` before its call record is written: wait for the writes
            # (bounded), or a slow commit would be counted as a lost record.
            for _ in range(200):
                records = await h.routing.store.call_records()
                if len(records) >= calls:
                    break
                await asyncio.sleep(0.01)
            emitted = len(h.server.events)
            received = h.engine.events_in - 1  # the synthetic _Connected marker
            return {"wall": wall, "latencies": list(h.engine.latencies), "records": len(records),
                    "answered": len(answered), "emitted": emitted, "received": received,
                    "waiting_left": sum(1 for c in h.routing.router.calls if not c.endswith("-callback")),
                    "callbacks": sum(1 for c in h.routing.router.calls if c.endswith("-callback")),
                    "by_type": {k: list(v) for k, v in h.engine.latency_by_type.items()},
                    "requests": len(h.server.requests)}


async def run_baseline(calls: int) -> list[float]:
    """A bare consumer: each StasisStart answered with one POST, timed the same way as the engine."""
    async with AriStandIn() as server:
        client = AriClient(AriConfig(base_url=server.base_url, username=server.username,
                                     password=server.password, app=server.app_name))
        lat: list[float] = []
        done = asyncio.Event()

        async def handle(ev: dict[str, Any], rx: float) -> None:
            await client.answer(ev["channel"]["id"])
            lat.append(time.perf_counter() - rx)
            if len(lat) == calls:
                done.set()

        async def consume() -> None:
            async for ev in client.events():
                if ev.get("type") == "StasisStart":
                    asyncio.get_running_loop().create_task(handle(ev, time.perf_counter()))

        task = asyncio.get_running_loop().create_task(consume())
        await server.wait_connected()
        await asyncio.gather(*(server.inject_call() for _ in range(calls)))
        await asyncio.wait_for(done.wait(), 60)
        await client.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return lat


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args(argv)
    base = asyncio.run(run_baseline(args.calls))
    res = asyncio.run(run_engine(args.calls))
    lat = res["latencies"]
    b50, b99 = pct(base, 50) * 1e3, pct(base, 99) * 1e3
    e50, e99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
    lost = res["emitted"] - res["received"]
    print(f"{args.calls} concurrent calls through the engine and the ARI stand-in "
          f"({res['requests']} ARI requests, {res['received']} events, {res['wall']:.1f} s wall)")
    print(f"  events emitted {res['emitted']}, received {res['received']}, lost {lost}; "
          f"call records {res['records']}/{args.calls}; answered by agents {res['answered']}; "
          f"callers left waiting {res['waiting_left']}; callbacks booked (queue full) {res['callbacks']}")
    print(f"  event -> commands done   p50 {e50:7.2f} ms   p99 {e99:7.2f} ms   (mean {statistics.mean(lat) * 1e3:.2f} ms,"
          f" {len(lat)} events)")
    for kind, vals in sorted(res["by_type"].items(), key=lambda kv: -len(kv[1])):
        print(f"    {kind:24s} p50 {pct(vals, 50) * 1e3:7.2f} ms   p99 {pct(vals, 99) * 1e3:7.2f} ms   ({len(vals)})")
    print(f"  baseline (bare answer)   p50 {b50:7.2f} ms   p99 {b99:7.2f} ms")
    print(f"  ratio engine/baseline    p50 {e50 / b50:7.2f}x    p99 {e99 / b99:7.2f}x")
    return {"p50_ms": e50, "p99_ms": e99, "base_p50_ms": b50, "base_p99_ms": b99, "lost": lost,
            "records": res["records"], "calls": args.calls, "waiting_left": res["waiting_left"]}


if __name__ == "__main__":
    main()
