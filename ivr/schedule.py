"""Business-hours schedules for clinic phone trees.

A call tree's ``branch`` node asks "is schedule ``office`` open at this
instant?".  Clinic administrators write the schedule in YAML; this module
validates it (so mistakes surface at load time, with pydantic error locations
that can be mapped back to YAML lines) and compiles it into an immutable
:class:`Schedule` that answers ``is_open`` quickly and ``next_change`` exactly.

There is deliberately no wall clock anywhere in this module: every query takes
the instant as an argument, so call simulations and tests are deterministic.

YAML shape (after a YAML loader has turned it into dicts/lists/str/int/date)::

    timezone: America/New_York        # optional; defaults to the tree's zone
    weekly:                           # day spec -> one range or a list of ranges
      mon-fri: "08:00-17:00"
      sat: ["09:00-12:00"]
      sun: closed                     # or simply absent
    holidays:                         # whole-day closures
      - date: 2026-12-25              # a full date (date object or "YYYY-MM-DD")
        name: Christmas Day
      - date: "12-31"                 # "MM-DD" = every year
        name: New Year's Eve
    special_days:                     # own hours replacing the weekly hours
      - date: 2026-12-24              # full dates only
        hours: "08:00-13:00"          # or a list, or "closed"
        name: Christmas Eve (short day)
    closures:                         # one-off closures, local date-times
      - from: "2026-11-26 12:00"
        to: "2026-11-27 08:00"
        reason: Staff training

Semantics (the "why" behind each rule):

* Time ranges are half-open ``[start, end)``: a clinic "open 08:00-17:00" takes
  its last call at 16:59:59.  ``24:00`` is allowed as an end.  An end earlier
  than the start means the range crosses midnight (``22:00-06:00``);
  ``00:00-24:00`` is all day.
* Precedence: a closure instant is closed regardless; else a holiday date is
  closed all day; else a special day's hours replace the weekly hours for that
  local date; else the weekly hours apply.
* An overnight range belongs to the day it *starts* on.  ``fri: "22:00-06:00"``
  covers Friday 22:00 to Saturday 06:00 even if Saturday is a holiday, and a
  holiday (or special day) on Friday removes the whole range, including the
  part after midnight.  This keeps "which day does this shift belong to" a
  single, predictable answer for administrators.
* DST: every local wall-clock boundary is turned into one instant.  A boundary
  that falls in a spring-forward gap (a wall time that never happens) takes
  effect at the first valid instant after the gap; a boundary in a repeated
  fall-back hour takes effect at its first occurrence (``fold=0``).  An instant
  is open when it lies in ``[start instant, end instant)`` of some range.  For
  every instant outside a repeated hour this is exactly "read the local wall
  clock and compare"; inside a repeated hour it means a clinic that closed at
  the first 01:30 does not re-open when the clock shows 01:00 again.  Both
  :meth:`Schedule.is_open` and :meth:`Schedule.next_change` use this single
  definition, so ``next_change`` is always the instant where ``is_open`` flips.
* Closures are local wall-clock date-times of the schedule's zone, converted to
  instants with the same DST rules, closed on ``[from, to)``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import heapq
import re
from bisect import bisect_right
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "ClosureSpec",
    "HolidaySpec",
    "Schedule",
    "ScheduleSpec",
    "SpecialDaySpec",
]

_UTC = dt.timezone.utc
_MIN_PER_DAY = 1440
_DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX: dict[str, int] = {name: i for i, name in enumerate(_DAY_NAMES)}
_DAY_HELP = "use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri"
_TIME_HELP = 'write times as quoted "HH:MM" strings, e.g. "08:00-17:00"'
_CLOSED = "closed"

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_RANGE_RE = re.compile(r"^\s*([^\s\-–]+)\s*[-–]\s*([^\s\-–]+)\s*$")
_FULL_DATE_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_MONTH_DAY_RE = re.compile(r"^(\d{1,2})-(\d{1,2})$")
_DATETIME_RE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})[ T]+(\d{1,2}:\d{2})$")

# A range is (start_minute, end_minute) measured from 00:00 of the day it
# starts on; end_minute may exceed 1440 for ranges that cross midnight.
MinuteRange = tuple[int, int]


# --------------------------------------------------------------------------
# Parsing helpers (pure functions shared by the validators and the compiler)
# --------------------------------------------------------------------------


def _describe_input(value: object) -> str:
    """Render an unexpected YAML value so the admin can find it in the file."""
    return repr(value)


def _sexagesimal_hint(value: int) -> str:
    """Explain PyYAML 1.1's habit of reading unquoted ``8:00`` as 480."""
    hint = f"YAML read an unquoted time as the number {value}"
    if 0 <= value < _MIN_PER_DAY:
        hint += f" (it looks like {value // 60:02d}:{value % 60:02d})"
    return f"{hint}; {_TIME_HELP}"


