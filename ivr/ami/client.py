"""An asyncio AMI client on panoramisk that owns its reconnects and never replays an Originate.

Why wrap panoramisk rather than use it as is (see ARCHITECTURE.md, pitfalls):

* ``Manager.connect()`` returns before Login is answered; :meth:`AmiClient.connect`
  returns only once Asterisk said ``Authentication accepted`` and raises
  :class:`AmiAuthError` at once on a bad secret (no retry loop).
* panoramisk reconnects on a fixed 2 s timer and, after ``FullyBooted``,
  re-sends every action that had no answer, which can place a second call for
  one ``Originate``.  Here its reconnect, pinger and replay queue are switched
  off; :meth:`AmiClient.run` reconnects with the shared jittered backoff
  (:mod:`ivr.backoff`), and only actions the caller declared idempotent are
  re-sent after a reconnect (``Originate`` and other call-control actions never).
* An action sent on a dead connection never resolves in panoramisk; here every
  action is bounded by ``asyncio.wait_for`` and a missing connection fails at once.
* panoramisk logs whole frames (``message interpreted: ...`` at DEBUG, whole
  actions when it queues them for replay at INFO): caller numbers and names are
  PHI in a clinic.  This module logs action names, event names and ActionIDs only.

What panoramisk still does for us: action serialisation and ActionID generation
(:class:`panoramisk.actions.Action`), frame parsing (:class:`panoramisk.message.Message`),
answer correlation (``AMIProtocol.handle_message``) and event dispatch.  The
framing loop (``data_received``) is ours: it decodes UTF-8 incrementally (a
multi-byte character split over two TCP reads is not lost), logs and drops
a garbled frame without its content, and bounds the buffer.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeAlias

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr.backoff import jittered_backoff, pause_unless_closed

from .errors import AmiActionFailed, AmiAuthError, AmiError, AmiTimeout, AmiUnavailable

log = logging.getLogger(__name__)

__all__ = [
    "NEVER_RESENT",
    "STABLE_AFTER",
    "AmiAnswer",
    "AmiClient",
    "AmiConfig",
    "AmiEvent",
    "parse_frame",
]

AmiEvent: TypeAlias = dict[str, str]
AmiAnswer: TypeAlias = dict[str, str] | list[dict[str, str]]
FieldValue: TypeAlias = str | int | float | bool | Sequence[str] | Mapping[str, Any]

EOL = "\r\n"
FRAME_END = EOL + EOL
BANNER_PREFIX = "Asterisk Call Manager/"
# A connection that stayed logged in this long was healthy: the next drop
# starts again from the initial backoff (same rule as the ARI client).
STABLE_AFTER = 10.0
# No AMI frame comes near this; a peer that sends more without a blank line is not Asterisk.
MAX_FRAME = 1 << 20
# Call-control actions whose replay would act twice (a second call, a second
# transfer): never re-sent after a reconnect, whatever ``idempotent`` says.
NEVER_RESENT = frozenset({"originate", "redirect", "atxfer", "blindtransfer", "bridge", "hangup"})
# The client manages the session; these would desynchronise it.
_SESSION_ACTIONS = frozenset({"login", "logoff", "challenge"})


class AmiConfig(BaseModel):
    """Where and how to reach Asterisk's manager interface (a ``manager.conf`` user and timeouts)."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(5038, gt=0, lt=65536)
    username: str
    password: str = Field(repr=False)  # kept out of repr() so configs can be logged
    action_timeout: float = Field(5.0, gt=0)
    connect_timeout: float = Field(5.0, gt=0)  # TCP connect, then again for the Login answer
    initial_backoff: float = Field(0.5, gt=0)
    max_backoff: float = Field(90.0, gt=0)
    # Keepalive Ping while connected: finds a half-open TCP connection (Asterisk
    # host gone) that would otherwise look idle forever.  0 disables it.
    ping_interval: float = Field(20.0, ge=0)
    events: str = "on"  # Login's ``Events:`` (``on``, ``off`` or a class list like ``system,call``)

    @field_validator("username", "password", "events", "host")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\r" in v or "\n" in v:
            raise ValueError("must not contain a line break (it would inject AMI headers)")
        return v

    @model_validator(mode="after")
    def _backoff_order(self) -> AmiConfig:
        if self.initial_backoff > self.max_backoff:
            raise ValueError("initial_backoff must not exceed max_backoff")
        return self


