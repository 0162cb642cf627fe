"""Agent presence (is the phone registered?) from AMI events: pure, no I/O, fed plain dicts.

Asterisk 22 reports one registration with several events, in an order that
varies (g1: PeerStatus, ContactStatus, DeviceStateChange; g2 on
unregistration: PeerStatus, DeviceStateChange, ..., ContactStatus):

=====================  ==================================  =========================================
event                  online                              offline
=====================  ==================================  =========================================
``PeerStatus``         ``Reachable``, ``Registered``       ``Unreachable``, ``Unregistered``
``ContactStatus``      ``Created``, ``Reachable``,         ``Removed``, ``Unreachable``
                       ``NonQualified`` (qualify off),
                       ``Updated``
``DeviceStateChange``  ``NOT_INUSE`` ``INUSE`` ``BUSY``    ``UNAVAILABLE`` ``INVALID`` ``UNKNOWN``
                       ``RINGING`` ``RINGINUSE`` ``ONHOLD``
``EndpointList``       ``DeviceState: Not in use`` etc.    ``DeviceState: Unavailable`` etc.
=====================  ==================================  =========================================

:class:`PresenceTracker` keeps one online flag per endpoint and reports a
:class:`PresenceChange` only when that flag flips, so the burst of events for
one registration yields one change.  Devices that are not endpoints
(``Queue:support_avail``, ``Custom:...``) are ignored.

``ContactStatus`` is per contact: a phone registered from two places stays
online when one contact is removed.  The tracker remembers the live contacts
it has seen (and those listed by ``PJSIPShowEndpoints``) and reports offline on
a removed contact only when none is left; endpoint-level events
(``PeerStatus``, ``DeviceStateChange``) are authoritative either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .errors import AmiActionFailed

__all__ = ["PresenceChange", "PresenceTracker", "read_presence"]

DEVICE_ONLINE = frozenset({"NOT_INUSE", "INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
DEVICE_OFFLINE = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN"})
# PJSIPShowEndpoints gives the device state as text (ast_devstate_str), not as the enum name.
DEVICE_TEXT = {
    "not in use": True, "in use": True, "busy": True, "ringing": True, "ring+inuse": True, "on hold": True,
    "unavailable": False, "invalid": False, "unknown": False,
}
PEER_ONLINE = frozenset({"reachable", "registered"})
PEER_OFFLINE = frozenset({"unreachable", "unregistered"})
CONTACT_ONLINE = frozenset({"created", "reachable", "nonqualified", "updated"})
CONTACT_OFFLINE = frozenset({"removed", "unreachable"})
SNAPSHOT_SOURCE = "PJSIPShowEndpoints"


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """``endpoint`` (``PJSIP/1001``) went ``online`` or offline; ``source`` names the event that said so."""

    endpoint: str
    online: bool
    source: str


class PresenceTracker:
    """Online flags per endpoint, keyed as the engine writes them (``PJSIP/1001``).

    ``endpoints`` limits tracking to those keys (e.g. the agents' phones), so
    a caller trunk going ``INUSE`` during a call is not reported.
    """

    def __init__(self, endpoints: Iterable[str] | None = None, technology: str = "PJSIP") -> None:
        self._watch = None if endpoints is None else frozenset(endpoints)
        self._tech = technology
        self._online: dict[str, bool] = {}
        self._contacts: dict[str, set[str]] = {}

    # ------------------------------------------------------------- queries
    def online(self, endpoint: str) -> bool | None:
        """The last known flag; None when nothing was heard about ``endpoint`` yet."""
        return self._online.get(endpoint)

    @property
    def states(self) -> dict[str, bool]:
        """A copy of every known flag."""
        return dict(self._online)

    def reset(self) -> None:
        """Forget everything (e.g. after the AMI connection was lost): the next snapshot reports all."""
        self._online.clear()
        self._contacts.clear()

    # ------------------------------------------------------------- updates
    def apply(self, event: Mapping[str, str]) -> list[PresenceChange]:
        """Feed one AMI event; returns the change it caused (a list of zero or one item)."""
        name = event.get("Event", "")
        if name == "DeviceStateChange":
            return self._device_state(event)
        if name == "PeerStatus":
            return self._peer_status(event)
        if name == "ContactStatus":
            return self._contact_status(event)
        if name == "EndpointList":
            return self._endpoint_item(event, SNAPSHOT_SOURCE)
        return []

    def snapshot(self, events: Iterable[Mapping[str, str]]) -> list[PresenceChange]:
        """Apply the ``EndpointList`` items of ``PJSIPShowEndpoints``; returns what differs from before.

        A fresh tracker reports every endpoint; after a reconnect only the
        endpoints whose state changed during the gap.
        """
        changes: list[PresenceChange] = []
        for event in events:
            if event.get("Event") == "EndpointList":
                changes += self._endpoint_item(event, SNAPSHOT_SOURCE)
        return changes

    # ------------------------------------------------------------- sources
    def _device_state(self, event: Mapping[str, str]) -> list[PresenceChange]:
        device = event.get("Device", "")
        state = event.get("State", "").upper()
        if "/" not in device:
            return []  # Queue:x_avail, Custom:x, hints: not endpoints
        if state in DEVICE_ONLINE:
            return self._set(device, True, "DeviceStateChange")
        if state in DEVICE_OFFLINE:
            self._contacts.pop(device, None)
            return self._set(device, False, "DeviceStateChange")
        return []

    def _peer_status(self, event: Mapping[str, str]) -> list[PresenceChange]:
        peer = event.get("Peer", "")
        status = event.get("PeerStatus", "").lower()
        if "/" not in peer:
            return []
        if status in PEER_ONLINE:
            return self._set(peer, True, "PeerStatus")
        if status in PEER_OFFLINE:
            self._contacts.pop(peer, None)
            return self._set(peer, False, "PeerStatus")
        return []

    def _contact_status(self, event: Mapping[str, str]) -> list[PresenceChange]:
        name = event.get("EndpointName") or event.get("AOR") or ""
        if not name:
            return []
        endpoint = f"{self._tech}/{name}"
        status = event.get("ContactStatus", "").lower()
        uri = event.get("URI", "")
        if status in CONTACT_ONLINE:
            self._contacts.setdefault(endpoint, set()).add(uri)
            return self._set(endpoint, True, "ContactStatus")
        if status in CONTACT_OFFLINE:
            live = self._contacts.get(endpoint, set())
            live.discard(uri)
            if live:
                return []  # another contact of this endpoint is still registered
            self._contacts.pop(endpoint, None)
            return self._set(endpoint, False, "ContactStatus")
        return []  # Unknown: qualify has not decided yet

    def _endpoint_item(self, event: Mapping[str, str], source: str) -> list[PresenceChange]:
        name = event.get("ObjectName", "")
        online = DEVICE_TEXT.get(event.get("DeviceState", "").strip().lower())
        if not name or online is None:
            return []
        endpoint = f"{self._tech}/{name}"
        contacts = _contact_uris(event.get("Contacts", ""))
        if contacts:
            self._contacts[endpoint] = contacts
        elif not online:
            self._contacts.pop(endpoint, None)
        return self._set(endpoint, online, source)

    def _set(self, endpoint: str, online: bool, source: str) -> list[PresenceChange]:
        if self._watch is not None and endpoint not in self._watch:
            return []
        if self._online.get(endpoint) is online:
            return []
        self._online[endpoint] = online
        return [PresenceChange(endpoint, online, source)]


def _contact_uris(field: str) -> set[str]:
    """URIs from an EndpointList ``Contacts`` field: ``aor/sip:uri,`` items (or bare URIs)."""
    uris: set[str] = set()
    for item in field.split(","):
        item = item.strip()
        if not item:
            continue
        slash, colon = item.find("/"), item.find(":")
        if 0 <= slash < colon:
            item = item[slash + 1:]  # "agent1002/sip:agent1002@..." -> the URI
        uris.add(item)
    return uris


class _ActionClient(Protocol):
    async def action(self, action: Mapping[str, str], *, timeout: float | None = None,
                     idempotent: bool = True) -> object: ...


async def read_presence(client: _ActionClient, tracker: PresenceTracker | None = None) -> list[PresenceChange]:
    """Ask Asterisk for every PJSIP endpoint's state (``PJSIPShowEndpoints``).

    Without ``tracker`` it returns every endpoint's current state; with one
    (the engine's, typically from ``on_connected`` after a reconnect) it
    updates it and returns only what changed.  Asterisk answers
    ``No endpoints found`` as an error when none are configured: that is an
    empty list here.
    """
    try:
        items = await client.action({"Action": "PJSIPShowEndpoints"})
    except AmiActionFailed as exc:
        if exc.message.lower().startswith("no endpoints found"):
            return []
        raise
    if not isinstance(items, list):
        return []
    return (tracker or PresenceTracker()).snapshot(items)
