"""The AMI client (panoramisk underneath) against the AMI stand-in on 127.0.0.1, and presence tracking.

Reconnect delays come from an injected fake ``sleep`` that records them and a
fake ``clock``, so no test waits real seconds.  ``asyncio.wait_for(..., SAFETY)``
is a safety net only; the two timeout tests use a 50 ms action timeout because
a timeout is what they check.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from standin import apidocs
from standin.ami import AmiStandIn

from ivr.ami import (
    NEVER_RESENT,
    STABLE_AFTER,
    AmiActionFailed,
    AmiAuthError,
    AmiClient,
    AmiConfig,
    AmiError,
    AmiTimeout,
    AmiUnavailable,
    PresenceChange,
    PresenceTracker,
    parse_frame,
    read_presence,
)
from ivr.backoff import jittered_backoff
from ivr.errors import IvrError

SAFETY = 5.0  # seconds; a safety net only, never a timing assertion
SHARED = apidocs.shared_dir()
needs_transcripts = pytest.mark.skipif(
    SHARED is None or not (SHARED / "transcripts").is_dir(),
    reason="shared/asterisk/transcripts not found beside the clone nor at /work/shared",
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def config(ami: AmiStandIn | None = None, **kw: Any) -> AmiConfig:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": ami.port if ami else closed_port(),
                            "username": "USER", "password": "SECRET", "ping_interval": 0}
    base.update(kw)
    return AmiConfig(**base)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeSleep:
    """Records requested delays instead of sleeping; ``hooks[n]`` runs at the n-th delay (1-based)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hooks: dict[int, Callable[[], Any]] = {}

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        hook = self.hooks.pop(len(self.delays), None)
        if hook is not None:
            res = hook()
            if asyncio.iscoroutine(res):
                await res
        await asyncio.sleep(0)  # yield only


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Hooks:
    """on_connected / on_disconnected recorders the test can wait on."""

    def __init__(self) -> None:
        self.connects = 0
        self._connected: asyncio.Queue[int] = asyncio.Queue()
        self._disconnected: asyncio.Queue[int] = asyncio.Queue()
        self.disconnects = 0

    async def on_connected(self) -> None:
        self.connects += 1
        self._connected.put_nowait(self.connects)

    def on_disconnected(self) -> None:
        self.disconnects += 1
        self._disconnected.put_nowait(self.disconnects)

    async def connected(self) -> int:
        return await asyncio.wait_for(self._connected.get(), SAFETY)

    async def disconnected(self) -> int:
        return await asyncio.wait_for(self._disconnected.get(), SAFETY)


def client_for(ami: AmiStandIn | None, hooks: Hooks | None = None, **kw: Any) -> AmiClient:
    cfg_kw = {k: kw.pop(k) for k in list(kw) if k in AmiConfig.model_fields}
    hooks = hooks or Hooks()
    return AmiClient(config(ami, **cfg_kw), on_connected=hooks.on_connected,
                     on_disconnected=hooks.on_disconnected, **kw)


@asynccontextmanager
async def supervised(client: AmiClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.close()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), SAFETY)