# ---------------------------------------------------------------- panoramisk
class _ConnectionLost(Exception):
    """Internal: the connection carrying an action ended before its answer."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen so asyncio does not warn about fire-and-forget actions."""
    if not fut.cancelled():
        fut.exception()


class _Action(Action):  # type: ignore[misc]
    """panoramisk's Action with an exact completion rule.

    panoramisk guesses list answers from the message text (``will follow``,
    ``added ... to queue``, ``successfully queued``): a ``QueueAdd`` then waits
    for a list that never comes, and an async ``Originate`` waits for its
    ``OriginateResponse``, which can take the whole ring time.  Asterisk 22
    marks every list with ``EventList: start`` and ends it with
    ``EventList: Complete``; anything else is a single answer.  The
    ``OriginateResponse`` event then reaches :meth:`AmiClient.on_event`
    subscribers, matched by ActionID.
    """

    @property
    def multi(self) -> bool:
        return str(self.responses[0].get("EventList", "")).lower() == "start"

    @property
    def completed(self) -> bool:
        if not self.multi:
            return True
        if len(self.responses) < 2:
            return False
        last = self.responses[-1]
        return str(last.get("EventList", "")).lower() == "complete" or str(last.get("Event", "")).endswith(
            "Complete")


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with our framing loop, no replay queue, and loss reported exactly once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.log = log
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._banner_done = False
        self._notified = False

    # ---- sending
    def send(self, data: Any, as_list: bool | None = None) -> asyncio.Future[Any]:
        action = data if isinstance(data, _Action) else _Action(data)
        action.future.add_done_callback(_retrieve)
        if self.closed:
            action.future.set_exception(_ConnectionLost())
            return action.future
        self.responses[action.id] = action
        self.transport.write(str(action).encode("utf-8"))
        return action.future

    def forget(self, action: _Action) -> None:
        """Stop waiting for an answer (timed out); a late answer is then dropped or dispatched as an event."""
        if self.responses.get(action.id) is action:
            del self.responses[action.id]

    # ---- receiving
    def data_received(self, data: bytes) -> None:
        self._buffer += self._decoder.decode(data)
        if not self._banner_done:
            end = self._buffer.find(EOL)
            if end < 0:
                return
            first = self._buffer[:end]
            if first.startswith(BANNER_PREFIX):
                self.version = first[len(BANNER_PREFIX):].strip()
                self._buffer = self._buffer[end + len(EOL):]
                log.debug("AMI banner: protocol %s", self.version)
            else:
                log.warning("AMI: the server sent no 'Asterisk Call Manager' banner")
            self._banner_done = True
        while not self.closed:
            end = self._buffer.find(FRAME_END)
            if end < 0:
                break
            raw, self._buffer = self._buffer[:end], self._buffer[end + len(FRAME_END):]
            self._frame(raw)
        if len(self._buffer) > MAX_FRAME:
            log.warning("AMI: over %d bytes without a frame end; dropping the connection", MAX_FRAME)
            self.abort()

    def _frame(self, raw: str) -> None:
        """Parse one frame and hand it on; a frame that is not AMI is logged (size only) and dropped."""
        raw = raw.strip("\r\n")
        if not raw.strip():
            return
        try:
            message = parse_message(raw)
        except Exception:  # noqa: BLE001 - a parser bug must not kill the connection
            message = None
        if message is None:
            log.warning("AMI: dropped a garbled frame (%d characters, no Event or Response header)", len(raw))
            return
        if not str(message.get("Response", "")).startswith(("Follows", "Fail")):
            bad = sum(1 for line in raw.split(EOL) if ": " not in line)
            if bad:
                log.warning("AMI: ignored %d malformed line(s) in a frame (%s)", bad, _kind(message))
        if self.factory is None:
            return  # not wired to a Manager yet: nothing can be waiting for it
        try:
            self.handle_message(message)
        except Exception:  # noqa: BLE001 - e.g. an answer panoramisk cannot correlate
            log.warning("AMI: could not handle a %s frame; dropped", _kind(message))

    # ---- closing
    def _fail_pending(self) -> None:
        pending = {id(a): a for a in self.responses.values()}.values()
        self.responses.clear()
        for action in pending:
            if not action.future.done():
                action.future.set_exception(_ConnectionLost())

    def close(self) -> None:
        """Fail every unanswered action (no replay queue) and close the transport after flushing."""
        self._fail_pending()
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Like :meth:`close` but without waiting to flush: for a peer that stopped reading."""
        self._fail_pending()
        self.closed = True
        self.transport.abort()

    def connection_lost(self, exc: Any) -> None:
        self.close()
        if not self._notified:
            self._notified = True
            if self.factory is not None:
                self.factory.connection_lost(exc)


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its reconnect timer, pinger and replay queue.

    We keep ``connection_made`` (wires the protocol, sends Login), ``dispatch``
    and ``register_event``; one Manager serves exactly one TCP connection.
    """

    def __init__(self, on_lost: Callable[[Any], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        self._on_lost(exc)

    def ping(self) -> None:
        self.pinger = None  # keepalive is AmiClient's, with a timeout

    def login(self, future: asyncio.Future[Any]) -> bool:
        self.authenticated_future = None
        if future.cancelled() or future.exception() is not None:
            return False
        self.authenticated = bool(future.result().success)
        return self.authenticated

    def send_awaiting_actions(self, *_: Any) -> None:
        self.awaiting_actions.clear()  # never replay (runs on FullyBooted in panoramisk)


class _Link:
    """One TCP connection and its Manager, from connect to loss."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lost: asyncio.Future[None] = loop.create_future()
        self.manager: _Manager | None = None
        self.protocol: _Protocol | None = None
        self.ready = False

    @property
    def alive(self) -> bool:
        return self.ready and not self.lost.done() and self.protocol is not None and not self.protocol.closed


# ------------------------------------------------------------------ parsing
def parse_message(raw: str) -> Message | None:
    """panoramisk's parser for one frame's text (no trailing blank line); None if it is not AMI."""
    return Message.from_line(raw)


def _to_dict(message: Message) -> dict[str, str]:
    """A plain dict, keys as on the wire; a repeated header keeps its values joined by newlines."""
    out: dict[str, str] = {}
    for key, value in message.items():
        if key == "content":
            if value:
                out["content"] = value
            continue
        out[key] = "\n".join(value) if isinstance(value, list) else value
    return out


def parse_frame(raw: str) -> dict[str, str] | None:
    """One raw AMI frame (as in the transcripts' ``raw``) as the dict subscribers receive; None if garbled."""
    message = parse_message(raw.strip("\r\n"))
    return None if message is None else _to_dict(message)


def _kind(message: Message) -> str:
    """``Event X`` or ``Response Y``: safe to log (names, never values)."""
    if "Event" in message:
        return f"Event {message['Event']}"
    return f"Response {message.get('Response', '?')}"


def _value(key: str, value: FieldValue) -> str | list[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        text = str(value)
        if "\r" in text or "\n" in text:
            # The value is not echoed: it may be a caller's number or a variable.
            raise ValueError(f"AMI field {key!r} contains a line break (it would inject headers)")
        return text
    if isinstance(value, Mapping):
        return [_value(key, f"{k}={v}") for k, v in value.items()]  # type: ignore[misc]
    if isinstance(value, Sequence):
        return [_value(key, v) for v in value]  # type: ignore[misc]
    raise TypeError(f"AMI field {key!r}: unsupported type {type(value).__name__}")


def _prepare(action: Mapping[str, FieldValue]) -> tuple[dict[str, Any], str]:
    """Validate an action dict; returns (fields, action name).  ``Variable`` may be a dict or a list."""
    if not isinstance(action, Mapping):
        raise TypeError("an AMI action is a mapping like {'Action': 'Ping'}")
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in action.items():
        if not isinstance(key, str) or not key or any(c in key for c in ": \t\r\n"):
            raise ValueError(f"invalid AMI header name {key!r}")
        lower = key.lower()
        if lower in seen:
            raise ValueError(f"AMI header {key!r} given twice (header names are case-insensitive)")
        seen.add(lower)
        fields["ActionID" if lower == "actionid" else key] = _value(key, value)
    name = next((v for k, v in fields.items() if k.lower() == "action"), None)
    if not isinstance(name, str) or not name:
        raise ValueError("an AMI action needs an 'Action' field")
    if name.lower() in _SESSION_ACTIONS:
        raise ValueError(f"{name} is managed by AmiClient itself")
    return fields, name


def _is_success(message: Message) -> bool:
    return str(message.get("Response", "")) in ("Success", "Follows", "Goodbye")


# ------------------------------------------------------------------- client
class AmiClient:
    """Actions and events over one supervised AMI connection.

    Typical use::

        client = AmiClient(config, on_connected=resync)
        client.on_event(queue.put_nowait)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(client.run())      # connects, reconnects, calls resync() after each login

    ``connect()`` alone makes one connection without supervision (scripts, tests).
    """

    def __init__(
        self,
        config: AmiConfig,
        *,
        on_connected: Callable[[], Awaitable[None] | None] | None = None,
        on_disconnected: Callable[[], Awaitable[None] | None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._link: _Link | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._connect_lock = asyncio.Lock()
        self._subscribers: list[Callable[[AmiEvent], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervised = False

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while logged in on a live connection."""
        return self._link is not None and self._link.alive

    async def connect(self) -> None:
        """Open one connection and return once Login succeeded, then run ``on_connected``.

        Raises :class:`AmiUnavailable` when the TCP connect fails or the
        connection closes before the Login answer, :class:`AmiTimeout` when
        Asterisk does not answer Login in ``connect_timeout``, and
        :class:`AmiAuthError` on a refused Login (never retried).  If
        ``on_connected`` raises, the connection is closed and the error
        propagates.  A no-op when already connected.
        """
        if self._closing.is_set():
            raise AmiUnavailable("client is closed")
        if self.connected:
            return
        await self._establish()

    async def run(self) -> None:
        """Stay connected until :meth:`close`: reconnect after any drop with jittered, capped backoff.

        The first attempt is immediate; each further attempt waits
        :meth:`backoff_delay` (growing from ``initial_backoff`` to
        ``max_backoff``), and the growth resets once a connection stayed up
        :data:`STABLE_AFTER` seconds.  ``on_connected`` runs after every
        login so the engine can resync (events of the gap are lost).  Raises
        :class:`AmiAuthError` at once (retrying cannot fix a wrong secret); an
        :class:`AmiError` from ``on_connected`` drops the connection and
        retries, any other exception from it (a bug) ends ``run()``.
        """
        if self._supervised:
            raise RuntimeError("AmiClient.run() is already running")
        self._supervised = True
        failures = 0
        pause = False
        try:
            while not self._closing.is_set():
                if pause:
                    delay = self.backoff_delay(failures)
                    failures += 1
                    log.info("AMI: reconnecting in %.2f s", delay)
                    if not await self._pause(delay):
                        return
                pause = True
                try:
                    link = self._link if self.connected else await self._establish()
                except AmiAuthError:
                    raise
                except AmiError as exc:
                    if self._closing.is_set():
                        return
                    log.warning("AMI: connect failed: %s", exc)
                    continue
                assert link is not None
                started = self._clock()
                await self._hold(link)
                if self._closing.is_set():
                    return
                if self._clock() - started >= STABLE_AFTER:
                    failures = 0
        finally:
            self._supervised = False

    async def close(self) -> None:
        """Log off, close the connection, end :meth:`run` cleanly; pending actions fail with AmiUnavailable."""
        self._closing.set()
        self._ready.set()  # wake actions waiting for a re-login: they see the close and fail
        link = self._link
        if link is not None and link.protocol is not None and not link.lost.done():
            if not link.protocol.closed:
                link.protocol.send(_Action({"Action": "Logoff"}))  # flushed by the close below
            assert link.manager is not None
            link.manager.close()
            await asyncio.wait({link.lost}, timeout=1.0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def backoff_delay(self, failures: int) -> float:
        """Delay before reconnect attempt ``failures`` (0-based), see :func:`ivr.backoff.jittered_backoff`."""
        return jittered_backoff(failures, self.config.initial_backoff, self.config.max_backoff, self._rng)

    # -------------------------------------------------------------- actions
    async def action(
        self,
        action: Mapping[str, FieldValue],
        *,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> AmiAnswer:
        """Send one action and return its answer as a plain dict (keys as on the wire).

        A list action (``EventList: start`` ... ``EventList: Complete``, e.g.
        ``PJSIPShowEndpoints``) returns the list of its item events, without
        the opening response and the ``...Complete`` event.  An async
        ``Originate`` returns at ``Originate successfully queued``; its
        ``OriginateResponse`` event reaches :meth:`on_event` subscribers with
        the same ActionID.

        Always bounded by ``timeout`` (default ``config.action_timeout``).
        Raises :class:`AmiUnavailable` at once when not connected,
        :class:`AmiTimeout` when no answer came in time,
        :class:`AmiActionFailed` on ``Response: Error``.  If the connection
        drops before the answer, an ``idempotent`` action is re-sent once the
        supervisor has logged in again (within the same timeout); any other
        action, and always ``Originate`` and the :data:`NEVER_RESENT`
        call-control actions, fails with :class:`AmiUnavailable` and
        ``outcome_unknown=True``: it may have been carried out.
        """
        fields, name = _prepare(action)
        limit = self.config.action_timeout if timeout is None else timeout
        if limit <= 0:
            raise ValueError("timeout must be > 0")
        resend = idempotent and name.lower() not in NEVER_RESENT
        link = self._link
        if self._closing.is_set() or link is None or not link.alive:
            raise AmiUnavailable("not connected to Asterisk", action=name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            assert link.protocol is not None
            act = _Action(fields)
            fields["ActionID"] = act.id  # a re-send keeps the caller-visible ActionID
            fut = link.protocol.send(act)
            log.debug("AMI: sent %s (ActionID %s)", name, act.id)
            try:
                answer = await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except TimeoutError:
                link.protocol.forget(act)
                raise AmiTimeout(f"no answer within {limit:g} s", action=name, action_id=act.id,
                                 outcome_unknown=not resend) from None
            except _ConnectionLost:
                if not resend:
                    raise AmiUnavailable(
                        "connection to Asterisk lost before the answer; the outcome is unknown "
                        "and the action was not re-sent", action=name, action_id=act.id,
                        outcome_unknown=True) from None
                link = await self._relogged_in(name, act.id, deadline)
                log.info("AMI: re-sending %s (ActionID %s) after reconnect", name, act.id)
                continue
            return self._answer(name, act.id, answer)

    @staticmethod
    def _answer(name: str, action_id: str, answer: Message | list[Message]) -> AmiAnswer:
        if isinstance(answer, list):
            head, rest = answer[0], answer[1:]
            if not _is_success(head):
                raise AmiActionFailed(str(head.get("Message", "")).strip() or "list refused",
                                      action=name, action_id=action_id)
            items = rest[:-1] if rest and str(rest[-1].get("EventList", "")).lower() == "complete" else rest
            log.debug("AMI: %s answered with %d item(s)", name, len(items))
            return [_to_dict(m) for m in items]
        if not _is_success(answer):
            message = str(answer.get("Message", "")).strip() or str(answer.get("Response", "")) or "error"
            log.debug("AMI: %s answered %s", name, answer.get("Response", "?"))
            raise AmiActionFailed(message, action=name, action_id=action_id,
                                  details={"response": str(answer.get("Response", ""))})
        log.debug("AMI: %s answered %s", name, answer.get("Response"))
        return _to_dict(answer)

    async def _relogged_in(self, name: str, action_id: str, deadline: float) -> _Link:
        """Wait (until ``deadline``) for the supervisor's next login; the link to re-send on."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closing.is_set():
                raise AmiUnavailable("client closed before the answer", action=name, action_id=action_id)
            if not self._supervised:
                raise AmiUnavailable("connection to Asterisk lost before the answer (no supervisor to "
                                     "reconnect)", action=name, action_id=action_id)
            link = self._link
            if link is not None and link.alive:
                return link
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AmiUnavailable("connection to Asterisk lost and not restored within the timeout",
                                     action=name, action_id=action_id)
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                pass  # loop once more: the checks above raise the right error

    # --------------------------------------------------------------- events
    def on_event(self, callback: Callable[[AmiEvent], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (a fresh ``dict[str, str]`` each); returns an unsubscribe.

        Events that answer a pending list action are that action's result,
        not events.  A coroutine returned by the callback runs as a task the
        client keeps (and cancels on :meth:`close`); a plain callback keeps
        the wire order, so prefer ``queue.put_nowait``.  A callback's
        exception is logged (its type only: messages may quote PHI) and the
        other subscribers still run.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _dispatch(self, _manager: Any, message: Message) -> None:
        event = _to_dict(message)
        name = event.get("Event", "?")
        log.debug("AMI: event %s", name)
        for callback in list(self._subscribers):
            try:
                result = callback(dict(event))
            except Exception as exc:  # noqa: BLE001 - one faulty subscriber must not starve the others
                log.error("AMI: event subscriber %s failed on %s: %s",
                          getattr(callback, "__qualname__", type(callback).__name__), name, type(exc).__name__)
                continue
            if asyncio.iscoroutine(result):
                self._spawn(result, f"subscriber on {name}")

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("AMI: %s failed: %s", what, type(t.exception()).__name__)

        task.add_done_callback(done)

    # ----------------------------------------------------------- internals
    async def _establish(self) -> _Link:
        async with self._connect_lock:
            if self.connected:
                assert self._link is not None
                return self._link
            link = await self._open()
            if self._closing.is_set():  # close() ran while we were logging in: leave nothing open
                assert link.protocol is not None
                link.protocol.close()
                raise AmiUnavailable("client is closed", action="Login")
            self._link = link
            self._ready.set()
        log.info("AMI: logged in to %s:%d", self.config.host, self.config.port)
        if self._on_connected is not None:
            try:
                result = self._on_connected()
                if asyncio.iscoroutine(result):
                    await result
            except BaseException as exc:
                if isinstance(exc, AmiError):  # id and action only: Asterisk's message may quote values
                    log.warning("AMI: on_connected failed (%s on %s); dropping the connection",
                                exc.error_id, exc.action)
                self._drop(link)
                raise
        return link

    async def _open(self) -> _Link:
        """TCP connect, wire a fresh Manager (which sends Login), wait for the Login answer."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                transport, protocol = await loop.create_connection(_Protocol, cfg.host, cfg.port)
        except (OSError, TimeoutError) as exc:
            raise AmiUnavailable(f"cannot connect to {cfg.host}:{cfg.port}", action="Login",
                                 details={"cause": type(exc).__name__}) from None
        link = _Link(loop)
        manager = _Manager(
            lambda exc: self._lost(link), host=cfg.host, port=cfg.port, username=cfg.username,
            secret=cfg.password, events=cfg.events, loop=loop, log=log,
        )
        manager.register_event("*", self._dispatch)
        link.manager, link.protocol = manager, protocol
        connected: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        connected.set_result((transport, protocol))
        manager.connection_made(connected)  # panoramisk sends Login here
        login = manager.authenticated_future
        try:
            answer = await asyncio.wait_for(login, cfg.connect_timeout)
        except TimeoutError:
            protocol.abort()
            raise AmiTimeout(f"no answer to Login within {cfg.connect_timeout:g} s", action="Login") from None
        except _ConnectionLost:
            raise AmiUnavailable("connection closed before Login was answered", action="Login") from None
        if not _is_success(answer):
            protocol.close()
            message = str(answer.get("Message", "")).strip() or "Login refused"
            raise AmiAuthError(message, action="Login", details={"username": cfg.username})
        link.ready = True
        return link

    def _lost(self, link: _Link) -> None:
        """Called once per connection when its transport ends, whoever closed it."""
        if not link.lost.done():
            link.lost.set_result(None)
        if self._link is not link:
            return  # a connection that never finished logging in
        self._link = None
        self._ready.clear()
        if self._closing.is_set():
            log.info("AMI: connection closed")
            return
        log.warning("AMI: connection to %s:%d lost", self.config.host, self.config.port)
        if self._on_disconnected is not None:
            try:
                result = self._on_disconnected()
            except Exception as exc:  # noqa: BLE001
                log.error("AMI: on_disconnected failed: %s", type(exc).__name__)
            else:
                if asyncio.iscoroutine(result):
                    self._spawn(result, "on_disconnected")

    def _drop(self, link: _Link) -> None:
        if link.protocol is not None:
            link.protocol.abort()

    async def _hold(self, link: _Link) -> None:
        """Return when ``link`` is lost or the client closes; ping every ``ping_interval`` meanwhile."""
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while not link.lost.done() and not self._closing.is_set():
                waits: set[asyncio.Future[Any]] = {link.lost, closing}
                sleeper = None
                if self.config.ping_interval:
                    sleeper = asyncio.ensure_future(self._sleep(self.config.ping_interval))
                    waits.add(sleeper)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if sleeper is not None and not sleeper.done():
                        sleeper.cancel()
                        await asyncio.gather(sleeper, return_exceptions=True)
                if sleeper is None or not sleeper.done() or link.lost.done() or self._closing.is_set():
                    continue
                try:
                    await self.action({"Action": "Ping"}, idempotent=False)
                except AmiTimeout:
                    log.warning("AMI: keepalive Ping unanswered; dropping the connection")
                    self._drop(link)
                    break  # the loss is reported by the transport on the next loop turn
                except AmiError:
                    pass  # lost meanwhile: the loop condition ends the hold
            if not link.lost.done():
                await asyncio.wait({link.lost, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` with the injected sleep unless :meth:`close` comes first; False when closed."""
        return await pause_unless_closed(delay, self._sleep, self._closing)
