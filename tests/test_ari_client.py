"""The ARI client against the Asterisk stand-in on 127.0.0.1.

Reconnect delays come from an injected fake ``sleep`` that records them, so no
test waits real seconds; ``asyncio.wait_for(..., SAFETY)`` is only a safety net.
"""
from __future__ import annotations

import asyncio
import base64
import random
import socket
from typing import Any, Self

import pytest
from standin import apidocs

SHARED = apidocs.shared_dir()
pytestmark = pytest.mark.skipif(
    SHARED is None or not (SHARED / "ari-api-docs").is_dir(),
    reason="shared/asterisk/ari-api-docs not found beside the clone nor at /work/shared",
)
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web
from standin.ari import AriStandIn

from ivr.ari import (
    AriAuthError,
    AriBadRequest,
    AriClient,
    AriConfig,
    AriConflict,
    AriError,
    AriNotFound,
    AriServerError,
    AriUnavailable,
)
from ivr.ari.client import STABLE_AFTER
from ivr.errors import IvrError

SAFETY = 5.0  # seconds; a safety net only, never a timing assertion


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def config(server: AriStandIn | None = None, **kw: Any) -> AriConfig:
    base: dict[str, Any] = {"base_url": server.base_url if server else "http://127.0.0.1:9/ari",
                            "username": "USER", "password": "SECRET", "app": "ivr-engine"}
    base.update(kw)
    return AriConfig(**base)


class FakeSleep:
    """Records requested delays instead of sleeping; ``hook(n)`` runs after the n-th delay (1-based)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hooks: dict[int, Any] = {}

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        hook = self.hooks.pop(len(self.delays), None)
        if hook is not None:
            res = hook()
            if asyncio.iscoroutine(res):
                await res
        await asyncio.sleep(0)  # yield only


class Events:
    """Drains ``client.events()`` in a task so the test can wait for one event type."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.queue: asyncio.Queue = asyncio.Queue()
        self.seen: list[dict] = []

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        try:
            async for ev in self.client.events():
                self.seen.append(ev)
                await self.queue.put(ev)
        except BaseException as exc:  # hand failures to the waiting test
            await self.queue.put(exc)
            raise

    async def next(self, type_: str | None = None) -> dict:
        while True:
            ev = await asyncio.wait_for(self.queue.get(), SAFETY)
            if isinstance(ev, BaseException):
                raise ev
            if type_ is None or ev["type"] == type_:
                return ev

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), SAFETY)


def spy(server: AriStandIn) -> list[tuple[str, str, str]]:
    """Record (method, raw URL, Authorization) of every HTTP request the stand-in receives."""
    seen: list[tuple[str, str, str]] = []
    original = server._dispatch

    async def dispatch(request: web.Request):
        seen.append((request.method, str(request.rel_url), request.headers.get("Authorization", "")))
        return await original(request)

    server._dispatch = dispatch  # before start(): the router binds this attribute
    return seen


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------- config
def test_config_validates_and_hides_the_password():
    cfg = config(None)
    assert "SECRET" not in repr(cfg)
    with pytest.raises(ValueError):
        config(None, base_url="http://USER:SECRET@127.0.0.1:8088/ari")
    with pytest.raises(ValueError):
        config(None, base_url="ws://127.0.0.1:8088/ari")
    with pytest.raises(ValueError):
        config(None, initial_backoff=10, max_backoff=5)


def test_error_tree_ids():
    for cls, eid in [(AriError, "E-ARI"), (AriNotFound, "E-ARI-NOT-FOUND"), (AriConflict, "E-ARI-CONFLICT"),
                     (AriBadRequest, "E-ARI-BAD-REQUEST"), (AriAuthError, "E-ARI-AUTH"),
                     (AriServerError, "E-ARI-SERVER"), (AriUnavailable, "E-ARI-UNAVAILABLE")]:
        assert cls.error_id == eid
        assert issubclass(cls, AriError) and issubclass(cls, IvrError)


# ----------------------------------------------------------------------- REST
def test_auth_header_only_and_no_credentials_in_any_url():
    async def scenario():
        server = AriStandIn()
        seen = spy(server)
        async with server, AriClient(config(server)) as client, Events(client) as ev:
            await server.wait_connected()
            cid = await server.inject_call()
            await ev.next("StasisStart")
            await client.answer(cid)
            await client.set_variable(cid, "PATIENT_REF", "mrn-123")
            assert await client.get_variable(cid, "PATIENT_REF") == "mrn-123"
        assert len(seen) >= 4
        expected = "Basic " + base64.b64encode(b"USER:SECRET").decode()
        for method, url, auth in seen:
            assert auth == expected, (method, url)
            assert "SECRET" not in url and "USER" not in url and "api_key" not in url, url
        ws = [url for m, url, _ in seen if url.startswith("/ari/events")]
        assert ws == ["/ari/events?app=ivr-engine&subscribeAll=false"]

    run(scenario())