def _parse_time(text: str, *, is_end: bool, context: str) -> int:
    """Parse ``HH:MM`` into minutes after midnight; ``24:00`` only as an end.

    ``context`` is the whole range the admin wrote, repeated in the message
    so the mistake can be found even when only the message is shown.
    """
    m = _TIME_RE.match(text)
    if m is None:
        raise ValueError(
            f"time {text!r} in {context!r} is not a valid HH:MM; {_TIME_HELP}"
        )
    hours, minutes = int(m.group(1)), int(m.group(2))
    if hours == 24 and minutes == 0:
        if not is_end:
            raise ValueError(
                f"time '24:00' in {context!r} can only end a range; "
                "start the day at 00:00"
            )
        return _MIN_PER_DAY
    if hours > 23 or minutes > 59:
        raise ValueError(
            f"time {text!r} in {context!r} is not a valid HH:MM "
            "(hours 00-23, minutes 00-59, or 24:00 as an end)"
        )
    return hours * 60 + minutes


def _parse_range(text: str) -> MinuteRange:
    """Parse ``HH:MM-HH:MM``; an end before the start crosses midnight."""
    m = _RANGE_RE.match(text)
    if m is None:
        raise ValueError(
            f"time range {text!r} is not valid; write it as a quoted "
            '"HH:MM-HH:MM" string like "08:00-17:00", or closed'
        )
    start = _parse_time(m.group(1), is_end=False, context=text)
    end = _parse_time(m.group(2), is_end=True, context=text)
    if end == start:
        raise ValueError(
            f"time range {text!r} starts and ends at the same time; "
            'use "00:00-24:00" for all day or closed for no hours'
        )
    if end < start:
        end += _MIN_PER_DAY  # crosses midnight into the next day
    return (start, end)


def _merge(ranges: list[MinuteRange]) -> tuple[MinuteRange, ...]:
    """Sort and merge overlapping/touching ranges of one day.

    Merging makes overlapping admin input (harmless) produce one clean range,
    which keeps ``open_intervals`` and ``describe`` tidy.
    """
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


def _check_hours_value(value: Any) -> str | list[str]:
    """Validate a weekly/special-day hours value and return it unchanged.

    Runs before pydantic's own ``str | list[str]`` check so that YAML
    surprises (sexagesimal ints, ``off`` read as ``False``, empty values) get a
    message that tells the admin what to write instead of a type error.
    """
    if isinstance(value, bool):
        raise ValueError(
            f"got {value!r} (YAML reads unquoted off/no/false/on/yes as true or "
            'false); write closed for no hours, or a range like "08:00-17:00"'
        )
    if isinstance(value, int):
        raise ValueError(_sexagesimal_hint(value))
    if value is None:
        raise ValueError(
            'no hours given; write closed or a quoted range like "08:00-17:00"'
        )
    if isinstance(value, str):
        if value.strip().lower() != _CLOSED:
            _parse_range(value)
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise ValueError(
                    f"hours list item {_describe_input(item)} is not a time range; "
                    'write quoted "HH:MM-HH:MM" strings'
                )
            if isinstance(item, int):
                raise ValueError(_sexagesimal_hint(item))
            if item.strip().lower() == _CLOSED:
                raise ValueError(
                    "closed cannot be part of a list of ranges; write closed on "
                    "its own, or list only ranges"
                )
            _parse_range(item)
        return list(value)
    raise ValueError(
        f"hours {_describe_input(value)} are not valid; write closed, a quoted "
        'range like "08:00-17:00", or a list of such ranges'
    )


def _hours_to_ranges(value: str | list[str]) -> tuple[MinuteRange, ...]:
    """Turn an already-validated hours value into merged minute ranges."""
    if isinstance(value, str):
        if value.strip().lower() == _CLOSED:
            return ()
        return (_parse_range(value),)
    return _merge([_parse_range(item) for item in value])


