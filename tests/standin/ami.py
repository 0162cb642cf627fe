"""AMI stand-in: asyncio TCP server on 127.0.0.1 speaking Asterisk 22's manager wire format.

Frames are ``Key: Value`` lines with CRLF, terminated by a blank line.  Answers
mirror g1_ami_actions_registration_originate.jsonl (ActionID/Timestamp differ).
Scripting: ``await ami.register("agent1002")`` / ``unregister`` push the
registration events; ``await ami.push_event("Name", {...})`` anything else.
Outage and fault scripting: ``silent`` (action names never answered),
``drop_on`` (action names on which the server closes the connection without
answering, after recording the action), ``gate(name)`` (hold answers until an
event is set), ``push_raw(bytes)``, ``drop_clients()``, ``stop()`` / ``restart()``
(stop listening, then listen again on the same port).
"""
from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def frame(*pairs) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode()


def _tv():
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _stamp():
    return f"{time.time():.6f}"


class AmiStandIn:
    def __init__(self, username="USER", secret="SECRET",
                 endpoints=("agent1001", "agent1002", "agent1003", "caller", "caller2"),
                 auth_fail_delay: float = 0.0, endpoints_without_auth=("caller",)):
        self.username, self.secret = username, secret
        self.endpoints = list(endpoints)
        self.endpoints_without_auth = set(endpoints_without_auth)
        self.contacts: dict[str, str] = {}  # endpoint -> contact URI
        self.auth_fail_delay = auth_fail_delay  # real Asterisk waits ~1 s
        self.clients: list[asyncio.StreamWriter] = []
        self.received: list[dict] = []
        self.silent: set[str] = set()  # lower-case action names left unanswered
        self.drop_on: set[str] = set()  # lower-case action names that make the server hang up
        self.gates: dict[str, asyncio.Event] = {}  # lower-case action name -> answer once set
        self._conns: set[asyncio.StreamWriter] = set()
        self._server = None
        self._uid = itertools.count(31)
        self.port = None

    async def start(self):
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        for w in list(self.clients) + list(self._conns):
            w.close()
        self._server.close()
        await self._server.wait_closed()

    # -------------------------------------------------------- fault scripting
    def actions(self, name: str) -> list[dict]:
        """Every received frame whose Action is ``name`` (case-insensitive)."""
        return [m for m in self.received if (m.get("action") or "").lower() == name.lower()]

    @property
    def connections(self) -> int:
        """Open client connections, logged in or not."""
        return len(self._conns)

    def gate(self, action: str) -> asyncio.Event:
        """Hold answers to ``action`` until the returned event is set."""
        return self.gates.setdefault(action.lower(), asyncio.Event())

    async def push_raw(self, data: bytes):
        """Write bytes as they are to every logged-in client (garbled frames, split frames)."""
        for w in list(self.clients):
            w.write(data)
            await w.drain()

    async def drop_clients(self):
        """Close every client connection (logged in or not), as an Asterisk restart would."""
        conns = list(self._conns)
        for w in conns:
            w.close()
        for w in conns:
            try:
                await w.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def stop(self):
        """Stop listening (connects are refused) and drop every connection; ``restart()`` undoes it."""
        self._server.close()
        await self._server.wait_closed()
        await self.drop_clients()

    async def restart(self):
        """Listen again on the same port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    # ------------------------------------------------------------ scripting
    async def push_event(self, name: str, fields: list | dict):
        items = list(fields.items()) if isinstance(fields, dict) else list(fields)
        data = frame(("Event", name), *items)
        for w in list(self.clients):
            w.write(data)
            await w.drain()

    async def register(self, endpoint: str, port: int = 5073):
        uri = f"sip:{endpoint}-0x55994cd2eec0@127.0.0.1:{port}"
        self.contacts[endpoint] = uri
        await self.push_event("PeerStatus", [("Privilege", "system,all"), ("Timestamp", _stamp()),
                              ("ChannelType", "PJSIP"), ("Peer", f"PJSIP/{endpoint}"),
                              ("PeerStatus", "Reachable")])
        await self.push_event("ContactStatus", [("Privilege", "system,all"), ("Timestamp", _stamp()),
                              ("URI", uri), ("ContactStatus", "NonQualified"), ("AOR", endpoint),
                              ("EndpointName", endpoint), ("RoundtripUsec", "0")])
        await self.device_state(f"PJSIP/{endpoint}", "NOT_INUSE")

    async def unregister(self, endpoint: str):
        uri = self.contacts.pop(endpoint)
        await self.push_event("PeerStatus", [("Privilege", "system,all"), ("Timestamp", _stamp()),
                              ("ChannelType", "PJSIP"), ("Peer", f"PJSIP/{endpoint}"),
                              ("PeerStatus", "Unreachable")])
        await self.push_event("ContactStatus", [("Privilege", "system,all"), ("Timestamp", _stamp()),
                              ("URI", uri), ("ContactStatus", "Removed"), ("AOR", endpoint),
                              ("EndpointName", endpoint), ("RoundtripUsec", "0")])
        await self.device_state(f"PJSIP/{endpoint}", "UNAVAILABLE")

    async def device_state(self, device: str, state: str):
        await self.push_event("DeviceStateChange", [("Privilege", "call,all"), ("Timestamp", _stamp()),
                              ("Device", device), ("State", state)])

    # --------------------------------------------------------------- server
    def _security(self, name, writer, sess, severity, version, tail):
        local = writer.get_extra_info("sockname")
        peer = writer.get_extra_info("peername")
        return frame(("Event", name), ("Privilege", "security,all"), ("Timestamp", _stamp()),
                     ("EventTV", _tv()), ("Severity", severity), ("Service", "AMI"),
                     ("EventVersion", version), *tail[0],
                     ("SessionID", sess["id"]), ("LocalAddress", f"IPV4/TCP/{local[0]}/{local[1]}"),
                     ("RemoteAddress", f"IPV4/TCP/{peer[0]}/{peer[1]}"), *tail[1])

    async def _client(self, reader, writer):
        sess = {"id": f"0x{id(writer):x}", "tv": "1970-01-01T00:00:00.000+0000", "user": ""}
        self._conns.add(writer)
        writer.write(BANNER)
        await writer.drain()
        authed = False
        try:
            while True:
                msg = await self._read_frame(reader)
                if msg is None:
                    break
                self.received.append(msg)
                aid = msg.get("actionid")
                head = [("ActionID", aid)] if aid is not None else []
                action = (msg.get("action") or "").lower()
                if action in self.drop_on:
                    break  # hang up without answering (the finally below closes)
                if action in self.gates:
                    await self.gates[action].wait()
                if action in self.silent:
                    continue

                def resp(kind, *pairs, head=head):
                    writer.write(frame(("Response", kind), *head, *pairs))

                def bad_format(what):
                    writer.write(self._security("RequestBadFormat", writer, sess, "Error", "1", (
                        [], [("RequestType", f"Action: {what}"), ("SessionTV", sess["tv"]),
                             ("AccountID", sess["user"])])))

                if not action:
                    resp("Error", ("Message", "Missing action in request"))
                    bad_format("NONE")
                elif action == "login":
                    if (msg.get("username"), msg.get("secret")) == (self.username, self.secret):
                        authed = True
                        sess["tv"], sess["user"] = _tv(), self.username
                        resp("Success", ("Message", "Authentication accepted"))
                        writer.write(frame(("Event", "FullyBooted"), ("Privilege", "system,all"),
                                           ("Uptime", "646"), ("LastReload", "646"),
                                           ("Status", "Fully Booted")))
                        writer.write(self._security("SuccessfulAuth", writer, sess, "Informational", "1", (
                            [("AccountID", self.username)],
                            [("UsingPassword", "0"), ("SessionTV", sess["tv"])])))
                        self.clients.append(writer)
                    else:
                        writer.write(self._security("InvalidPassword", writer, sess, "Error", "2", (
                            [("AccountID", msg.get("username", ""))],
                            [("SessionTV", sess["tv"])])))
                        await writer.drain()
                        if self.auth_fail_delay:
                            await asyncio.sleep(self.auth_fail_delay)  # mirrors Asterisk, not for timing
                        resp("Error", ("Message", "Authentication failed"))
                        await writer.drain()
                        break
                elif action == "logoff":
                    resp("Goodbye", ("Message", "Thanks for all the fish."))
                    await writer.drain()
                    break
                elif not authed:
                    resp("Error", ("Message", "Permission denied"))
                    writer.write(self._security("RequestNotAllowed", writer, sess, "Error", "1", (
                        [("AccountID", "")],
                        [("RequestType", f"Action: {msg.get('action')}"), ("SessionTV", sess["tv"])])))
                elif action == "ping":
                    resp("Success", ("Ping", "Pong"), ("Timestamp", _stamp()))
                elif action == "pjsipshowendpoints":
                    resp("Success", ("EventList", "start"),
                         ("Message", "A listing of Endpoints follows, presented as EndpointList events"))
                    for ep in self.endpoints:
                        writer.write(frame(("Event", "EndpointList"), *head, ("ObjectType", "endpoint"),
                                           ("ObjectName", ep), ("Transport", "transport-udp"), ("Aor", ep),
                                           ("Auths", "" if ep in self.endpoints_without_auth else ep),
                                           ("OutboundAuths", ""),
                                           ("Contacts", self.contacts.get(ep, "")),
                                           ("DeviceState", "Not in use" if ep in self.contacts else "Unavailable"),
                                           ("ActiveChannels", "0")))
                    writer.write(frame(("Event", "EndpointListComplete"), *head, ("EventList", "Complete"),
                                       ("ListItems", str(len(self.endpoints)))))
                elif action == "pjsipshowcontacts":
                    if not self.contacts:
                        resp("Error", ("Message", "No Contacts found\n"))
                    else:
                        resp("Success", ("EventList", "start"),
                             ("Message", "A listing of Contacts follows, presented as ContactList events"))
                        for ep, uri in self.contacts.items():
                            writer.write(frame(("Event", "ContactList"), *head, ("ObjectType", "contact"),
                                               ("ObjectName", f"{ep};@0"), ("Uri", uri), ("Endpoint", ep),
                                               ("Status", "NonQualified")))
                        writer.write(frame(("Event", "ContactListComplete"), *head,
                                           ("EventList", "Complete"), ("ListItems", str(len(self.contacts)))))
                elif action == "originate":
                    await self._originate(msg, resp, writer, head)
                else:
                    resp("Error", ("Message", f"Invalid/unknown command: {msg.get('action')}. "
                                   "Use Action: ListCommands to show available commands."))
                    bad_format(msg.get("action"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if writer in self.clients:
                self.clients.remove(writer)
            self._conns.discard(writer)
            writer.close()

    async def _originate(self, msg, resp, writer, head):
        chan = msg.get("channel")
        if not chan:
            return resp("Error", ("Message", "Channel not specified"))
        if msg.get("exten") and not (msg.get("context") and msg.get("priority")):
            return resp("Error", ("Message", "Originate with 'Exten' requires 'Context' and 'Priority'"))
        ep = chan.split("/", 1)[-1]
        ok = ep in self.contacts
        is_async = (msg.get("async") or "").lower() in ("true", "yes", "1", "on")
        if not is_async:
            return resp("Success", ("Message", "Originate successfully queued")) if ok else \
                resp("Error", ("Message", "Originate failed"))
        resp("Success", ("Message", "Originate successfully queued"))
        uid = f"{int(time.time())}.{next(self._uid)}"
        app = [("Application", msg["application"]), ("Data", msg.get("data", ""))] \
            if msg.get("application") else [("Context", msg.get("context", "")),
                                            ("Exten", msg.get("exten", ""))]
        num, name = "<unknown>", "<unknown>"
        if ok and msg.get("callerid"):
            cid = msg["callerid"]
            name, num = (cid.split("<")[0].strip(), cid.split("<")[1].rstrip(">")) if "<" in cid else ("", cid)
        writer.write(frame(("Event", "OriginateResponse"), ("Privilege", "call,all"), ("Timestamp", _stamp()),
                           *head, ("Response", "Success" if ok else "Failure"),
                           ("Channel", f"{chan}-0000001f" if ok else chan), *app,
                           ("Reason", "4" if ok else "0"), ("Uniqueid", uid if ok else "<unknown>"),
                           ("CallerIDNum", num), ("CallerIDName", name)))

    @staticmethod
    async def _read_frame(reader):
        msg: dict = {}
        while True:
            line = await reader.readline()
            if not line:
                return None
            line = line.decode(errors="replace").rstrip("\r\n")
            if line == "":
                if msg:
                    return msg
                continue
            if ":" not in line:
                continue  # Asterisk ignores a line without a colon
            k, v = line.split(":", 1)
            msg.setdefault(k.strip().lower(), v.strip())