def test_call_flow_round_trips_produce_recorded_events_and_no_violations():
    async def scenario():
        async with AriStandIn() as server, AriClient(config(server)) as client, Events(client) as ev:
            await server.wait_connected()
            cid = await server.inject_call(caller="5550100", exten="100")
            start = await ev.next("StasisStart")
            assert start["args"] == ["inbound", "100"] and start["channel"]["id"] == cid

            assert await client.answer(cid) is None
            assert (await ev.next("ChannelStateChange"))["channel"]["state"] == "Up"

            pid = f"prompt-{cid.replace('.', '-')}"
            pb = await client.play(cid, ["sound:tt-monkeys"], playback_id=pid, lang="en")
            assert (pb["id"], pb["state"], pb["language"]) == (pid, "queued", "en")
            assert (await ev.next("PlaybackStarted"))["playback"]["id"] == pid
            await server.send_dtmf(cid, "1")
            assert (await ev.next("ChannelDtmfReceived"))["digit"] == "1"
            await client.stop_playback(pid)
            fin = await ev.next("PlaybackFinished")
            assert (fin["playback"]["id"], fin["playback"]["state"]) == (pid, "done")

            pb2 = await client.play(cid, ["sound:hello-world", "sound:vm-goodbye"])
            assert pb2["next_media_uri"] == "sound:vm-goodbye"
            await ev.next("PlaybackStarted")
            await server.finish_playback(pb2["id"])
            assert (await ev.next("PlaybackContinuing"))["playback"]["media_uri"] == "sound:vm-goodbye"
            await server.finish_playback(pb2["id"])
            await ev.next("PlaybackFinished")

            hold = await client.create_bridge("holding", name="queue-support-hold")
            assert hold["bridge_type"] == "holding" and hold["technology"] == "holding_bridge"
            await client.add_channel(hold["id"], cid)
            assert (await ev.next("ChannelEnteredBridge"))["bridge"]["id"] == hold["id"]

            agent = await client.originate("PJSIP/agent1001", app="ivr-engine", app_args=f"agent,{cid}",
                                           caller_id="Queue support <5550100>", timeout=20,
                                           variables={"QUEUE": "support"})
            aid = agent["id"]
            assert agent["state"] == "Down" and agent["caller"]["number"] == "5550100"
            _, _, query, body = next(r for r in server.requests if r[1] == "/ari/channels")
            assert body == {"variables": {"QUEUE": "support"}}
            assert "variables" not in query and query["appArgs"] == f"agent,{cid}"
            assert (await ev.next("Dial"))["peer"]["id"] == aid
            await server.answer_originated(aid)
            assert (await ev.next("StasisStart"))["args"] == ["agent", cid]

            mix = await client.create_bridge("mixing", bridge_id="call-1", name="queue-support-call")
            assert mix["id"] == "call-1"
            await client.add_channel(mix["id"], [cid, aid])
            moved = await ev.next("ChannelLeftBridge")
            assert (moved["bridge"]["id"], moved["channel"]["id"]) == (hold["id"], cid)
            await ev.next("ChannelConnectedLine")
            assert {b["id"] for b in await client.list_bridges()} == {hold["id"], "call-1"}
            assert {c["id"] for c in await client.list_channels()} == {cid, aid}

            await client.remove_channel(mix["id"], aid)
            left = await ev.next("ChannelLeftBridge")
            assert left["channel"]["id"] == aid
            rec = await client.record(aid, "vm-1", max_duration=60)
            assert (rec["name"], rec["format"]) == ("vm-1", "wav")
            await ev.next("RecordingStarted")
            await client.hangup(aid)
            assert (await ev.next("ChannelDestroyed"))["channel"]["id"] == aid

            await client.continue_in_dialplan(cid, context="from-caller", extension="200", priority=1)
            assert (await ev.next("StasisEnd"))["channel"]["id"] == cid
            await client.destroy_bridge(mix["id"])
            await client.destroy_bridge(hold["id"])
            assert (await ev.next("BridgeDestroyed"))["bridge"]["id"] == "call-1"
            assert server.violations == []
            sent = [(m, p) for m, p, _, _ in server.requests]
            assert ("DELETE", f"/ari/channels/{aid}") in sent
            assert next(q for m, p, q, _ in server.requests if m == "DELETE" and p.endswith(aid)) == {
                "reason": "normal"}
            rq = next(q for m, p, q, _ in server.requests if p.endswith("/record"))
            assert rq == {"name": "vm-1", "format": "wav", "maxDurationSeconds": "60", "beep": "true",
                          "terminateOn": "#"}

    run(scenario())