def _parse_day_spec(key: str) -> list[int]:
    """Expand ``mon-fri`` / ``mon,wed,fri`` / ``sat`` into weekday indexes.

    Ranges may wrap over the weekend (``fri-mon``) because clinics that run
    weekend services think of them that way.  Repeats inside one key are an
    error for the same reason duplicates across keys are: it is ambiguous.
    """
    days: list[int] = []
    parts = [p.strip().lower() for p in key.split(",")]
    for part in parts:
        if not part:
            raise ValueError(f"empty day in {key!r}; {_DAY_HELP}")
        if "-" in part:
            first, _, last = (s.strip() for s in part.partition("-"))
            for name in (first, last):
                if name not in _DAY_INDEX:
                    raise ValueError(f"unknown day {name!r} in {key!r}; {_DAY_HELP}")
            i, j = _DAY_INDEX[first], _DAY_INDEX[last]
            span = [(i + k) % 7 for k in range((j - i) % 7 + 1)]
        else:
            if part not in _DAY_INDEX:
                raise ValueError(f"unknown day {part!r}; {_DAY_HELP}")
            span = [_DAY_INDEX[part]]
        for day in span:
            if day in days:
                raise ValueError(
                    f"day {_DAY_NAMES[day]!r} appears more than once in {key!r}; "
                    "list each day only once"
                )
            days.append(day)
    return days


def _check_day_key(key: str) -> str:
    """Pydantic key validator: surface bad day names at load time."""
    _parse_day_spec(key)
    return key


def load_zone(name: str) -> ZoneInfo:
    """Load an IANA zone, suggesting the closest real name on a typo."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        pass
    close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(
        f"unknown time zone {name!r}; {suggestion}use an IANA name such as "
        "America/New_York, Europe/Madrid or Australia/Sydney"
    )


def _parse_full_date(text: str) -> dt.date | None:
    """Parse ``YYYY-MM-DD`` or return None if it has another shape."""
    m = _FULL_DATE_RE.match(text.strip())
    if m is None:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ValueError(f"date {text!r} does not exist; check month and day") from None


def _check_holiday_date(value: Any) -> dt.date | str:
    """Normalise a holiday date to a ``date`` or a canonical ``"MM-DD"``."""
    if isinstance(value, dt.datetime):
        raise ValueError(
            f"holiday date {value.isoformat()!r} has a time; holidays close whole "
            'days, write just the date like 2026-12-25 or "12-25" for every year'
        )
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        full = _parse_full_date(value)
        if full is not None:
            return full
        m = _MONTH_DAY_RE.match(value.strip())
        if m is not None:
            month, day = int(m.group(1)), int(m.group(2))
            try:
                dt.date(2000, month, day)  # 2000 is a leap year: allows 02-29
            except ValueError:
                raise ValueError(
                    f"date {value!r} does not exist; check month and day"
                ) from None
            return f"{month:02d}-{day:02d}"
    raise ValueError(
        f"holiday date {_describe_input(value)} is not valid; write YYYY-MM-DD "
        'for one day (e.g. 2026-12-25) or quoted "MM-DD" for every year'
    )


def _check_special_date(value: Any) -> dt.date:
    """Special days need a full date: recurring short days are rare and
    mixing them with recurring holidays would make precedence guesswork."""
    if isinstance(value, dt.datetime):
        raise ValueError(
            f"special day date {value.isoformat()!r} has a time; write just the "
            "date like 2026-12-24"
        )
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        full = _parse_full_date(value)
        if full is not None:
            return full
    raise ValueError(
        f"special day date {_describe_input(value)} is not valid; write a full "
        "date YYYY-MM-DD like 2026-12-24"
    )


def _check_local_datetime(value: Any) -> dt.datetime:
    """Parse a closure boundary as a naive local date-time.

    Closures are written in the clinic's local time; an explicit UTC offset
    would contradict that, and a bare date is ambiguous for an end ("through"
    that day or "until" it?), so both are rejected with a hint.
    """
    hint = 'write a quoted local date-time like "2026-11-26 12:00"'
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ValueError(
                f"closure time {value.isoformat()!r} has a UTC offset; closures "
                f"use the schedule's local time, {hint}"
            )
        return value
    if isinstance(value, dt.date):
        raise ValueError(
            f"closure time {value.isoformat()!r} has no time of day; {hint} "
            f'(e.g. "{value.isoformat()} 00:00")'
        )
    if isinstance(value, str):
        m = _DATETIME_RE.match(value.strip())
        if m is None:
            raise ValueError(f"closure time {value!r} is not valid; {hint}")
        day = _parse_full_date(m.group(1))
        assert day is not None  # the regex guarantees the shape
        minutes = _parse_time(m.group(2), is_end=True, context=value)
        return dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
    raise ValueError(f"closure time {_describe_input(value)} is not valid; {hint}")


def _reject_unknown_keys(model: type[BaseModel], data: Any) -> None:
    """Name unknown fields and the allowed ones, with a typo suggestion.

    pydantic's own ``extra_forbidden`` says only "Extra inputs are not
    permitted", which does not tell a clinic admin what to write instead.
    """
    if not isinstance(data, dict):
        return
    shown = [info.alias or name for name, info in model.model_fields.items()]
    accepted = set(shown)
    if model.model_config.get("populate_by_name"):
        accepted.update(model.model_fields)
    for key in data:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), shown, n=1)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown field {key!r}; {suggestion}allowed fields are: "
                + ", ".join(shown)
            )


# --------------------------------------------------------------------------
# Spec models (what the YAML loader feeds in)
# --------------------------------------------------------------------------

DayKey = Annotated[str, AfterValidator(_check_day_key)]
HoursValue = Annotated[str | list[str], BeforeValidator(_check_hours_value)]


class HolidaySpec(BaseModel):
    """A whole-day closure on one date, or every year on ``MM-DD``."""

    model_config = ConfigDict(extra="forbid")

    date: Annotated[dt.date | str, BeforeValidator(_check_holiday_date)]
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        _reject_unknown_keys(cls, data)
        return data

    @property
    def recurring(self) -> bool:
        """True for ``MM-DD`` holidays that repeat every year."""
        return isinstance(self.date, str)


class SpecialDaySpec(BaseModel):
    """A date whose own hours replace the weekly hours."""

    model_config = ConfigDict(extra="forbid")

    date: Annotated[dt.date, BeforeValidator(_check_special_date)]
    hours: HoursValue
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        _reject_unknown_keys(cls, data)
        return data


class ClosureSpec(BaseModel):
    """A one-off closure between two local date-times, ``[from, to)``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Annotated[dt.datetime, BeforeValidator(_check_local_datetime)] = Field(
        alias="from"
    )
    end: Annotated[dt.datetime, BeforeValidator(_check_local_datetime)] = Field(
        alias="to"
    )
    reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        _reject_unknown_keys(cls, data)
        return data

    @model_validator(mode="after")
    def _end_after_start(self) -> ClosureSpec:
        if self.end <= self.start:
            what = f" ({self.reason})" if self.reason else ""
            raise ValueError(
                f"closure{what} ends at {self.end:%Y-%m-%d %H:%M}, which is not "
                f"after its start {self.start:%Y-%m-%d %H:%M}; 'to' must be later "
                "than 'from'"
            )
        return self


