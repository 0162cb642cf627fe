"""One reconnect-delay rule shared by the Asterisk connectors (ARI events socket, AMI).

Modelled on python-websockets' ``backoff()``: the delay doubles with every
failed attempt, is capped (90 s by default in the connectors), and is jittered
to 0.5x..1x so that many engines restarted together do not hammer a
recovering Asterisk in lockstep.  ``rng`` is injected so tests can pin the
jitter and assert exact bounds without real randomness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["jittered_backoff", "pause_unless_closed"]

# 2**64 already exceeds any sensible cap; clamping the exponent avoids an
# OverflowError after a very long outage (float(2**1100) overflows).
_MAX_EXPONENT = 64


def jittered_backoff(failures: int, initial: float, cap: float, rng: Callable[[], float]) -> float:
    """Delay before the next attempt: uniformly 0.5x..1x of ``min(cap, initial * 2**failures)``.

    ``failures`` counts the attempts made since the last healthy connection
    (0 for the first pause).  ``rng`` returns a float in ``[0, 1)`` like
    :func:`random.random`; values outside that range are clamped so a faulty
    generator can never produce a delay above ``cap`` or below half the base.
    """
    if failures < 0:
        raise ValueError("failures must be >= 0")
    if initial <= 0 or cap <= 0:
        raise ValueError("initial and cap must be > 0")
    base = min(cap, initial * 2.0 ** min(failures, _MAX_EXPONENT))
    jitter = min(1.0, max(0.0, rng()))
    return base * (0.5 + 0.5 * jitter)


async def pause_unless_closed(delay: float, sleep: Callable[[float], Awaitable[Any]], closing: asyncio.Event) -> bool:
    """Wait ``delay`` with the (injectable) ``sleep`` unless ``closing`` is set first; False when closed.

    Shared by the ARI and AMI reconnect loops: a client being closed must not sit out a 90 s backoff.
    """
    sleeper = asyncio.ensure_future(sleep(delay))
    closer = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (sleeper, closer):
            if not t.done():
                t.cancel()
        await asyncio.gather(sleeper, closer, return_exceptions=True)
    return not closing.is_set()
