"""Asterisk configuration generated from the roster: PJSIP endpoints and fallback queue members.

The roster (``agents.yaml``) is the one place an admin lists agents. The engine
originates to each agent's ``endpoint`` (``PJSIP/1001``), so Asterisk must have an
endpoint of that name, and the dialplan fallback (``ivr-fallback``, used when the
engine is down) must ring the same people. Writing those by hand drifts; these pure
functions render them, ``ivr dialplan endpoints`` / ``ivr dialplan members`` print
them, and the tests compare the committed ``dialplans/`` files with the output.

Only ``PJSIP/...`` endpoints are Asterisk softphones. Twilio Client identities
(``client:ana``), SIP URIs on another PBX and phone numbers are reached another way
(the Twilio adapter, the trunk), so they are skipped with a comment saying why:
a reader of the generated file sees every agent accounted for.

No secret is ever rendered: every password is a placeholder (see
``dialplans/README.md`` for where real passwords go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.roster import AgentSpec, Roster

DEFAULT_PASSWORD_PLACEHOLDER = "CHANGE_ME"
"""What every generated ``password =`` line says: a placeholder, never a secret."""

ENDPOINT_TEMPLATE = "agent-template"
AUTH_TEMPLATE = "agent-auth"
AOR_TEMPLATE = "agent-aor"

RESERVED_SECTION_NAMES = frozenset({
    "global", "system", "transport-udp", "transport-tls", ENDPOINT_TEMPLATE, AUTH_TEMPLATE, AOR_TEMPLATE,
    "clinic-trunk", "clinic-trunk-auth", "clinic-trunk-reg", "clinic-trunk-identify",
})
"""Section names pjsip.conf already uses: an agent endpoint with one of these names would
silently merge with (or shadow) the transport, the templates or the trunk."""

QUEUE_BLOCK_BEGIN = "; BEGIN agents: generated from agents.yaml by `ivr dialplan members`; do not edit by hand"
QUEUE_BLOCK_END = "; END agents"

_PJSIP = re.compile(r"^PJSIP/([\w.-]+)$")


@dataclass(frozen=True, slots=True)
class PjsipAgent:
    """One PJSIP endpoint to render, with every roster agent who uses it (hot-desking shares a phone)."""

    name: str
    agents: tuple[AgentSpec, ...]

    @property
    def display_name(self) -> str:
        return " / ".join(a.name for a in self.agents)

    @property
    def ids(self) -> str:
        return ", ".join(a.id for a in self.agents)


def pjsip_name(endpoint: str) -> str | None:
    """``PJSIP/1001`` -> ``1001``; None for any endpoint Asterisk's PJSIP stack does not own."""
    m = _PJSIP.match(endpoint)
    return m.group(1) if m else None


def skip_reason(endpoint: str) -> str:
    """Why a non-PJSIP roster endpoint gets no Asterisk endpoint (written as a comment, not an error)."""
    if endpoint.startswith("client:"):
        return "a Twilio Client identity; the Twilio adapter rings it, not Asterisk"
    if endpoint.startswith(("sip:", "sips:")):
        return "a SIP URI on another server; it registers there, not here"
    if endpoint.startswith("SIP/"):
        return "chan_sip is gone from Asterisk 21+; move this phone to PJSIP/..."
    return "a phone number; reached through the trunk, not registered here"


def pjsip_agents(roster: Roster) -> tuple[list[PjsipAgent], list[AgentSpec]]:
    """Split the roster into PJSIP endpoints (in roster order, shared phones once) and skipped agents.

    Raises ValueError when an endpoint's name would collide with a section pjsip.conf
    already defines or with another endpoint's auth section: Asterisk would merge them
    without a word, and an agent's phone would stop working in a way nobody can see.
    """
    by_name: dict[str, list[AgentSpec]] = {}
    skipped: list[AgentSpec] = []
    for a in roster.agents:
        name = pjsip_name(a.endpoint)
        if name is None:
            skipped.append(a)
        else:
            by_name.setdefault(name, []).append(a)
    for name, agents in by_name.items():
        ids = ", ".join(a.id for a in agents)
        if name.lower() in RESERVED_SECTION_NAMES:
            raise ValueError(f"agent {ids}: endpoint PJSIP/{name} has the name of a section pjsip.conf already "
                             "defines; choose another extension")
        if name.endswith("-auth") and name[: -len("-auth")] in by_name:
            raise ValueError(f"agent {ids}: endpoint PJSIP/{name} collides with the auth section of "
                             f"PJSIP/{name[: -len('-auth')]}; choose another extension")
    return [PjsipAgent(n, tuple(a)) for n, a in by_name.items()], skipped