class ScheduleSpec(BaseModel):
    """Validated, still-declarative schedule as written by the admin."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    weekly: dict[DayKey, HoursValue] = {}
    holidays: list[HolidaySpec] = []
    special_days: list[SpecialDaySpec] = []
    closures: list[ClosureSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        _reject_unknown_keys(cls, data)
        return data

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str | None) -> str | None:
        if value is not None:
            load_zone(value)
        return value

    @field_validator("weekly")
    @classmethod
    def _each_day_once(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        """A day in two keys would make its hours depend on key order."""
        owner: dict[int, str] = {}
        for key in value:
            for day in _parse_day_spec(key):
                if day in owner:
                    raise ValueError(
                        f"day {_DAY_NAMES[day]!r} is covered by both "
                        f"{owner[day]!r} and {key!r}; each day may appear in only "
                        "one key (use a list of ranges for split hours, e.g. "
                        f'{_DAY_NAMES[day]}: ["08:00-12:00", "13:00-17:00"])'
                    )
                owner[day] = key
        return value

    @field_validator("holidays")
    @classmethod
    def _no_duplicate_holidays(cls, value: list[HolidaySpec]) -> list[HolidaySpec]:
        seen: set[dt.date | str] = set()
        for holiday in value:
            if holiday.date in seen:
                raise ValueError(
                    f"holiday {_date_label(holiday.date)} is listed twice; "
                    "keep only one entry"
                )
            seen.add(holiday.date)
        return value

    @field_validator("special_days")
    @classmethod
    def _no_duplicate_special_days(
        cls, value: list[SpecialDaySpec]
    ) -> list[SpecialDaySpec]:
        seen: set[dt.date] = set()
        for special in value:
            if special.date in seen:
                raise ValueError(
                    f"special day {special.date.isoformat()} is listed twice; "
                    "merge the hours into one entry (hours may be a list)"
                )
            seen.add(special.date)
        return value

    @model_validator(mode="after")
    def _special_days_not_holidays(self) -> ScheduleSpec:
        """A holiday silently beating a special day would hide admin intent."""
        by_date = {h.date: h for h in self.holidays}
        for special in self.special_days:
            md = f"{special.date.month:02d}-{special.date.day:02d}"
            holiday = by_date.get(special.date) or by_date.get(md)
            if holiday is not None:
                label = holiday.name or _date_label(holiday.date)
                raise ValueError(
                    f"special day {special.date.isoformat()} falls on holiday "
                    f"{label!r}; a holiday closes the whole day, so remove the "
                    "holiday or the special day"
                )
        return self


def _date_label(value: dt.date | str) -> str:
    """Human form of a holiday date (full or recurring)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return f"{value} (every year)"


