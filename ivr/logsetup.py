"""Logging for the live engine: structlog rendering, with PHI scrubbed from every line.

The modules log through the standard ``logging`` API with ids and counts, never
caller data; this is the second line of defence for a slip (an exception text
that quotes a URL or a phone number, a library that logs too much): every
record, ours or a library's, passes :func:`scrub` before it is written. Runs of
seven or more digits (phone numbers, member numbers, dates of birth typed as
digits) are masked but for their last four, and fields whose name says PHI are
dropped outright.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

PHI_FIELDS = frozenset({"caller", "caller_id", "callerid", "number", "phone", "digits", "dob", "date_of_birth",
                        "member_number", "name", "callback_number", "to", "from", "text"})
_OURS = frozenset({"timestamp", "level", "logger"})  # written by the processors above, not by callers
_DIGIT_RUN = re.compile(r"\+?\d(?:[\d\-. ]{5,}\d)")


_CHANNEL_ID = re.compile(r"\d{9,11}\.\d{1,9}")  # Asterisk's channel ids (epoch.seq): our call ids, not PHI


def _mask(m: re.Match[str]) -> str:
    if _CHANNEL_ID.fullmatch(m.group(0)):
        return m.group(0)
    digits = [c for c in m.group(0) if c.isdigit()]
    if len(digits) < 7:
        return m.group(0)
    return "***" + "".join(digits[-4:])


def scrub_text(text: str) -> str:
    return _DIGIT_RUN.sub(_mask, text)


def scrub(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drop PHI-named fields, mask digit runs in everything else."""
    for key in list(event):
        if key in _OURS:
            continue
        if key.lower() in PHI_FIELDS:
            event[key] = "[redacted]"
        elif isinstance(event[key], str):
            event[key] = scrub_text(event[key])
    return event


def configure(level: str = "INFO", *, json: bool = False) -> None:
    """Route stdlib logging and structlog through one scrubbing renderer on stderr."""
    shared = [structlog.stdlib.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _format_exc, scrub, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # access lines carry query strings
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def _format_exc(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Render tracebacks to text *before* scrubbing, so digits inside them are masked too."""
    return structlog.processors.format_exc_info(logger, method, event)
