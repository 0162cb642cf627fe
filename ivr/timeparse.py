"""Reading the ``--at`` times admins type: local clinic time unless an offset is given."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def parse_at(value: str | datetime | None, tz: ZoneInfo, *, now: datetime | None = None) -> datetime:
    """``"2026-11-23 09:30"`` in the tree's zone; ``"2026-11-23T14:30Z"`` or ``+01:00`` as given.

    None means ``now`` (the caller passes the wall clock; the core never reads it).
    """
    if value is None:
        if now is None:
            raise ValueError("no time given")
        return now.astimezone(tz)
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"cannot read the time {value!r}; write it as YYYY-MM-DD HH:MM (clinic time)") from None
    if dt.tzinfo is None:
        # Local wall time in the clinic's zone; in a repeated hour the first occurrence (fold=0).
        dt = dt.replace(tzinfo=tz)
    return dt
