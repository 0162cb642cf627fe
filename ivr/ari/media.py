"""Prompt items as Asterisk media URIs.

Asterisk has no text-to-speech of its own, so a ``say`` text is played from an
audio file produced ahead of time (by a voice talent or a TTS tool) and named
after the text: ``recordings/prompts/<lang>/<key>.wav`` where ``key`` is
:func:`prompt_key`. Installed under ``/var/lib/asterisk/sounds/<lang>/ivr/``
(see ``dialplans/README.md``), Asterisk finds it as ``sound:ivr/<key>`` played
with ``lang=<lang>``. A file that is missing makes Asterisk end the playback as
``failed``; the engine then moves on as if it had played, so a missing file
costs the caller a prompt, never the call.

Audio files the tree names itself (``play: chime.wav``) live in ``recordings/``
and are installed the same way (``sound:ivr/chime``). Pauses use Asterisk's own
``silence/N`` sounds, and queue announcements Asterisk's stock ``queue-*``
sounds with ``number:`` for counts, so they exist in every language pack.
"""

from __future__ import annotations

import hashlib
import re

from ivr import commands as C

_SAFE = re.compile(r"[^a-z0-9]+")


def prompt_key(text: str, language: str) -> str:
    """A stable file name for a spoken text: a readable slug plus a hash (texts differ by one word)."""
    slug = _SAFE.sub("-", text.lower()).strip("-")[:24].rstrip("-") or "prompt"
    digest = hashlib.sha1(f"{language}\n{text}".encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


def item_media(item: C.PromptItem) -> list[str]:
    """One prompt item as media URIs (a pause longer than 10 s becomes several silences)."""
    if isinstance(item, C.SayItem):
        if item.shown is not None and item.shown != item.text:
            return []  # a text rendered with sensitive values: no file can exist, and its hash would carry PHI
        return [f"sound:ivr/{prompt_key(item.text, item.language)}"]
    if isinstance(item, C.PlayItem):
        uri = item.uri
        if ":" in uri:  # sound:beep, recording:name, tone:...
            return [uri]
        return ["sound:ivr/" + uri.rsplit(".", 1)[0] if "." in uri.rsplit("/", 1)[-1] else "sound:ivr/" + uri]
    secs = max(1, round(item.seconds))
    out = []
    while secs > 0:
        n = min(secs, 10)
        out.append(f"sound:silence/{n}")
        secs -= n
    return out


def prompt_media(items: tuple[C.PromptItem, ...]) -> list[str]:
    """All items of a prompt in order, for one ``POST /channels/{id}/play`` (one playback id, one barge-in)."""
    out: list[str] = []
    for item in items:
        out.extend(item_media(item))
    return out or ["sound:silence/1"]


def position_media(position: int, wait_seconds: float | None) -> list[str]:
    """'You are next' / 'there are N calls waiting before you', then the expected wait in minutes."""
    media = ["sound:queue-youarenext"] if position <= 1 else [
        "sound:queue-thereare", f"number:{position - 1}", "sound:queue-callswaiting"]
    if wait_seconds is not None and wait_seconds != float("inf") and wait_seconds >= 60:
        media += ["sound:queue-holdtime", f"number:{round(wait_seconds / 60)}", "sound:queue-minutes"]
    media.append("sound:queue-thankyou")
    return media