def _fmt_minutes(minutes: int) -> str:
    """Format minutes after midnight as HH:MM, folding overnight ends back."""
    if minutes > _MIN_PER_DAY:
        minutes -= _MIN_PER_DAY
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --------------------------------------------------------------------------
# Compiled schedule
# --------------------------------------------------------------------------

# Internally instants are naive UTC datetimes: comparisons are cheap and exact.
_Interval = tuple[dt.datetime, dt.datetime]
_CACHE_LIMIT = 8192


class Schedule:
    """A compiled, immutable schedule answering "open at this instant?".

    Weekly hours are precomputed per weekday, holidays are sets, and the
    instant-intervals of each local date are cached, so :meth:`is_open` does
    a constant amount of work (it looks at three local dates) no matter how
    far the instant is from anything else.
    """

    __slots__ = (
        "_name",
        "_tz",
        "_weekly",
        "_holiday_dates",
        "_holiday_month_days",
        "_special",
        "_closure_starts",
        "_closure_ends",
        "_counts",
        "_day_cache",
    )

    _name: str
    _tz: ZoneInfo
    _weekly: tuple[tuple[MinuteRange, ...], ...]
    _holiday_dates: frozenset[dt.date]
    _holiday_month_days: frozenset[tuple[int, int]]
    _special: dict[dt.date, tuple[MinuteRange, ...]]
    _closure_starts: tuple[dt.datetime, ...]
    _closure_ends: tuple[dt.datetime, ...]
    _counts: tuple[int, int, int]
    _day_cache: dict[dt.date, tuple[_Interval, ...]]

    def __init__(self) -> None:
        raise TypeError("build a Schedule with Schedule.compile(spec, default_tz)")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Schedule is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Schedule is immutable")

    # -- construction -----------------------------------------------------

    @classmethod
    def compile(
        cls, spec: ScheduleSpec, default_tz: str, name: str = ""
    ) -> Schedule:
        """Compile a validated spec; ``default_tz`` is the call tree's zone.

        The tree's zone is only used when the schedule does not name its own,
        so a multi-site tree can still have one schedule per site's zone.
        """
        tz = load_zone(spec.timezone or default_tz)
        weekly: list[list[MinuteRange]] = [[] for _ in range(7)]
        for key, value in spec.weekly.items():
            ranges = _hours_to_ranges(value)
            for day in _parse_day_spec(key):
                weekly[day].extend(ranges)
        self = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(self, "_name", name)
        setattr_(self, "_tz", tz)
        setattr_(self, "_weekly", tuple(_merge(day) for day in weekly))
        setattr_(
            self,
            "_holiday_dates",
            frozenset(h.date for h in spec.holidays if isinstance(h.date, dt.date)),
        )
        setattr_(
            self,
            "_holiday_month_days",
            frozenset(
                (int(h.date[:2]), int(h.date[3:]))
                for h in spec.holidays
                if isinstance(h.date, str)
            ),
        )
        setattr_(
            self,
            "_special",
            {s.date: _hours_to_ranges(s.hours) for s in spec.special_days},
        )
        setattr_(self, "_day_cache", {})
        # Closures: resolve to instants, drop those swallowed by a DST gap,
        # merge overlaps so a single bisect answers "inside a closure?".
        closures: list[list[dt.datetime]] = []
        for start, end in sorted(
            (self._resolve(c.start), self._resolve(c.end)) for c in spec.closures
        ):
            if end <= start:
                continue
            if closures and start <= closures[-1][1]:
                closures[-1][1] = max(closures[-1][1], end)
            else:
                closures.append([start, end])
        setattr_(self, "_closure_starts", tuple(c[0] for c in closures))
        setattr_(self, "_closure_ends", tuple(c[1] for c in closures))
        setattr_(
            self,
            "_counts",
            (len(spec.holidays), len(spec.special_days), len(spec.closures)),
        )
        return self

    # -- public properties ------------------------------------------------

    @property
    def name(self) -> str:
        """The schedule's name in the tree (for messages and logs)."""
        return self._name

    @property
    def tz(self) -> ZoneInfo:
        """The zone all local dates and wall-clock times refer to."""
        return self._tz

    # -- DST-aware conversion ---------------------------------------------

    def _resolve(self, wall: dt.datetime) -> dt.datetime:
        """Turn a naive local wall time into a naive UTC instant.

        Existing (including repeated) wall times map to their first
        occurrence (fold=0).  Wall times inside a spring-forward gap map to
        the first valid instant after the gap, i.e. the transition itself,
        found by bisection because zoneinfo exposes no transition list.
        """
        tz = self._tz
        offset0 = wall.replace(tzinfo=tz).utcoffset()
        assert offset0 is not None
        utc0 = wall - offset0
        if self._local(utc0) == wall:
            return utc0
        offset1 = wall.replace(tzinfo=tz, fold=1).utcoffset()
        assert offset1 is not None
        utc1 = wall - offset1
        lo, hi = min(utc0, utc1), max(utc0, utc1)
        if self._local(hi) < wall or self._local(lo) >= wall:  # pragma: no cover
            return utc0  # not a plain gap; fall back to zoneinfo's answer
        # Invariant: local(lo) < wall <= local(lo + hi_s seconds).
        lo_s, hi_s = 0, int((hi - lo).total_seconds())
        while hi_s - lo_s > 1:
            mid = (lo_s + hi_s) // 2
            if self._local(lo + dt.timedelta(seconds=mid)) >= wall:
                hi_s = mid
            else:
                lo_s = mid
        return lo + dt.timedelta(seconds=hi_s)

    def _local(self, utc: dt.datetime) -> dt.datetime:
        """Naive local wall time of a naive UTC instant."""
        return utc.replace(tzinfo=_UTC).astimezone(self._tz).replace(tzinfo=None)

    def _to_aware(self, utc: dt.datetime) -> dt.datetime:
        return utc.replace(tzinfo=_UTC).astimezone(self._tz)

    def _split(self, at: dt.datetime) -> tuple[dt.datetime, dt.date]:
        """Validate ``at`` and return (naive UTC instant, local date)."""
        if not isinstance(at, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(at).__name__}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(
                "schedule queries need a timezone-aware datetime (a naive time "
                "is ambiguous across zones and DST); attach a tzinfo"
            )
        local = at.astimezone(self._tz)
        offset = local.utcoffset()
        assert offset is not None
        return local.replace(tzinfo=None) - offset, local.date()

    # -- per-date hours ---------------------------------------------------

    def _ranges_for(self, day: dt.date) -> tuple[MinuteRange, ...]:
        """Minute ranges starting on ``day`` after holidays/special days."""
        if day in self._holiday_dates or (day.month, day.day) in self._holiday_month_days:
            return ()
        special = self._special.get(day)
        if special is not None:
            return special
        return self._weekly[day.weekday()]

    def _intervals(self, day: dt.date) -> tuple[_Interval, ...]:
        """Cached UTC instant intervals of the ranges starting on ``day``."""
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        midnight = dt.datetime.combine(day, dt.time())
        out: list[_Interval] = []
        for start, end in self._ranges_for(day):
            s = self._resolve(midnight + dt.timedelta(minutes=start))
            e = self._resolve(midnight + dt.timedelta(minutes=end))
            if s < e:  # a range entirely inside a DST gap never happens
                out.append((s, e))
        result = tuple(out)
        if len(self._day_cache) >= _CACHE_LIMIT:
            self._day_cache.clear()
        self._day_cache[day] = result
        return result

    def _in_closure(self, utc: dt.datetime) -> bool:
        i = bisect_right(self._closure_starts, utc) - 1
        return i >= 0 and utc < self._closure_ends[i]

    def _open_utc(self, utc: dt.datetime, local_day: dt.date) -> bool:
        if self._closure_starts and self._in_closure(utc):
            return False
        one = dt.timedelta(days=1)
        # Ranges start on their own date and last < 24 h, so only the
        # previous, same and (for folds straddling midnight) next date matter.
        for day in (local_day, local_day - one, local_day + one):
            for start, end in self._intervals(day):
                if start <= utc < end:
                    return True
        return False

    # -- public queries ---------------------------------------------------

    def is_open(self, at: dt.datetime) -> bool:
        """Is the clinic open at instant ``at`` (which must be tz-aware)?"""
        utc, local_day = self._split(at)
        return self._open_utc(utc, local_day)

    def next_change(
        self, at: dt.datetime, horizon_days: int = 366
    ) -> dt.datetime | None:
        """The first instant strictly after ``at`` where ``is_open`` flips.

        Returned as an aware datetime in the schedule's zone, or None if
        nothing changes within ``horizon_days`` days (of elapsed time) after
        ``at``.  Candidate boundaries are generated date by date and checked
        in time order, so an overnight range that is extended by the next
        day's early range (or cut by a closure) is handled naturally.
        """
        if horizon_days < 0:
            raise ValueError("horizon_days must be zero or positive")
        utc, local_day = self._split(at)
        current = self._open_utc(utc, local_day)
        limit_utc = utc + dt.timedelta(days=horizon_days)
        heap: list[dt.datetime] = [
            c
            for c in (*self._closure_starts, *self._closure_ends)
            if utc < c <= limit_utc
        ]
        heapq.heapify(heap)
        one = dt.timedelta(days=1)
        day = local_day - 2 * one
        while True:
            for start, end in self._intervals(day):
                for boundary in (start, end):
                    if utc < boundary <= limit_utc:
                        heapq.heappush(heap, boundary)
            # Every boundary from a later date is >= the next local midnight,
            # so everything below it is final and can be checked in order.
            frontier = self._resolve(dt.datetime.combine(day + one, dt.time()))
            while heap and heap[0] < frontier:
                candidate = heapq.heappop(heap)
                if self._open_utc(candidate, self._local(candidate).date()) != current:
                    return self._to_aware(candidate)
            if frontier > limit_utc:
                return None
            day += one

    def open_intervals(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """Aware local intervals of the ranges that START on local ``day``.

        Holidays and special days are applied; closures are NOT subtracted
        (they are instants, not per-day hours; ``is_open``/``next_change``
        apply them).  An overnight range appears only on its starting date.
        Boundaries are resolved with the module's DST rules, and a range that
        lies entirely in a DST gap is omitted.
        """
        if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
            raise TypeError("open_intervals takes a local calendar date")
        return [(self._to_aware(s), self._to_aware(e)) for s, e in self._intervals(day)]

    def describe(self) -> str:
        """One-line summary for logs and admin previews.

        Example: ``Mon-Fri 08:00-17:00, Sat 09:00-12:00 (America/New_York);
        2 holidays, 1 special day, 1 closure``.
        """
        groups: list[tuple[int, int, tuple[MinuteRange, ...]]] = []
        for index, ranges in enumerate(self._weekly):
            if not ranges:
                continue
            if groups and groups[-1][1] == index - 1 and groups[-1][2] == ranges:
                groups[-1] = (groups[-1][0], index, ranges)
            else:
                groups.append((index, index, ranges))
        parts: list[str] = []
        for first, last, ranges in groups:
            days = _DAY_NAMES[first].title()
            if last != first:
                days += "-" + _DAY_NAMES[last].title()
            hours = " & ".join(f"{_fmt_minutes(s)}-{_fmt_minutes(e)}" for s, e in ranges)
            parts.append(f"{days} {hours}")
        text = ", ".join(parts) if parts else "no weekly hours"
        text += f" ({self._tz.key})"
        holidays, specials, closures = self._counts
        extras = [
            _plural(n, word)
            for n, word in (
                (holidays, "holiday"),
                (specials, "special day"),
                (closures, "closure"),
            )
            if n
        ]
        if extras:
            text += "; " + ", ".join(extras)
        if self._name:
            text = f"{self._name}: {text}"
        return text

    def __repr__(self) -> str:
        return f"<Schedule {self.describe()}>"
