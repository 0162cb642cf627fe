"""How long prompts take, for the time-to-a-person lint and for simulated calls.

Text is estimated from a speech rate (words per minute, per tree) plus a short
pause per sentence; audio files are measured (WAV headers); system sounds use
the duration the tree declares. The longest language counts: the lint is a
worst case.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ivr.schema import PausePart, PlayPart, SayPart

if TYPE_CHECKING:
    from ivr.tree import CallTree

UNKNOWN_AUDIO_SECONDS = 5.0  # assumed for a system sound without a declared duration
_SENTENCE_END = re.compile(r"[.!?;:](\s|$)")
_TEMPLATE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@lru_cache(maxsize=8192)
def speech_seconds(text: str, wpm: float) -> float:
    """Seconds to speak ``text`` at ``wpm``; a ``{variable}`` counts as three words (dates, numbers)."""
    n_vars = len(_TEMPLATE.findall(text))
    words = len(_TEMPLATE.sub(" ", text).split()) + 3 * n_vars
    return words * 60.0 / wpm + 0.3 * len(_SENTENCE_END.findall(text))


def part_seconds(tree: "CallTree", part: Any, language: str) -> float:
    wpm = tree.spec.lints.speech_rate_wpm
    if isinstance(part, SayPart):
        return speech_seconds(tree.pick(part.text, language), wpm)
    if isinstance(part, PlayPart):
        if part.duration is not None:
            return part.duration
        d = tree.audio_duration(tree.audio_uri(part.audio, language))
        return d if d is not None else UNKNOWN_AUDIO_SECONDS
    if isinstance(part, PausePart):
        return part.seconds
    return 0.0


def prompt_seconds(tree: "CallTree", parts: Any, language: str | None = None) -> float:
    """Seconds a prompt plays in ``language``, or in its longest language when None."""
    langs = [language] if language else tree.spec.languages
    return max(sum(part_seconds(tree, p, lang) for p in parts) for lang in langs)


def item_seconds(item: Any, wpm: float) -> float:
    """Seconds for one rendered command item (SayItem / PlayItem / PauseItem)."""
    from ivr.commands import PauseItem, PlayItem, SayItem

    if isinstance(item, SayItem):
        return speech_seconds(item.text, wpm)
    if isinstance(item, PlayItem):
        return item.duration if item.duration is not None else UNKNOWN_AUDIO_SECONDS
    if isinstance(item, PauseItem):
        return item.seconds
    return 0.0


class PromptDurations:
    """Seconds a rendered prompt (a tuple of command items) plays, memoized by object identity.

    Why: simulated calls ask this on every prompt, and the interpreter reuses the same item
    objects for prompts without variables, so one dictionary lookup usually answers. The cached
    object is kept beside its duration, so a recycled ``id`` never returns a stale length.
    """

    LIMIT = 50_000  # entries; past it new prompts are measured but not remembered

    def __init__(self, wpm: float) -> None:
        self.wpm = wpm
        self._cache: dict[int, tuple[Any, float]] = {}

    def __call__(self, items: tuple[Any, ...]) -> float:
        hit = self._cache.get(id(items))
        if hit is not None and hit[0] is items:  # a whole prompt the interpreter caches: one lookup
            return hit[1]
        total = 0.0
        cache = self._cache
        for item in items:
            got = cache.get(id(item))
            if got is not None and got[0] is item:
                total += got[1]
                continue
            d = item_seconds(item, self.wpm)
            if len(cache) < self.LIMIT:
                cache[id(item)] = (item, d)
            total += d
        if len(cache) < self.LIMIT:
            cache[id(items)] = (items, total)
        return total