def _clean(text: str, forbidden: str) -> str:
    """Drop characters that would end a value or start a comment in an Asterisk config line."""
    out = "".join(" " if ch in forbidden or ch in "\r\n\t" else ch for ch in text)
    return re.sub(r"\s+", " ", out).strip()


def _header(title: str) -> list[str]:
    return [
        f"; {title}",
        "; GENERATED from agents.yaml by `ivr dialplan endpoints --agents agents.yaml --out dialplans/pjsip_agents.conf`.",
        "; Do not edit by hand: change agents.yaml and regenerate (tests/test_dialplans.py fails if the two drift).",
    ]


def render_pjsip_agents(roster: Roster, *, password_var: str = DEFAULT_PASSWORD_PLACEHOLDER) -> str:
    """The ``pjsip_agents.conf`` include: an endpoint, an auth and an aor per PJSIP agent.

    Every section inherits from the templates in ``pjsip.conf`` (``agent-template``,
    ``agent-auth``, ``agent-aor``), so NAT, codec and qualify settings live in one place
    and this file only says who exists. ``password_var`` is the placeholder written as
    every password (``{ext}`` in it becomes the extension); real passwords are appended
    by the uncommitted ``pjsip_secrets.conf`` that pjsip.conf includes last.
    """
    if not password_var or any(ch in password_var for ch in ";\r\n[]") or password_var != password_var.strip():
        raise ValueError(f"password placeholder {password_var!r} would not survive in pjsip.conf: "
                         "no spaces around it, no ';', '[', ']' or line breaks")
    endpoints, skipped = pjsip_agents(roster)
    lines = _header("Agent softphones: one endpoint + auth + aor per PJSIP agent in agents.yaml.")
    lines += [
        f"; Passwords below are the placeholder {password_var!r}: set the real ones in pjsip_secrets.conf",
        "; (see dialplans/README.md), never here.",
    ]
    for ep in endpoints:
        callerid = _clean(ep.display_name, '"<>;')
        lines += [
            "",
            f"; {ep.ids}",
            f"[{ep.name}]({ENDPOINT_TEMPLATE})",
            f"auth = {ep.name}-auth",
            f"aors = {ep.name}",
            f'callerid = "{callerid}" <{ep.name}>',
            "",
            f"[{ep.name}-auth]({AUTH_TEMPLATE})",
            f"username = {ep.name}",
            f"password = {password_var.replace('{ext}', ep.name)}",
            "",
            f"[{ep.name}]({AOR_TEMPLATE})",
        ]
    if skipped:
        lines.append("")
    for a in skipped:
        lines.append(f"; skipped {a.id} ({_clean(a.endpoint, ';')}): {skip_reason(a.endpoint)}")
    return "\n".join(lines) + "\n"


def render_queue_members(roster: Roster) -> str:
    """The ``member =>`` lines of the ``ivr-fallback`` queue (queues.conf), between the generated-block markers.

    The fallback rings every PJSIP agent at once when the engine is down: nobody
    is routed by skill then, the point is that a person answers. Penalty 0 for all.
    """
    endpoints, skipped = pjsip_agents(roster)
    lines = [QUEUE_BLOCK_BEGIN]
    for ep in endpoints:
        lines.append(f"member => PJSIP/{ep.name},0,{_clean(ep.display_name, ',;()|')}")
    for a in skipped:
        lines.append(f"; skipped {a.id} ({_clean(a.endpoint, ';')}): {skip_reason(a.endpoint)}")
    lines.append(QUEUE_BLOCK_END)
    return "\n".join(lines) + "\n"


def replace_generated_block(text: str, block: str) -> str:
    """``text`` (a queues.conf) with the lines from BEGIN to END marker replaced by ``block``.

    Raises ValueError unless the markers appear exactly once and in order, so a
    hand-edited file is never half rewritten.
    """
    lines = text.splitlines(keepends=True)
    begins = [i for i, ln in enumerate(lines) if ln.rstrip("\r\n") == QUEUE_BLOCK_BEGIN]
    ends = [i for i, ln in enumerate(lines) if ln.rstrip("\r\n") == QUEUE_BLOCK_END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ValueError("expected exactly one generated block: a line "
                         f"{QUEUE_BLOCK_BEGIN!r} followed by a line {QUEUE_BLOCK_END!r}")
    return "".join(lines[: begins[0]]) + block + "".join(lines[ends[0] + 1:])
