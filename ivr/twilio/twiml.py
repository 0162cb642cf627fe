"""Interpreter prompt items as TwiML nouns (built with the twilio library's TwiML classes).

Twilio speaks the tree's text itself (``<Say>``) in the caller's language and the
tree's voice; audio files the tree names are served by the engine under
``/media/`` and played with ``<Play>``. Asterisk system sounds (``sound:beep``)
have no Twilio equivalent and are skipped.
"""

from __future__ import annotations

from typing import Any

from ivr import commands as C

SAY_LANGUAGE = {"en": "en-US", "es": "es-US", "fr": "fr-FR", "de": "de-DE", "pt": "pt-BR", "zh": "cmn-CN",
                "vi": "vi-VN", "ar": "arb", "ru": "ru-RU", "ko": "ko-KR", "ja": "ja-JP", "it": "it-IT"}
DEFAULT_VOICE = {"en": "Polly.Joanna", "es": "Polly.Lupe"}


def say_language(lang: str) -> str:
    return SAY_LANGUAGE.get(lang, lang if "-" in lang else f"{lang}-US")


def add_items(parent: Any, items: tuple[C.PromptItem, ...], media_base: str) -> None:
    """Append the prompt's items to a ``VoiceResponse`` or a ``Gather``."""
    for item in items:
        if isinstance(item, C.SayItem):
            voice = item.voice or DEFAULT_VOICE.get(item.language)
            parent.say(item.text, language=say_language(item.language), **({"voice": voice} if voice else {}))
        elif isinstance(item, C.PlayItem):
            if ":" in item.uri:
                continue  # an Asterisk sound: nothing to play on Twilio
            parent.play(f"{media_base}/media/{item.uri.lstrip('/')}")
        else:
            parent.pause(length=max(1, round(item.seconds)))