class Events:
    """Collects events from ``client.on_event`` so a test can wait for one."""

    def __init__(self, client: AmiClient) -> None:
        self.queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.seen: list[dict[str, str]] = []
        client.on_event(self._put)

    def _put(self, event: dict[str, str]) -> None:
        self.seen.append(event)
        self.queue.put_nowait(event)

    async def next(self, name: str, **match: str) -> dict[str, str]:
        while True:
            ev = await asyncio.wait_for(self.queue.get(), SAFETY)
            if ev.get("Event") == name and all(ev.get(k) == v for k, v in match.items()):
                return ev


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop (which serves the loopback sockets) until ``predicate`` holds."""
    async def spin() -> None:
        while not predicate():
            await asyncio.sleep(0)
    await asyncio.wait_for(spin(), SAFETY)


PING = {"Action": "Ping"}


# ----------------------------------------------------------- backoff, config
def test_jittered_backoff_bounds_growth_and_cap():
    assert jittered_backoff(0, 0.5, 90, lambda: 0.0) == 0.25
    assert jittered_backoff(0, 0.5, 90, lambda: 1.0) == 0.5
    assert [jittered_backoff(n, 0.5, 4, lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert jittered_backoff(10_000, 0.5, 90, lambda: 1.0) == 90  # no OverflowError after a long outage
    assert jittered_backoff(3, 0.5, 90, lambda: 7.0) == 4  # a faulty rng cannot exceed the base
    assert jittered_backoff(3, 0.5, 90, lambda: -1.0) == 2
    for bad in [(-1, 0.5, 90), (0, 0, 90), (0, 0.5, 0)]:
        with pytest.raises(ValueError):
            jittered_backoff(*bad, lambda: 0.5)


def test_config_hides_the_password_and_refuses_header_injection():
    cfg = config(None)
    assert "SECRET" not in repr(cfg) and "SECRET" not in str(cfg)
    default = AmiConfig(username="u", password="p")
    assert (default.host, default.port, default.action_timeout, default.initial_backoff, default.max_backoff) == (
        "127.0.0.1", 5038, 5.0, 0.5, 90.0)
    with pytest.raises(ValueError):
        default.port = 1  # frozen
    with pytest.raises(ValueError):
        config(None, password="x\r\nAction: Originate")
    with pytest.raises(ValueError):
        config(None, initial_backoff=10, max_backoff=5)
    with pytest.raises(ValueError):
        cfg.__class__.model_validate({**cfg.model_dump(), "action_timeout": 0})


def test_error_tree_ids():
    for cls, eid in [(AmiError, "E-AMI"), (AmiAuthError, "E-AMI-AUTH"), (AmiTimeout, "E-AMI-TIMEOUT"),
                     (AmiUnavailable, "E-AMI-UNAVAILABLE"), (AmiActionFailed, "E-AMI-ACTION")]:
        assert cls.error_id == eid
        assert issubclass(cls, AmiError) and issubclass(cls, IvrError)
    exc = AmiActionFailed("No such channel", action="Hangup", action_id="a1")
    assert str(exc) == "AMI Hangup: No such channel"
    assert exc.details["action_id"] == "a1" and exc.message == "No such channel"


def test_action_validation_refuses_injection_and_session_actions():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            await client.connect()
            with pytest.raises(ValueError) as ei:
                await client.action({"Action": "Originate", "CallerID": "x <5550123>\r\nAction: Hangup"})
            assert "5550123" not in str(ei.value)  # the value is not echoed
            for bad in ({"Action": "Login", "Username": "x"}, {"Action": "Logoff"}, {"Channel": "x"},
                        {"Action": "Ping", "action": "Ping"}, {"Action": "Ping", "Bad Key": "1"}):
                with pytest.raises(ValueError):
                    await client.action(bad)
            assert ami.actions("originate") == [] and len(ami.received) == 1  # only the Login went out

    run(scenario())


# ---------------------------------------------------------------- connecting
def test_login_ping_and_events_with_wire_keys():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            events = Events(client)
            await client.connect()
            assert client.connected
            login = ami.actions("login")
            assert len(login) == 1 and login[0]["username"] == "USER" and login[0]["events"] == "on"
            pong = await client.action(PING)
            assert pong["Response"] == "Success" and pong["Ping"] == "Pong" and pong["ActionID"]
            booted = await events.next("FullyBooted")
            assert list(booted) == ["Event", "Privilege", "Uptime", "LastReload", "Status"]
            await ami.push_event("PeerStatus", [("Privilege", "system,all"), ("ChannelType", "PJSIP"),
                                                ("Peer", "PJSIP/agent1001"), ("PeerStatus", "Reachable")])
            ev = await events.next("PeerStatus")
            assert ev == {"Event": "PeerStatus", "Privilege": "system,all", "ChannelType": "PJSIP",
                          "Peer": "PJSIP/agent1001", "PeerStatus": "Reachable"}
        assert not client.connected
        assert [m["action"] for m in ami.received][-1] == "Logoff"  # close() logs off

    run(scenario())


def test_connect_returns_only_once_login_is_answered():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            gate = ami.gate("login")
            task = asyncio.create_task(client.connect())
            await until(lambda: len(ami.actions("login")) == 1)
            await asyncio.sleep(0)
            assert not task.done() and not client.connected
            gate.set()
            await asyncio.wait_for(task, SAFETY)
            assert client.connected

    run(scenario())


def test_bad_password_raises_auth_error_and_is_never_retried():
    async def scenario():
        async with AmiStandIn() as ami:
            sleep = FakeSleep()
            hooks = Hooks()
            async with client_for(ami, hooks, password="wrong-secret", sleep=sleep) as client:
                with pytest.raises(AmiAuthError) as ei:
                    await client.connect()
                assert ei.value.error_id == "E-AMI-AUTH" and ei.value.message == "Authentication failed"
                assert "wrong-secret" not in str(ei.value.details) and not client.connected
                with pytest.raises(AmiAuthError):
                    await asyncio.wait_for(client.run(), SAFETY)
            assert sleep.delays == []  # run() gave up at once
            assert len(ami.actions("login")) == 2 and hooks.connects == 0

    run(scenario())


def test_unreachable_asterisk_raises_unavailable_and_run_keeps_trying():
    async def scenario():
        sleep = FakeSleep()
        client = client_for(None, sleep=sleep, rng=lambda: 1.0)
        with pytest.raises(AmiUnavailable) as ei:
            await client.connect()
        assert "cannot connect to 127.0.0.1" in ei.value.message
        sleep.hooks[4] = client.close
        await asyncio.wait_for(client.run(), SAFETY)  # returns cleanly on close()
        assert sleep.delays == [0.5, 1.0, 2.0, 4.0]

    run(scenario())


# ------------------------------------------------------------------- actions
def test_list_action_returns_its_items():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            await client.connect()
            await ami.register("agent1002")
            items = await client.action({"Action": "PJSIPShowEndpoints"})
            assert isinstance(items, list)
            assert [i["ObjectName"] for i in items] == ami.endpoints
            assert all(i["Event"] == "EndpointList" for i in items)  # no Response, no ...Complete
            assert {i["ObjectName"]: i["DeviceState"] for i in items}["agent1002"] == "Not in use"
            assert items[0]["ActionID"] == ami.actions("pjsipshowendpoints")[0]["actionid"]
            contacts = await client.action({"Action": "PJSIPShowContacts"})
            assert [c["Endpoint"] for c in contacts] == ["agent1002"]

    run(scenario())


def test_error_response_raises_action_failed_with_asterisks_message():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            await client.connect()
            with pytest.raises(AmiActionFailed) as ei:
                await client.action({"Action": "NoSuchAction"})
            assert ei.value.message == ("Invalid/unknown command: NoSuchAction. "
                                        "Use Action: ListCommands to show available commands.")
            assert ei.value.action == "NoSuchAction" and ei.value.error_id == "E-AMI-ACTION"
            with pytest.raises(AmiActionFailed) as ei:
                await client.action({"Action": "PJSIPShowContacts"})  # a list action refused
            assert ei.value.message == "No Contacts found"  # Asterisk's trailing \n stripped
            with pytest.raises(AmiActionFailed, match="Originate failed"):
                await client.action({"Action": "Originate", "Channel": "PJSIP/agent1003",
                                     "Application": "Playback", "Data": "hello-world"}, idempotent=False)
            assert (await client.action(PING))["Ping"] == "Pong"  # the connection is fine

    run(scenario())


def test_action_timeout_and_a_late_answer_does_not_confuse_the_next_action():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami, action_timeout=0.05) as client:
            await client.connect()
            gate = ami.gate("ping")
            with pytest.raises(AmiTimeout) as ei:
                await client.action(PING)  # config.action_timeout applies
            assert ei.value.error_id == "E-AMI-TIMEOUT" and not ei.value.outcome_unknown
            late_id = ei.value.action_id
            with pytest.raises(AmiTimeout) as ei:
                await client.action({"Action": "QueuePause", "Interface": "PJSIP/agent1001"},
                                    timeout=0.05, idempotent=False)
            assert ei.value.outcome_unknown  # a non-idempotent action may have run
            gate.set()  # the late Ping answer now arrives, then the next one
            pong = await client.action(PING, timeout=SAFETY)
            assert pong["ActionID"] != late_id and pong["Ping"] == "Pong"
            assert client.connected

    run(scenario())


def test_async_originate_returns_when_queued_and_originate_response_is_an_event():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            events = Events(client)
            await client.connect()
            await ami.register("agent1002")
            answer = await client.action({"Action": "Originate", "Channel": "PJSIP/agent1002",
                                          "Application": "Playback", "Data": "hello-world", "Async": True,
                                          "Variable": {"ORIGIN": "ami"}}, idempotent=False)
            assert answer["Message"] == "Originate successfully queued"
            ev = await events.next("OriginateResponse", ActionID=answer["ActionID"])
            assert ev["Response"] == "Success" and ev["Reason"] == "4"
            sent = ami.actions("originate")[0]
            assert sent["async"] == "true" and sent["variable"] == "ORIGIN=ami"

    run(scenario())


# ------------------------------------------------------------- supervision
def test_supervisor_reconnects_with_growing_capped_jittered_backoff_and_resyncs():
    jitter = [0.0, 0.999, 0.5, 0.25, 0.75, 0.1, 0.9, 0.3, 0.6]

    async def scenario():
        sleep, clock, hooks = FakeSleep(), FakeClock(), Hooks()
        rng = iter(jitter)
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=sleep, clock=clock, rng=lambda: next(rng),
                                initial_backoff=0.5, max_backoff=4)
            async with supervised(client):
                assert await hooks.connected() == 1
                sleep.hooks[7] = ami.restart  # Asterisk is back at the 7th pause
                await ami.stop()  # drops the connection, then refuses connects
                assert await hooks.connected() == 2
                assert hooks.disconnects == 1
                bases = [0.5, 1, 2, 4, 4, 4, 4]
                assert sleep.delays == pytest.approx([b * (0.5 + 0.5 * r) for b, r in zip(bases, jitter)])
                assert all(b / 2 <= d <= b for d, b in zip(sleep.delays, bases))
                assert max(sleep.delays) <= 4
                assert len(ami.actions("login")) == 2
                assert (await client.action(PING))["Ping"] == "Pong"

                # A connection that stayed up STABLE_AFTER seconds resets the backoff ...
                clock.now += STABLE_AFTER
                await ami.drop_clients()
                assert await hooks.connected() == 3
                assert sleep.delays[7] == pytest.approx(0.5 * (0.5 + 0.5 * jitter[7]))
                # ... a connection dropped at once does not.
                await ami.drop_clients()
                assert await hooks.connected() == 4
                assert sleep.delays[8] == pytest.approx(1.0 * (0.5 + 0.5 * jitter[8]))

    run(scenario())


def test_on_connected_resyncs_presence_missed_during_the_gap():
    async def scenario():
        sleep = FakeSleep()
        tracker = PresenceTracker(["PJSIP/agent1001", "PJSIP/agent1002"])
        resyncs: asyncio.Queue[list[PresenceChange]] = asyncio.Queue()
        async with AmiStandIn() as ami:
            async def resync() -> None:  # actions work inside on_connected
                resyncs.put_nowait(await read_presence(client, tracker))

            client = AmiClient(config(ami), on_connected=resync, sleep=sleep)
            async with supervised(client):
                first = await asyncio.wait_for(resyncs.get(), SAFETY)
                assert sorted((c.endpoint, c.online) for c in first) == [
                    ("PJSIP/agent1001", False), ("PJSIP/agent1002", False)]
                sleep.hooks[1] = lambda: ami.register("agent1002")  # while disconnected: its events are lost
                await ami.drop_clients()
                assert await asyncio.wait_for(resyncs.get(), SAFETY) == [
                    PresenceChange("PJSIP/agent1002", True, "PJSIPShowEndpoints")]

    run(scenario())


def test_close_during_login_leaves_no_connection_open():
    async def scenario():
        async with AmiStandIn() as ami:
            client = client_for(ami, sleep=FakeSleep())
            gate = ami.gate("login")
            task = asyncio.create_task(client.run())
            await until(lambda: len(ami.actions("login")) == 1)
            closing = asyncio.create_task(client.close())
            await asyncio.sleep(0)
            gate.set()
            await asyncio.wait_for(asyncio.gather(closing, task), SAFETY)
            await until(lambda: ami.connections == 0)  # the stand-in saw the connection end
            assert not client.connected and len(ami.actions("login")) == 1

    run(scenario())


def test_originate_in_flight_when_the_connection_drops_is_not_replayed():
    async def scenario():
        sleep, hooks = FakeSleep(), Hooks()
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=sleep)
            async with supervised(client):
                await hooks.connected()
                await ami.register("agent1002")
                ami.drop_on = {"originate", "queueadd"}
                with pytest.raises(AmiUnavailable) as ei:
                    await client.action({"Action": "Originate", "Channel": "PJSIP/agent1002",
                                         "Application": "Playback", "Data": "hello-world", "Async": "true",
                                         "CallerID": "Clinic <5550199>"}, idempotent=True)
                assert ei.value.outcome_unknown and "outcome is unknown" in ei.value.message
                await hooks.connected()
                with pytest.raises(AmiUnavailable) as ei:
                    await client.action({"Action": "QueueAdd", "Queue": "support",
                                         "Interface": "PJSIP/agent1001"}, idempotent=False)
                assert ei.value.outcome_unknown
                ami.drop_on = set()
                assert await hooks.connected() == 3
                # panoramisk would re-send after FullyBooted, i.e. before this Ping is read
                assert (await client.action(PING))["Ping"] == "Pong"
                assert len(ami.actions("originate")) == 1
                assert len(ami.actions("queueadd")) == 1
                assert "originate" in NEVER_RESENT

    run(scenario())


def test_idempotent_action_in_flight_is_resent_after_the_reconnect():
    async def scenario():
        sleep, hooks = FakeSleep(), Hooks()
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=sleep)
            async with supervised(client):
                await hooks.connected()
                ami.drop_on = {"pjsipshowendpoints"}
                sleep.hooks[1] = ami.drop_on.clear  # Asterisk answers on the next connection
                items = await client.action({"Action": "PJSIPShowEndpoints"}, timeout=SAFETY)
                assert [i["ObjectName"] for i in items] == ami.endpoints
                sent = ami.actions("pjsipshowendpoints")
                assert len(sent) == 2 and sent[0]["actionid"] == sent[1]["actionid"]
                assert hooks.connects == 2

    run(scenario())


def test_action_while_disconnected_raises_at_once():
    async def scenario():
        async with AmiStandIn() as ami:
            hooks = Hooks()
            client = client_for(ami, hooks)
            with pytest.raises(AmiUnavailable, match="not connected"):
                await client.action(PING, timeout=3600)  # never connected
            await client.connect()
            await ami.drop_clients()
            await hooks.disconnected()
            assert not client.connected
            with pytest.raises(AmiUnavailable):
                await asyncio.wait_for(client.action(PING, timeout=3600), SAFETY)  # no hang
            # in flight when the connection drops, with nobody to reconnect: fails, no hang
            await client.connect()
            ami.drop_on = {"ping"}
            with pytest.raises(AmiUnavailable, match="no supervisor"):
                await asyncio.wait_for(client.action(PING, timeout=3600), SAFETY)
            await client.close()

            # during the supervisor's backoff pause
            paused = asyncio.Event()
            release = asyncio.Event()

            async def slow_sleep(delay: float) -> None:
                paused.set()
                await release.wait()

            ami.drop_on = set()
            hooks2 = Hooks()
            client2 = client_for(ami, hooks2, sleep=slow_sleep)
            async with supervised(client2):
                await hooks2.connected()
                await ami.drop_clients()
                await asyncio.wait_for(paused.wait(), SAFETY)
                with pytest.raises(AmiUnavailable):
                    await asyncio.wait_for(client2.action(PING, timeout=3600), SAFETY)
                release.set()
                await hooks2.connected()
                assert (await client2.action(PING))["Ping"] == "Pong"

    run(scenario())


def test_close_fails_actions_in_flight_and_ends_run():
    async def scenario():
        hooks = Hooks()
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=FakeSleep())
            task = asyncio.create_task(client.run())
            await hooks.connected()
            ami.gate("ping")
            pending = asyncio.create_task(client.action(PING, timeout=3600))
            await until(lambda: len(ami.actions("ping")) == 1)
            await client.close()
            with pytest.raises(AmiUnavailable):
                await asyncio.wait_for(pending, SAFETY)
            await asyncio.wait_for(task, SAFETY)  # run() returned, no exception
            assert hooks.disconnects == 0  # a deliberate close is not an outage

    run(scenario())


def test_keepalive_drops_a_connection_whose_pings_go_unanswered():
    async def scenario():
        sleep, hooks = FakeSleep(), Hooks()
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=sleep, ping_interval=20, action_timeout=0.05)
            ami.silent = {"ping"}  # Login is answered, keepalive Pings are not
            async with supervised(client):
                assert await hooks.connected() == 1
                assert await hooks.connected() == 2
                assert sleep.delays[0] == 20  # the keepalive interval, then a backoff pause
                assert 0.25 <= sleep.delays[1] <= 0.5
                assert hooks.disconnects == 1

    run(scenario())


def test_shutdown_event_counts_as_a_lost_connection():
    async def scenario():
        sleep, hooks = FakeSleep(), Hooks()
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=sleep)
            async with supervised(client):
                await hooks.connected()
                await ami.push_event("Shutdown", [("Privilege", "system,all"), ("Shutdown", "Cleanly"),
                                                  ("Restart", "True")])
                assert await hooks.connected() == 2 and hooks.disconnects == 1

    run(scenario())


# --------------------------------------------------------- robustness, PHI
def test_garbled_frame_is_logged_without_content_and_dropped(caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            events = Events(client)
            await client.connect()
            await ami.push_raw(b"\xff\xfe\x00garbage 5550123 no colon here\r\nmore junk\r\n\r\n")
            await ami.push_raw(b"Event: UserEvent\r\nUserEvent: probe\r\nthis line is junk 5550124\r\n\r\n")
            # A frame split inside a two-byte UTF-8 character over two TCP reads.  Fed straight
            # into the live protocol: two socket writes may arrive as one read.
            raw = "Event: UserEvent\r\nUserEvent: split\r\nName: José\r\n\r\n".encode()
            cut = raw.index("é".encode()) + 1
            protocol = client._link.protocol  # private on purpose: see above
            assert (await events.next("UserEvent"))["UserEvent"] == "probe"
            protocol.data_received(raw[:cut])
            protocol.data_received(raw[cut:])
            assert (await events.next("UserEvent"))["Name"] == "José"
            assert (await client.action(PING))["Ping"] == "Pong"
            assert client.connected
            assert [e["Event"] for e in events.seen if e["Event"] not in ("FullyBooted", "SuccessfulAuth")] == [
                "UserEvent", "UserEvent"]

    run(scenario())
    text = caplog.text
    assert "dropped a garbled frame" in text and "ignored 1 malformed line(s) in a frame (Event UserEvent)" in text
    assert "garbage" not in text and "5550123" not in text and "5550124" not in text and "José" not in text


def test_no_phi_or_secret_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    phi = ["5550199", "Jane Roe", "mrn-778", "5550100", "Test Caller", "5550111", "SECRET", "4155550"]

    async def scenario():
        sleep, hooks = FakeSleep(), Hooks()
        async with AmiStandIn() as ami:
            client = client_for(ami, hooks, sleep=sleep)
            events = Events(client)
            async with supervised(client):
                await hooks.connected()
                await ami.register("agent1002")
                originate = {"Action": "Originate", "Channel": "PJSIP/agent1002", "Context": "from-agents",
                             "Exten": "4155550", "Priority": "1", "Async": "true",
                             "CallerID": "Jane Roe <5550199>", "Variable": {"PATIENT_MRN": "mrn-778"}}
                answer = await client.action(originate, idempotent=False)
                resp = await events.next("OriginateResponse", ActionID=answer["ActionID"])
                assert resp["CallerIDNum"] == "5550199"  # the event carries PHI ...
                await ami.push_event("Newchannel", [("Channel", "PJSIP/caller-00000015"),
                                                    ("CallerIDNum", "5550100"), ("CallerIDName", "Test Caller"),
                                                    ("ConnectedLineNum", "5550111"), ("Exten", "4155550")])
                await events.next("Newchannel")
                with pytest.raises(AmiActionFailed):
                    await client.action({"Action": "Getvar", "Channel": "PJSIP/x", "Variable": "mrn-778"})
                ami.silent = {"sendtext"}
                with pytest.raises(AmiTimeout):
                    await client.action({"Action": "SendText", "Message": "Jane Roe 5550199"}, timeout=0.05)
                ami.drop_on = {"originate"}
                with pytest.raises(AmiUnavailable):
                    await client.action(originate)
                ami.drop_on = set()
                await hooks.connected()

    run(scenario())
    text = caplog.text
    assert "Originate" in text and "Newchannel" in text and "lost" in text  # it did log, by name
    leaked = [p for p in phi if p in text]
    assert leaked == []


# ------------------------------------------------------------------ presence
def test_presence_from_standin_registration_and_unregistration_reported_once():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            tracker = PresenceTracker()
            changes: list[PresenceChange] = []
            events = Events(client)
            client.on_event(lambda ev: changes.extend(tracker.apply(ev)))
            await client.connect()
            await ami.register("agent1002")
            await events.next("DeviceStateChange", Device="PJSIP/agent1002")
            assert changes == [PresenceChange("PJSIP/agent1002", True, "PeerStatus")]
            await ami.device_state("PJSIP/agent1002", "INUSE")  # a call: still online, no change
            await events.next("DeviceStateChange", State="INUSE")
            await ami.unregister("agent1002")
            await events.next("DeviceStateChange", Device="PJSIP/agent1002", State="UNAVAILABLE")
            assert changes == [PresenceChange("PJSIP/agent1002", True, "PeerStatus"),
                               PresenceChange("PJSIP/agent1002", False, "PeerStatus")]
            assert tracker.online("PJSIP/agent1002") is False

    run(scenario())


def test_presence_snapshot_from_pjsipshowendpoints():
    async def scenario():
        async with AmiStandIn() as ami, client_for(ami) as client:
            await client.connect()
            await ami.register("agent1001")
            first = await read_presence(client)
            assert {c.endpoint: c.online for c in first} == {
                "PJSIP/agent1001": True, "PJSIP/agent1002": False, "PJSIP/agent1003": False,
                "PJSIP/caller": False, "PJSIP/caller2": False}
            assert {c.source for c in first} == {"PJSIPShowEndpoints"}
            tracker = PresenceTracker(["PJSIP/agent1001", "PJSIP/agent1002"])
            assert len(await read_presence(client, tracker)) == 2
            assert await read_presence(client, tracker) == []  # nothing changed
            await ami.register("agent1002")  # the tracker is not fed events here: a resync finds it
            await ami.unregister("agent1001")
            assert await read_presence(client, tracker) == [
                PresenceChange("PJSIP/agent1001", False, "PJSIPShowEndpoints"),
                PresenceChange("PJSIP/agent1002", True, "PJSIPShowEndpoints")]
            ami.endpoints = []  # Asterisk answers an error when there are none: an empty list here

            class NoEndpoints:
                async def action(self, action, *, timeout=None, idempotent=True):
                    raise AmiActionFailed("No endpoints found", action=action["Action"])
            assert await read_presence(NoEndpoints()) == []

    run(scenario())


def _transcript(name: str) -> list[dict]:
    path = next((SHARED / "transcripts").glob(f"{name}*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_transcripts
def test_g1_transcript_replay_agent_goes_online_at_registration_and_offline_at_unregistration():
    g1 = _transcript("g1_")
    notes = {d["text"]: d["t"] for d in g1 if d["dir"] == "note"}
    frames = [d for d in g1 if d["dir"] == "ami_in" and d["kind"] in ("Event", "Response")]
    tracker = PresenceTracker()
    items = [parse_frame(d["raw"]) for d in frames if d.get("action_id") == "rec-5" and d["kind"] == "Event"]
    snap = tracker.snapshot(items)
    assert {c.endpoint for c in snap} == {f"PJSIP/{n}" for n in
                                          ("agent1001", "agent1002", "agent1003", "caller", "caller2")}
    assert not any(c.online for c in snap)
    timeline: list[tuple[float, PresenceChange]] = []
    for d in frames:
        if d["kind"] != "Event":
            continue
        event = parse_frame(d["raw"])
        assert event is not None and event["Event"] == d["name"]
        timeline += [(d["t"], c) for c in tracker.apply(event)]
    assert [c for _, c in timeline] == [PresenceChange("PJSIP/agent1002", True, "PeerStatus"),
                                        PresenceChange("PJSIP/agent1002", False, "PeerStatus")]
    (t_on, _), (t_off, _) = timeline
    assert notes["baresip agent1002 starts and registers"] <= t_on <= notes["agent1002 registered: True"]
    assert notes["baresip agent1002 ctrl_tcp command 'quit '"] <= t_off <= notes["agent1002 unregistered: True"]


@needs_transcripts
def test_g2_transcript_replay_ignores_calls_and_queue_devices():
    g2 = _transcript("g2_")
    events = [parse_frame(d["raw"]) for d in g2 if d["dir"] == "ami_in" and d["kind"] == "Event"]
    agents = PresenceTracker(["PJSIP/agent1001", "PJSIP/agent1002"])
    changes = [c for ev in events for c in agents.apply(ev)]
    assert changes == [PresenceChange("PJSIP/agent1001", True, "PeerStatus"),
                       PresenceChange("PJSIP/agent1001", False, "PeerStatus")]
    everyone = PresenceTracker()
    seen = {c.endpoint for ev in events for c in everyone.apply(ev)}
    assert "Queue:support_avail" not in seen and "PJSIP/agent1001" in seen


def test_tracker_rules_per_source():
    t = PresenceTracker()
    dsc = lambda dev, st: {"Event": "DeviceStateChange", "Device": dev, "State": st}
    assert t.apply(dsc("PJSIP/1001", "NOT_INUSE")) == [PresenceChange("PJSIP/1001", True, "DeviceStateChange")]
    for state in ("INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD", "NOT_INUSE"):
        assert t.apply(dsc("PJSIP/1001", state)) == []
    assert t.apply(dsc("PJSIP/1001", "INVALID")) == [PresenceChange("PJSIP/1001", False, "DeviceStateChange")]
    assert t.apply(dsc("PJSIP/1001", "UNKNOWN")) == []  # already offline
    assert t.apply(dsc("Queue:support_avail", "NOT_INUSE")) == []
    assert t.apply(dsc("PJSIP/1001", "SOMETHING_NEW")) == []

    peer = lambda st: {"Event": "PeerStatus", "Peer": "PJSIP/1002", "PeerStatus": st}
    assert [c.online for c in t.apply(peer("Registered"))] == [True]
    assert [c.online for c in t.apply(peer("Unregistered"))] == [False]

    def contact(st: str, uri: str) -> dict[str, str]:
        return {"Event": "ContactStatus", "URI": uri, "ContactStatus": st, "AOR": "1003",
                "EndpointName": "1003"}
    assert t.apply(contact("Created", "sip:a@h1")) == [PresenceChange("PJSIP/1003", True, "ContactStatus")]
    assert t.apply(contact("Reachable", "sip:b@h2")) == []  # a second contact
    assert t.apply(contact("Removed", "sip:a@h1")) == []  # b is still registered
    assert t.apply(contact("Unknown", "sip:b@h2")) == []
    assert t.apply(contact("Unreachable", "sip:b@h2")) == [PresenceChange("PJSIP/1003", False, "ContactStatus")]
    assert t.apply({"Event": "ContactStatus", "URI": "sip:c@h", "ContactStatus": "NonQualified",
                    "AOR": "1004"}) == [PresenceChange("PJSIP/1004", True, "ContactStatus")]  # no EndpointName

    snap = t.snapshot([
        {"Event": "EndpointList", "ObjectName": "1005", "DeviceState": "In use",
         "Contacts": "1005/sip:x@h,1005/sip:y@h,"},
        {"Event": "EndpointList", "ObjectName": "1006", "DeviceState": "Ring+Inuse", "Contacts": ""},
        {"Event": "EndpointList", "ObjectName": "1007", "DeviceState": "Gibberish"},
        {"Event": "EndpointListComplete", "EventList": "Complete"},
    ])
    assert snap == [PresenceChange("PJSIP/1005", True, "PJSIPShowEndpoints"),
                    PresenceChange("PJSIP/1006", True, "PJSIPShowEndpoints")]
    assert t.apply({"Event": "ContactStatus", "URI": "sip:x@h", "ContactStatus": "Removed",
                    "EndpointName": "1005"}) == []  # sip:y@h from the snapshot is still there
    t.reset()
    assert t.online("PJSIP/1005") is None and t.states == {}
    watched = PresenceTracker(["PJSIP/1001"])
    assert watched.apply(dsc("PJSIP/1009", "NOT_INUSE")) == [] and watched.states == {}


def test_parse_frame_joins_repeated_headers_and_rejects_garbage():
    ev = parse_frame("Event: VarSet\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nValue: \r\n\r\n")
    assert ev == {"Event": "VarSet", "ChanVariable": "A=1\nB=2", "Value": ""}
    assert parse_frame("garbage\r\nno header\r\n\r\n") is None