def test_rest_errors_map_to_the_exception_tree():
    async def scenario():
        async with AriStandIn() as server, AriClient(config(server)) as client, Events(client):
            await server.wait_connected()
            with pytest.raises(AriNotFound) as ei:
                await client.answer("no-such-channel-123")
            e = ei.value
            assert (e.status, e.message, e.method, e.path) == (
                404, "Channel not found", "POST", "/channels/no-such-channel-123/answer")
            assert e.error_id == "E-ARI-NOT-FOUND" and e.details["status"] == 404
            with pytest.raises(AriNotFound, match="Playback not found"):
                await client.stop_playback("gone")

            echo = await server.inject_call(exten="300", stasis=False)
            with pytest.raises(AriConflict) as ei:
                await client.answer(echo)
            assert (ei.value.status, ei.value.message) == (409, "Channel not in Stasis application")
            br = await client.create_bridge("mixing")
            with pytest.raises(AriConflict) as ei:
                await client.add_channel(br["id"], echo)
            assert ei.value.status == 422
            with pytest.raises(AriConflict, match="already exists"):
                await client.create_bridge("mixing", bridge_id=br["id"])
            with pytest.raises(AriBadRequest) as ei:
                await client.add_channel(br["id"], "no-such")
            assert (ei.value.status, ei.value.message) == (400, "Channel not found")

            # {"error": ...} bodies, and the query (a patient's number here) stays out of the error
            with pytest.raises(AriServerError) as ei:
                await client.originate("PJSIP/agent1003", app="ivr-engine", caller_id="Jane Roe <5550199>")
            e = ei.value
            assert (e.status, e.message, e.error_id) == (500, "Allocation failed", "E-ARI-SERVER")
            assert "5550199" not in str(e) and "5550199" not in repr(e.details) and "Roe" not in str(e)
            assert str(e) == "ARI POST /channels -> 500: Allocation failed"
            with pytest.raises(AriNotFound):
                await client.get_variable(echo, "NOT_SET")
            await client.destroy_bridge(br["id"])

    run(scenario())


def test_bad_credentials_raise_auth_error_without_retrying():
    async def scenario():
        server = AriStandIn()
        seen = spy(server)
        sleep = FakeSleep()
        async with server, AriClient(config(server, password="wrong"), sleep=sleep) as client:
            with pytest.raises(AriAuthError) as ei:
                await client.list_channels()
            assert (ei.value.status, ei.value.message) == (401, "Authentication required")
            with pytest.raises(AriAuthError) as ei:
                async for _ in client.events():
                    pass
            assert ei.value.error_id == "E-ARI-AUTH"
            assert sleep.delays == []
            assert [u for _, u, _ in seen if u.startswith("/ari/events")] == [
                "/ari/events?app=ivr-engine&subscribeAll=false"]

    run(scenario())


def test_connection_refused_is_unavailable_and_events_keep_retrying_until_close():
    async def scenario():
        port = closed_port()
        sleep = FakeSleep()
        cfg = config(None, base_url=f"http://127.0.0.1:{port}/ari", initial_backoff=1.0, max_backoff=4.0)
        async with AriClient(cfg, sleep=sleep, rng=lambda: 1.0) as client:
            with pytest.raises(AriUnavailable) as ei:
                await client.answer("1.1")
            assert ei.value.status is None and ei.value.error_id == "E-ARI-UNAVAILABLE"
            assert f"127.0.0.1:{port}" in ei.value.message
            sleep.hooks[5] = client.close  # close() during a backoff pause ends the iteration
            got = [ev async for ev in client.events()]
            assert got == []
            assert sleep.delays == [1.0, 2.0, 4.0, 4.0, 4.0]  # rng=1.0: the top of the jitter range

    run(scenario())


def test_request_timeout_is_unavailable():
    async def scenario():
        release = asyncio.Event()

        async def never(request):
            await release.wait()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", never)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            cfg = config(None, base_url=f"http://127.0.0.1:{port}/ari", request_timeout=0.05)
            async with AriClient(cfg) as client:
                with pytest.raises(AriUnavailable) as ei:
                    await client.request("GET", "/channels", params={"q": "PHI-VALUE"})
                assert ei.value.message == "timed out" and "PHI-VALUE" not in str(ei.value)
                assert ei.value.__cause__ is None
        finally:
            release.set()
            await runner.cleanup()

    run(scenario())


