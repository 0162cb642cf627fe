"""A thin asyncio ARI client on aiohttp: REST with Basic auth and a self-healing events WebSocket.

Why our own: the ARI clients on PyPI download the API description at start-up,
are unmaintained and do not reconnect the events socket (see ARCHITECTURE.md).

Design points:

* Credentials travel only in the ``Authorization`` header, never in a URL
  (URLs end up in proxy and access logs; ``api_key=`` would leak the password).
* Every aiohttp/OS error is translated into :mod:`ivr.ari.errors` here, so the
  engine handles one exception tree with stable ids.
* :meth:`AriClient.events` is a reconnect loop modelled on python-websockets'
  ``async for ws in connect(...)``: jittered exponential backoff capped at
  ``max_backoff``, reset after a healthy connection, give up only on errors
  that retrying cannot fix (bad credentials, a malformed events URL).
  Asterisk replays nothing after a reconnect, so a synthetic ``_Reconnected``
  event tells the engine to resync with ``GET /channels`` and ``GET /bridges``.
* ``sleep``, ``rng`` and ``clock`` are injectable so tests run on fake time.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from ivr.backoff import jittered_backoff, pause_unless_closed
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import (
    AriAuthError,
    AriBadRequest,
    AriError,
    AriServerError,
    AriUnavailable,
    error_for_status,
    message_from_body,
)

log = logging.getLogger(__name__)

RECONNECTED = "_Reconnected"
CONNECTED = "_Connected"
# A connection that stayed up this long is healthy even if it carried no event
# (a quiet night): the next drop starts again from the initial backoff.
STABLE_AFTER = 10.0
# Pings detect a half-open TCP connection (Asterisk host gone) that would otherwise look idle forever.
HEARTBEAT = 20.0


class AriConfig(BaseModel):
    """Where and how to reach Asterisk's ARI (``ari.conf`` user, Stasis app name, timeouts)."""

    model_config = ConfigDict(frozen=True)

    base_url: str = "http://127.0.0.1:8088/ari"
    username: str
    password: str = Field(repr=False)  # kept out of repr() so configs can be logged
    app: str
    request_timeout: float = Field(5.0, gt=0)
    max_backoff: float = Field(90.0, gt=0)
    initial_backoff: float = Field(0.5, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https:// (e.g. http://127.0.0.1:8088/ari)")
        if "@" in v.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("put credentials in username/password, not in base_url")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _backoff_order(self) -> AriConfig:
        if self.initial_backoff > self.max_backoff:
            raise ValueError("initial_backoff must not exceed max_backoff")
        return self


def _param(value: Any) -> str:
    """ARI wants booleans as ``true``/``false`` and lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _seg(value: str) -> str:
    """Quote one path segment so an id can never change the path."""
    return quote(str(value), safe="")


class AriClient:
    """REST calls and the events stream of one Stasis application."""

    def __init__(
        self,
        config: AriConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._session = session
        self._own_session = session is None
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode("ascii")
        self._auth = {"Authorization": f"Basic {token}"}
        self._closing = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        """End :meth:`events` cleanly (no exception to the consumer) and close our own session."""
        self._closing.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close()
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()

    # ----------------------------------------------------------------- REST
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One ARI REST call; returns the parsed JSON, or ``None`` for an empty (204) answer.

        ``path`` is relative to ``base_url`` (``/channels/1.2/answer``).  ``None``
        parameters are left out so helpers can pass optional arguments through.
        """
        method = method.upper()
        path = "/" + path.lstrip("/")
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        if self._closing.is_set():
            raise AriUnavailable("client is closed", method=method, path=path)
        session = self._ensure_session()
        limit = aiohttp.ClientTimeout(total=timeout or self.config.request_timeout)
        try:
            async with session.request(
                method, self.config.base_url + path, params=query or None, json=json,
                headers=self._auth, timeout=limit,
            ) as resp:
                raw = await resp.read()
                status, reason = resp.status, resp.reason or ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # ``from None``: aiohttp's exceptions can carry the full URL, query included (PHI).
            raise _unavailable(exc, method, path) from None
        body = _parse(raw)
        if 200 <= status < 300:
            if raw and body is _INVALID:
                raise AriServerError("answer is not JSON", status=status, method=method, path=path)
            return None if body is _INVALID else body
        cls = error_for_status(status)
        text = message_from_body(None if body is _INVALID else body, reason or f"HTTP {status}")
        raise cls(text, status=status, method=method, path=path)

    # -------------------------------------------------------------- events
    def backoff_delay(self, failures: int) -> float:
        """Delay before reconnect attempt ``failures`` (0-based): 0.5x..1x of ``initial * 2**n``, capped.

        Jitter keeps many engines from hammering a restarting Asterisk in lockstep.
        """
        return jittered_backoff(failures, self.config.initial_backoff, self.config.max_backoff, self._rng)

    async def events(self, connected_marker: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Yield ARI events forever, reconnecting after any drop until :meth:`close`.

        After each successful *re*connect a ``{"type": "_Reconnected", "attempt": n}``
        event is yielded, ``n`` being the number of connection attempts it took;
        events from the gap are lost (Asterisk replays nothing), so the engine
        must resync.  With ``connected_marker`` the first connection is announced
        too, as ``{"type": "_Connected"}``: an engine that restarted resyncs then
        (calls may be waiting in its application from before).  Raises :class:`AriAuthError` (wrong credentials) and
        :class:`AriBadRequest` (Asterisk refused the events URL) at once: retrying
        those only fills Asterisk's log.
        """
        failures = 0  # exponent of the next delay (pauses since the last healthy connection)
        attempts = 0  # attempts since the last connection was lost
        ever_connected = False
        pause = False
        while not self._closing.is_set():
            if pause:
                delay = self.backoff_delay(failures)
                failures += 1
                if not await self._pause(delay):
                    return
            pause = True
            attempts += 1
            try:
                ws = await self._connect_events()
            except Exception as exc:
                if self._closing.is_set():
                    return  # close() raced the handshake (and may have closed the session under it)
                if isinstance(exc, (AriAuthError, AriBadRequest)) or not isinstance(exc, AriError):
                    raise
                log.warning("ARI events connect failed (attempt %d): %s", attempts, exc)
                continue
            if self._closing.is_set():
                await ws.close()
                return
            self._ws = ws
            started = self._clock()
            healthy = False
            try:
                if ever_connected:
                    log.info("ARI events reconnected after %d attempt(s)", attempts)
                    yield {"type": RECONNECTED, "attempt": attempts}
                elif connected_marker:
                    yield {"type": CONNECTED, "attempt": attempts}
                ever_connected, attempts = True, 0
                while not self._closing.is_set():
                    msg = await ws.receive()
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        try:
                            event = jsonlib.loads(msg.data)
                        except ValueError:
                            log.warning("ARI events: dropped a frame that is not JSON")
                            continue
                        if not healthy:
                            healthy, failures = True, 0
                        yield event
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                      aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
            finally:
                self._ws = None
                if not ws.closed:
                    await ws.close()
            if self._clock() - started >= STABLE_AFTER:
                failures = 0
            # else an accepted-then-dropped socket keeps growing the delay like a failed connect
            if not self._closing.is_set():
                log.warning("ARI events connection lost; reconnecting")

    async def _connect_events(self) -> aiohttp.ClientWebSocketResponse:
        """Open ``/events?app=...`` with the auth header, errors translated like REST."""
        session = self._ensure_session()
        path = "/events"
        params = {"app": self.config.app, "subscribeAll": "false"}
        try:
            async with asyncio.timeout(self.config.request_timeout):
                return await session.ws_connect(
                    self.config.base_url + path, params=params, headers=self._auth,
                    heartbeat=HEARTBEAT, autoping=True,
                )
        except aiohttp.WSServerHandshakeError as exc:
            cls = error_for_status(exc.status)
            if cls is AriError or exc.status == 404:
                cls = AriUnavailable  # not a websocket (yet): e.g. Asterisk still loading res_ari
            raise cls(f"events handshake refused ({exc.status})", status=exc.status,
                      method="GET", path=path) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _unavailable(exc, "GET", path) from None

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` with the injected sleep unless :meth:`close` comes first; False when closed."""
        return await pause_unless_closed(delay, self._sleep, self._closing)

    # ------------------------------------------------------------- helpers
    async def answer(self, channel_id: str) -> None:
        """Answer a channel in Stasis."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def play(self, channel_id: str, media: list[str], playback_id: str | None = None,
                   lang: str | None = None) -> dict[str, Any]:
        """Queue media on a channel; with ``playback_id`` the engine chooses the id (for barge-in)."""
        path = f"/channels/{_seg(channel_id)}/play" + (f"/{_seg(playback_id)}" if playback_id else "")
        return await self.request("POST", path, params={"media": list(media), "lang": lang})

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback (Asterisk then sends PlaybackFinished ``done``)."""
        await self.request("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """Hang a channel up with one of ARI's hangup reasons."""
        await self.request("DELETE", f"/channels/{_seg(channel_id)}", params={"reason": reason})

    async def create_bridge(self, type: str = "mixing", bridge_id: str | None = None,
                            name: str | None = None) -> dict[str, Any]:
        """Create a ``mixing`` or ``holding`` bridge, optionally with a chosen id."""
        path = "/bridges" + (f"/{_seg(bridge_id)}" if bridge_id else "")
        return await self.request("POST", path, params={"type": type, "name": name})

    async def add_channel(self, bridge_id: str, channel_id: str | list[str], role: str | None = None) -> None:
        """Put channel(s) into a bridge (moves them out of any other bridge)."""
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/addChannel",
                           params={"channel": channel_id, "role": role})

    async def remove_channel(self, bridge_id: str, channel_id: str | list[str]) -> None:
        """Take channel(s) out of a bridge."""
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/removeChannel", params={"channel": channel_id})

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge (its channels stay up)."""
        await self.request("DELETE", f"/bridges/{_seg(bridge_id)}")

    async def originate(self, endpoint: str, *, app: str, app_args: str = "", caller_id: str | None = None,
                        timeout: int = 30, variables: dict[str, str] | None = None,
                        channel_id: str | None = None) -> dict[str, Any]:
        """Dial ``endpoint`` into Stasis ``app``; channel variables go in the JSON body, not the URL."""
        return await self.request("POST", "/channels", params={
            "endpoint": endpoint, "app": app, "appArgs": app_args or None, "callerId": caller_id,
            "timeout": timeout, "channelId": channel_id,
        }, json={"variables": dict(variables)} if variables else None)

    async def continue_in_dialplan(self, channel_id: str, context: str | None = None,
                                   extension: str | None = None, priority: int | None = None,
                                   timeout: float | None = None) -> None:
        """Leave Stasis and continue in the dialplan (where given, else after Stasis()).

        Asterisk answers only once a playback running on the channel has ended: pass a ``timeout``
        longer than a prompt when the engine cannot stop that playback first.
        """
        await self.request("POST", f"/channels/{_seg(channel_id)}/continue",
                           params={"context": context, "extension": extension, "priority": priority},
                           timeout=timeout)

    async def record(self, channel_id: str, name: str, format: str = "wav", max_duration: int = 0,
                     beep: bool = True, terminate_on: str = "#") -> dict[str, Any]:
        """Start recording a channel (``max_duration`` 0 = no limit)."""
        return await self.request("POST", f"/channels/{_seg(channel_id)}/record", params={
            "name": name, "format": format, "maxDurationSeconds": max_duration, "beep": beep,
            "terminateOn": terminate_on})

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """Music on hold on one channel (works on every build; bridge MOH needs chan_bridge_media)."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/moh", params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_seg(channel_id)}/moh")

    async def bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        """Music on hold for a whole bridge (500 "Allocation failed" on builds without chan_bridge_media)."""
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/moh", params={"mohClass": moh_class})

    async def get_playback(self, playback_id: str) -> dict[str, Any]:
        """A playback still queued or playing (404 AriNotFound once it finished)."""
        return await self.request("GET", f"/playbacks/{_seg(playback_id)}")

    async def get_live_recording(self, name: str) -> dict[str, Any]:
        """A recording in progress (404 AriNotFound once it finished)."""
        return await self.request("GET", f"/recordings/live/{_seg(name)}")

    async def stop_recording(self, name: str) -> None:
        await self.request("POST", f"/recordings/live/{_seg(name)}/stop")

    async def list_channels(self) -> list[dict[str, Any]]:
        """All channels Asterisk knows (for resync after a reconnect)."""
        return await self.request("GET", "/channels")

    async def list_bridges(self) -> list[dict[str, Any]]:
        """All bridges (for resync after a reconnect)."""
        return await self.request("GET", "/bridges")

    async def get_variable(self, channel_id: str, variable: str) -> str:
        """A channel variable's value (404 AriNotFound when unset)."""
        return (await self.request("GET", f"/channels/{_seg(channel_id)}/variable",
                                   params={"variable": variable}))["value"]

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        """Set a channel variable."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/variable",
                           params={"variable": variable, "value": value})


_INVALID = object()


def _parse(raw: bytes) -> Any:
    if not raw:
        return _INVALID
    try:
        return jsonlib.loads(raw)
    except ValueError:
        return _INVALID


def _unavailable(exc: BaseException, method: str, path: str) -> AriUnavailable:
    """Describe a transport failure without the URL (its query may hold PHI)."""
    if isinstance(exc, TimeoutError):
        what = "timed out"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        what = f"cannot connect to {exc.host}:{exc.port}"
    else:
        what = type(exc).__name__
    return AriUnavailable(what, method=method, path=path, details={"cause": type(exc).__name__})