# --------------------------------------------------------------------- events
def test_backoff_delay_doubles_with_jitter_and_caps():
    lo = AriClient(config(None), rng=lambda: 0.0)
    hi = AriClient(config(None), rng=lambda: 0.999999)
    for n in range(12):
        base = min(90.0, 0.5 * 2 ** n)
        assert lo.backoff_delay(n) == pytest.approx(0.5 * base)
        assert 0.5 * base < hi.backoff_delay(n) <= base
    assert hi.backoff_delay(500) <= 90.0


def test_events_receive_stasis_and_dtmf_and_close_stops_iteration():
    async def scenario():
        async with AriStandIn() as server, AriClient(config(server)) as client:
            got: list[dict] = []

            async def consume():
                async for ev in client.events():
                    got.append(ev)
                    if ev["type"] == "ChannelDtmfReceived":
                        await client.close()

            task = asyncio.create_task(consume())
            await server.wait_connected()
            cid = await server.inject_call()
            await server.send_dtmf(cid, "7")
            await asyncio.wait_for(task, SAFETY)  # ends without an exception
            assert [e["type"] for e in got] == ["StasisStart", "ChannelDtmfReceived"]
            assert got[1]["digit"] == "7" and got[1]["channel"]["id"] == cid

            # close() from another task while the iterator waits for the socket
            client2 = AriClient(config(server))
            task2 = asyncio.create_task(consume_all(client2))
            await server.wait_connected()
            await client2.close()
            assert await asyncio.wait_for(task2, SAFETY) == []

    run(scenario())


async def consume_all(client: AriClient) -> list[dict]:
    return [ev async for ev in client.events()]


def test_events_reconnect_with_growing_jittered_backoff_reset_after_success():
    async def scenario():
        sleep = FakeSleep()
        now = [1000.0]
        async with AriStandIn() as server:
            client = AriClient(config(server, initial_backoff=0.5, max_backoff=4.0), sleep=sleep, rng=random.Random(7).random,
                               clock=lambda: now[0])
            async with client, Events(client) as ev:
                await server.wait_connected()
                cid = await server.inject_call()
                await ev.next("StasisStart")

                async def refuse(request):  # Asterisk up but the events socket refused (e.g. 503)
                    return web.Response(status=503)

                def allow():
                    del server._websocket

                # 1) a healthy connection drops; 6 attempts fail; the 7th succeeds
                server._websocket = refuse
                sleep.hooks[7] = allow
                await server.drop_websocket()
                rec = await ev.next("_Reconnected")
                assert rec == {"type": "_Reconnected", "attempt": 7}
                first = sleep.delays[:]
                assert len(first) == 7
                for n, d in enumerate(first):
                    base = min(4.0, 0.5 * 2 ** n)
                    assert 0.5 * base <= d <= base, (n, d)
                assert first[0] < first[1] < first[2]  # grows while below the cap
                assert all(2.0 <= d <= 4.0 for d in first[3:])  # capped at max_backoff
                assert len(set(first[3:])) > 1  # jittered, not a fixed delay

                # 2) the reconnected socket delivers an event: the next drop starts from initial
                await server.wait_connected()
                await server.send_dtmf(cid, "5")
                assert (await ev.next("ChannelDtmfReceived"))["digit"] == "5"
                server._websocket = refuse
                sleep.hooks[len(sleep.delays) + 3] = allow
                await server.drop_websocket()
                assert (await ev.next("_Reconnected"))["attempt"] == 3
                second = sleep.delays[7:]
                assert len(second) == 3
                for n, d in enumerate(second):
                    base = 0.5 * 2 ** n
                    assert 0.5 * base <= d <= base, (n, d)

                # 3) a connection that delivered nothing and did not stay up: no reset, keeps growing
                await server.wait_connected()
                await server.drop_websocket()
                assert (await ev.next("_Reconnected"))["attempt"] == 1
                assert 2.0 <= sleep.delays[-1] <= 4.0  # exponent 3 (2 failures + this quick drop)

                # 4) a quiet connection that stayed up (fake clock) resets the backoff too
                await server.wait_connected()
                now[0] += STABLE_AFTER
                await server.drop_websocket()
                assert (await ev.next("_Reconnected"))["attempt"] == 1
                assert 0.25 <= sleep.delays[-1] <= 0.5

                # events flow on the new socket; the engine resyncs over REST
                await server.wait_connected()
                await server.send_dtmf(cid, "6")
                assert (await ev.next("ChannelDtmfReceived"))["digit"] == "6"
                assert [c["id"] for c in await client.list_channels()] == [cid]
            assert [e["type"] for e in ev.seen].count("_Reconnected") == 4
            assert ev.task.done() and not ev.task.cancelled() and ev.task.exception() is None

    run(scenario())
