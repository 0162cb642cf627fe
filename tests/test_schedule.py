"""Tests for ivr.schedule: business hours across zones and DST changes.

No wall clock is used anywhere: every instant is constructed explicitly, so
the tests mean the same thing on any machine on any day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ivr.schedule import ClosureSpec, HolidaySpec, Schedule, ScheduleSpec

UTC = dt.timezone.utc
NY = ZoneInfo("America/New_York")
MADRID = ZoneInfo("Europe/Madrid")
SYDNEY = ZoneInfo("Australia/Sydney")

OFFICE: dict[str, Any] = {
    "timezone": "America/New_York",
    "weekly": {"mon-fri": "08:00-17:00", "sat": ["09:00-12:00"], "sun": "closed"},
    "holidays": [
        {"date": dt.date(2026, 12, 25), "name": "Christmas Day"},
        {"date": "12-31", "name": "New Year's Eve"},
    ],
    "special_days": [
        {"date": dt.date(2026, 12, 24), "hours": "08:00-13:00", "name": "Christmas Eve"}
    ],
    "closures": [
        {"from": "2026-11-26 12:00", "to": "2026-11-27 08:00", "reason": "Staff training"}
    ],
}


def build(data: dict[str, Any], default_tz: str = "America/New_York", name: str = "") -> Schedule:
    """Validate a YAML-shaped dict and compile it."""
    return Schedule.compile(ScheduleSpec.model_validate(data), default_tz, name)


def ny(*args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def as_utc(value: dt.datetime | None) -> dt.datetime:
    """Compare instants in UTC.

    Python compares/subtracts two datetimes sharing a tzinfo by wall clock
    (ignoring fold), and never treats an ambiguous local time as equal to a
    time in another zone, so DST assertions must be made in UTC.
    """
    assert value is not None
    return value.astimezone(UTC)


def error_of(data: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """The single validation error's (loc, message) for invalid input."""
    with pytest.raises(ValidationError) as info:
        ScheduleSpec.model_validate(data)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


@pytest.fixture(scope="module")
def office() -> Schedule:
    return build(OFFICE, default_tz="UTC", name="office")


# --------------------------------------------------------------------------
# Weekly hours
# --------------------------------------------------------------------------


def test_weekday_edges_start_inclusive_end_exclusive(office: Schedule) -> None:
    # 2026-01-05 is a Monday.
    assert not office.is_open(ny(2026, 1, 5, 7, 59))
    assert not office.is_open(ny(2026, 1, 5, 7, 59, 59))
    assert office.is_open(ny(2026, 1, 5, 8, 0))
    assert office.is_open(ny(2026, 1, 5, 16, 59, 59))
    assert not office.is_open(ny(2026, 1, 5, 17, 0))


def test_saturday_list_and_closed_sunday(office: Schedule) -> None:
    assert office.is_open(ny(2026, 1, 10, 9, 0))  # Saturday
    assert not office.is_open(ny(2026, 1, 10, 12, 0))
    assert not office.is_open(ny(2026, 1, 11, 10, 0))  # Sunday "closed"


def test_day_ranges_comma_lists_and_case() -> None:
    sched = build(
        {
            "weekly": {
                "MON,Wed,fri": "09:00-12:00",
                "tue, thu": ["13:00-15:00", "16:00-18:00"],
                "Sat-Sun": "10:00-11:00",
            }
        }
    )
    mon, tue, wed, thu, fri, sat, sun = (ny(2026, 1, d, 10, 0) for d in range(5, 12))
    assert [sched.is_open(x) for x in (mon, tue, wed, thu, fri, sat, sun)] == [
        True, False, True, False, True, True, True,
    ]
    assert sched.is_open(ny(2026, 1, 6, 14, 0))  # Tue first range
    assert not sched.is_open(ny(2026, 1, 6, 15, 30))  # Tue lunch gap
    assert sched.is_open(ny(2026, 1, 8, 17, 59))  # Thu second range


def test_wrapping_day_range() -> None:
    sched = build({"weekly": {"fri-mon": "10:00-11:00"}})
    opened = [sched.is_open(ny(2026, 1, d, 10, 30)) for d in range(5, 12)]
    assert opened == [True, False, False, False, True, True, True]


def test_all_day_range() -> None:
    sched = build({"weekly": {"mon": "00:00-24:00"}})
    assert sched.is_open(ny(2026, 1, 5, 0, 0))
    assert sched.is_open(ny(2026, 1, 5, 23, 59, 59))
    assert not sched.is_open(ny(2026, 1, 6, 0, 0))
    assert not sched.is_open(ny(2026, 1, 4, 23, 59))


def test_overnight_range_belongs_to_start_day() -> None:
    data = {
        "weekly": {"fri": "22:00-06:00", "sun": "22:00-00:00"},
        "holidays": [{"date": "2026-01-10"}, {"date": "2026-01-16"}],
    }
    sched = build(data)
    # Fri 2026-01-09 22:00 -> Sat 06:00, even though Sat 01-10 is a holiday.
    assert not sched.is_open(ny(2026, 1, 9, 21, 59))
    assert sched.is_open(ny(2026, 1, 9, 22, 0))
    assert sched.is_open(ny(2026, 1, 10, 0, 0))
    assert sched.is_open(ny(2026, 1, 10, 5, 59))
    assert not sched.is_open(ny(2026, 1, 10, 6, 0))
    # Fri 01-16 is a holiday: the whole shift, including Saturday morning, goes.
    assert not sched.is_open(ny(2026, 1, 16, 23, 0))
    assert not sched.is_open(ny(2026, 1, 17, 3, 0))
    # "22:00-00:00" ends at midnight.
    assert sched.is_open(ny(2026, 1, 11, 23, 59))
    assert not sched.is_open(ny(2026, 1, 12, 0, 0))
    assert sched.open_intervals(dt.date(2026, 1, 9)) == [
        (ny(2026, 1, 9, 22, 0), ny(2026, 1, 10, 6, 0))
    ]
    assert sched.open_intervals(dt.date(2026, 1, 10)) == []


def test_overlapping_ranges_are_merged() -> None:
    sched = build({"weekly": {"mon": ["08:00-12:00", "11:00-13:00"]}})
    assert sched.open_intervals(dt.date(2026, 1, 5)) == [
        (ny(2026, 1, 5, 8, 0), ny(2026, 1, 5, 13, 0))
    ]


# --------------------------------------------------------------------------
# Holidays, special days, closures
# --------------------------------------------------------------------------


def test_holiday_closed_all_day(office: Schedule) -> None:
    # 2026-12-25 is a Friday, normally 08:00-17:00.
    for hour in (0, 8, 12, 16):
        assert not office.is_open(ny(2026, 12, 25, hour, 30))
    assert office.open_intervals(dt.date(2026, 12, 25)) == []
    assert office.is_open(ny(2026, 12, 18, 12, 0))  # the Friday before is normal


def test_recurring_holiday_in_two_years(office: Schedule) -> None:
    assert not office.is_open(ny(2026, 12, 31, 10, 0))  # Thursday
    assert not office.is_open(ny(2027, 12, 31, 10, 0))  # Friday
    assert office.is_open(ny(2026, 12, 30, 10, 0))
    assert office.is_open(ny(2027, 12, 30, 10, 0))


def test_recurring_holiday_accepts_date_forms() -> None:
    spec = HolidaySpec.model_validate({"date": "7-4"})
    assert spec.date == "07-04" and spec.recurring
    assert HolidaySpec.model_validate({"date": "2026-07-04"}).date == dt.date(2026, 7, 4)
    leap = build({"weekly": {"mon-sun": "08:00-17:00"}, "holidays": [{"date": "02-29"}]})
    assert not leap.is_open(ny(2028, 2, 29, 9, 0))
    assert leap.is_open(ny(2027, 2, 28, 9, 0))
    assert leap.is_open(ny(2027, 3, 1, 9, 0))


def test_special_short_day(office: Schedule) -> None:
    assert office.is_open(ny(2026, 12, 24, 8, 0))
    assert office.is_open(ny(2026, 12, 24, 12, 59))
    assert not office.is_open(ny(2026, 12, 24, 13, 0))
    assert office.next_change(ny(2026, 12, 24, 9, 0)) == ny(2026, 12, 24, 13, 0)


def test_special_day_extra_saturday_hours_and_closed() -> None:
    sched = build(
        {
            "weekly": {"mon-fri": "08:00-17:00"},
            "special_days": [
                {"date": "2026-01-10", "hours": ["08:00-10:00", "14:00-16:00"]},
                {"date": dt.date(2026, 1, 12), "hours": "Closed"},
            ],
        }
    )
    assert sched.is_open(ny(2026, 1, 10, 9, 0))  # Saturday, normally closed
    assert not sched.is_open(ny(2026, 1, 10, 12, 0))
    assert sched.is_open(ny(2026, 1, 10, 15, 0))
    assert not sched.is_open(ny(2026, 1, 12, 9, 0))  # Monday, closed this once
    assert sched.is_open(ny(2026, 1, 13, 9, 0))


def test_closure_spanning_midnight() -> None:
    sched = build(
        {
            "weekly": {"mon-sun": "00:00-24:00"},
            "closures": [{"from": "2026-11-26 12:00", "to": "2026-11-27 08:00"}],
        }
    )
    assert sched.is_open(ny(2026, 11, 26, 11, 59))
    assert not sched.is_open(ny(2026, 11, 26, 12, 0))
    assert not sched.is_open(ny(2026, 11, 26, 23, 59))
    assert not sched.is_open(ny(2026, 11, 27, 0, 30))
    assert not sched.is_open(ny(2026, 11, 27, 7, 59))
    assert sched.is_open(ny(2026, 11, 27, 8, 0))
    assert sched.next_change(ny(2026, 11, 26, 9, 0)) == ny(2026, 11, 26, 12, 0)
    assert sched.next_change(ny(2026, 11, 26, 12, 0)) == ny(2026, 11, 27, 8, 0)
    # Closures are not subtracted from open_intervals (documented).
    assert sched.open_intervals(dt.date(2026, 11, 26)) == [
        (ny(2026, 11, 26, 0, 0), ny(2026, 11, 27, 0, 0))
    ]


def test_closure_beats_special_day_and_datetime_objects() -> None:
    sched = build(
        {
            "weekly": {"mon-fri": "08:00-17:00"},
            "special_days": [{"date": "2026-01-10", "hours": "08:00-12:00"}],
            "closures": [
                {"from": dt.datetime(2026, 1, 10, 9, 0), "to": "2026-01-10 24:00"}
            ],
        }
    )
    assert sched.is_open(ny(2026, 1, 10, 8, 30))
    assert not sched.is_open(ny(2026, 1, 10, 9, 0))
    assert sched.next_change(ny(2026, 1, 10, 8, 30)) == ny(2026, 1, 10, 9, 0)
    assert sched.next_change(ny(2026, 1, 10, 9, 0)) == ny(2026, 1, 12, 8, 0)


def test_closure_model_attribute_names() -> None:
    closure = ClosureSpec.model_validate({"from": "2026-11-26 12:00", "to": "2026-11-27 08:00"})
    assert closure.start == dt.datetime(2026, 11, 26, 12, 0)
    assert closure.end == dt.datetime(2026, 11, 27, 8, 0)
    assert closure.reason is None


# --------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------


def test_instants_in_utc_and_other_zones_winter_vs_summer() -> None:
    sched = build({"timezone": "America/New_York", "weekly": {"mon-fri": "10:00-17:00"}})
    winter = utc(2026, 1, 15, 14, 30)  # 09:30 EST (Thursday)
    summer = utc(2026, 7, 15, 14, 30)  # 10:30 EDT (Wednesday)
    assert not sched.is_open(winter)
    assert sched.is_open(summer)
    # Same instants expressed in Tokyo and Madrid give the same answers.
    for zone in (ZoneInfo("Asia/Tokyo"), MADRID):
        assert not sched.is_open(winter.astimezone(zone))
        assert sched.is_open(summer.astimezone(zone))
    # next_change is returned in the schedule's zone.
    change = sched.next_change(winter)
    assert change == utc(2026, 1, 15, 15, 0)
    assert change is not None and change.tzinfo == NY and change.hour == 10


def test_default_timezone_comes_from_tree() -> None:
    data = {"weekly": {"mon-fri": "09:00-17:00"}}
    madrid = Schedule.compile(ScheduleSpec.model_validate(data), "Europe/Madrid")
    new_york = Schedule.compile(ScheduleSpec.model_validate(data), "America/New_York")
    instant = utc(2026, 1, 15, 12, 0)  # 13:00 Madrid, 07:00 New York
    assert madrid.is_open(instant)
    assert not new_york.is_open(instant)
    own = Schedule.compile(
        ScheduleSpec.model_validate({**data, "timezone": "America/New_York"}), "Europe/Madrid"
    )
    assert own.tz == NY


def test_compile_rejects_unknown_default_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Schedule.compile(ScheduleSpec(), "Mars/Olympus")


def test_naive_datetime_rejected(office: Schedule) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        office.is_open(dt.datetime(2026, 1, 5, 9, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        office.next_change(dt.datetime(2026, 1, 5, 9, 0))


# --------------------------------------------------------------------------
# DST: America/New_York (2026-03-08 spring forward, 2026-11-01 fall back)
# --------------------------------------------------------------------------

DST_NY = build({"timezone": "America/New_York", "weekly": {"sun": "01:00-03:00"}})


def test_spring_forward_gap_new_york() -> None:
    day = dt.date(2026, 3, 8)
    # 01:00 EST = 06:00 UTC; 02:00-03:00 does not exist; 03:00 EDT = 07:00 UTC.
    assert not DST_NY.is_open(utc(2026, 3, 8, 5, 59))
    assert DST_NY.is_open(utc(2026, 3, 8, 6, 0))
    assert DST_NY.is_open(utc(2026, 3, 8, 6, 59, 59))
    assert not DST_NY.is_open(utc(2026, 3, 8, 7, 0))
    ((start, end),) = DST_NY.open_intervals(day)
    assert as_utc(end) - as_utc(start) == dt.timedelta(hours=1)
    assert start.utcoffset() == dt.timedelta(hours=-5)
    assert end.utcoffset() == dt.timedelta(hours=-4) and end.hour == 3
    assert as_utc(DST_NY.next_change(ny(2026, 3, 8, 0, 30))) == utc(2026, 3, 8, 6, 0)
    change = DST_NY.next_change(ny(2026, 3, 8, 1, 30))
    assert as_utc(change) == utc(2026, 3, 8, 7, 0)
    assert change is not None and (change.hour, change.minute) == (3, 0)


def test_boundary_inside_gap_takes_effect_after_gap() -> None:
    sched = build(
        {
            "weekly": {},
            "special_days": [
                {"date": "2026-03-08", "hours": ["02:30-05:00"]},
                {"date": "2026-03-15", "hours": "02:00-02:45"},
            ],
        }
    )
    # Opening at the nonexistent 02:30 happens at 03:00 EDT (07:00 UTC).
    assert not sched.is_open(utc(2026, 3, 8, 6, 59, 59))
    assert sched.is_open(utc(2026, 3, 8, 7, 0))
    opened = sched.next_change(ny(2026, 3, 8, 1, 0))
    assert as_utc(opened) == utc(2026, 3, 8, 7, 0)
    assert opened is not None and opened.hour == 3
    assert [(as_utc(a), as_utc(b)) for a, b in sched.open_intervals(dt.date(2026, 3, 8))] == [
        (utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 9, 0))
    ]
    # A non-gap Sunday with the same wall times behaves normally.
    assert sched.is_open(ny(2026, 3, 15, 2, 30))
    gap_only = build({"special_days": [{"date": "2026-03-08", "hours": "02:00-02:45"}]})
    assert gap_only.open_intervals(dt.date(2026, 3, 8)) == []
    assert gap_only.next_change(ny(2026, 3, 8, 0, 0), horizon_days=30) is None


def test_fall_back_overlap_new_york() -> None:
    # 01:00 EDT = 05:00 UTC, the clock repeats 01:00-02:00, 03:00 EST = 08:00 UTC.
    first = ny(2026, 11, 1, 1, 30, fold=0)
    second = ny(2026, 11, 1, 1, 30, fold=1)
    assert first.utcoffset() != second.utcoffset()
    assert DST_NY.is_open(first)
    assert DST_NY.is_open(second)
    assert DST_NY.is_open(utc(2026, 11, 1, 5, 0))
    assert not DST_NY.is_open(utc(2026, 11, 1, 4, 59))
    assert DST_NY.is_open(utc(2026, 11, 1, 7, 59))
    assert not DST_NY.is_open(utc(2026, 11, 1, 8, 0))
    ((start, end),) = DST_NY.open_intervals(dt.date(2026, 11, 1))
    assert as_utc(end) - as_utc(start) == dt.timedelta(hours=3)
    opens = DST_NY.next_change(ny(2026, 11, 1, 0, 30))
    assert as_utc(opens) == utc(2026, 11, 1, 5, 0)
    assert opens is not None and opens.utcoffset() == dt.timedelta(hours=-4)
    assert as_utc(DST_NY.next_change(first)) == utc(2026, 11, 1, 8, 0)
    assert as_utc(DST_NY.next_change(second)) == utc(2026, 11, 1, 8, 0)


def test_boundary_inside_repeated_hour_uses_first_occurrence() -> None:
    sched = build(
        {
            "weekly": {"mon-fri": "08:00-17:00"},
            "special_days": [{"date": "2026-11-01", "hours": "00:00-01:30"}],
        }
    )
    assert sched.is_open(ny(2026, 11, 1, 1, 15, fold=0))
    assert not sched.is_open(ny(2026, 11, 1, 1, 30, fold=0))
    # The second 01:15 (EST) is after the closing took effect: still closed.
    assert not sched.is_open(ny(2026, 11, 1, 1, 15, fold=1))
    closes = sched.next_change(ny(2026, 11, 1, 0, 10))
    assert as_utc(closes) == utc(2026, 11, 1, 5, 30)
    assert sched.next_change(ny(2026, 11, 1, 1, 15, fold=1)) == ny(2026, 11, 2, 8, 0)


# --------------------------------------------------------------------------
# DST: Europe/Madrid and Australia/Sydney
# --------------------------------------------------------------------------

MADRID_CLINIC = build(
    {
        "timezone": "Europe/Madrid",
        "weekly": {"mon-fri": ["09:00-14:00", "16:00-20:00"], "sat": "10:00-13:00"},
        "special_days": [
            {"date": "2026-03-29", "hours": "00:00-24:00", "name": "Jornada de vacunación"},
            {"date": "2026-10-25", "hours": "00:00-24:00", "name": "Jornada de vacunación"},
        ],
        "holidays": [{"date": "01-06", "name": "Día de Reyes"}],
    },
    default_tz="UTC",
)


def test_madrid_offsets_before_and_after_spring_change() -> None:
    # Friday 2026-03-27 is CET (+1): 09:00 local = 08:00 UTC.
    assert not MADRID_CLINIC.is_open(utc(2026, 3, 27, 7, 30))
    assert MADRID_CLINIC.is_open(utc(2026, 3, 27, 8, 0))
    # Monday 2026-03-30 is CEST (+2): 07:30 UTC is 09:30 local.
    assert MADRID_CLINIC.is_open(utc(2026, 3, 30, 7, 30))
    assert not MADRID_CLINIC.is_open(utc(2026, 3, 30, 6, 59))


def test_madrid_day_lengths_on_change_days() -> None:
    ((s1, e1),) = MADRID_CLINIC.open_intervals(dt.date(2026, 3, 29))
    assert as_utc(e1) - as_utc(s1) == dt.timedelta(hours=23)
    ((s2, e2),) = MADRID_CLINIC.open_intervals(dt.date(2026, 10, 25))
    assert as_utc(e2) - as_utc(s2) == dt.timedelta(hours=25)
    # Open through the repeated 02:00-03:00 hour in both folds.
    for fold in (0, 1):
        assert MADRID_CLINIC.is_open(dt.datetime(2026, 10, 25, 2, 30, tzinfo=MADRID, fold=fold))
    assert as_utc(
        MADRID_CLINIC.next_change(dt.datetime(2026, 10, 25, 2, 30, tzinfo=MADRID, fold=1))
    ) == utc(2026, 10, 25, 23, 0)


def test_madrid_split_hours_next_change_and_recurring_holiday() -> None:
    at = dt.datetime(2026, 10, 26, 13, 0, tzinfo=MADRID)  # Monday, CET after change
    lunch = MADRID_CLINIC.next_change(at)
    assert lunch == dt.datetime(2026, 10, 26, 14, 0, tzinfo=MADRID)
    assert lunch is not None and lunch.utcoffset() == dt.timedelta(hours=1)
    assert MADRID_CLINIC.next_change(lunch) == dt.datetime(2026, 10, 26, 16, 0, tzinfo=MADRID)
    assert not MADRID_CLINIC.is_open(dt.datetime(2027, 1, 6, 10, 0, tzinfo=MADRID))  # Reyes
    assert MADRID_CLINIC.is_open(dt.datetime(2027, 1, 7, 10, 0, tzinfo=MADRID))


SYDNEY_CLINIC = build(
    {"timezone": "Australia/Sydney", "weekly": {"mon-fri": "08:00-18:00", "sun": "00:00-24:00"}}
)


def test_sydney_southern_hemisphere_summer_and_winter() -> None:
    # January is summer (AEDT, +11): 21:30 UTC Wed = 08:30 Thu local.
    assert SYDNEY_CLINIC.is_open(utc(2026, 1, 14, 21, 30))
    # July is winter (AEST, +10): 21:30 UTC Tue = 07:30 Wed local.
    assert not SYDNEY_CLINIC.is_open(utc(2026, 7, 14, 21, 30))
    assert SYDNEY_CLINIC.is_open(utc(2026, 7, 14, 22, 0))


def test_sydney_change_days_and_weekend() -> None:
    # DST ends Sunday 2026-04-05 (25 h day) and starts Sunday 2026-10-04 (23 h).
    ((s1, e1),) = SYDNEY_CLINIC.open_intervals(dt.date(2026, 4, 5))
    assert as_utc(e1) - as_utc(s1) == dt.timedelta(hours=25)
    ((s2, e2),) = SYDNEY_CLINIC.open_intervals(dt.date(2026, 10, 4))
    assert as_utc(e2) - as_utc(s2) == dt.timedelta(hours=23)
    # Friday 18:00 -> Sunday 00:00 -> Monday 08:00, local times on both sides of DST.
    friday = dt.datetime(2026, 10, 2, 17, 0, tzinfo=SYDNEY)
    closes = SYDNEY_CLINIC.next_change(friday)
    assert closes == dt.datetime(2026, 10, 2, 18, 0, tzinfo=SYDNEY)
    opens = SYDNEY_CLINIC.next_change(closes)  # type: ignore[arg-type]
    assert opens == dt.datetime(2026, 10, 4, 0, 0, tzinfo=SYDNEY)
    # Sunday 24:00 and Monday 08:00 are separate edges: it closes at midnight.
    closes_again = SYDNEY_CLINIC.next_change(opens)  # type: ignore[arg-type]
    assert closes_again == dt.datetime(2026, 10, 5, 0, 0, tzinfo=SYDNEY)
    assert closes_again is not None and closes_again.utcoffset() == dt.timedelta(hours=11)


# --------------------------------------------------------------------------
# next_change across weekends, holidays, adjoining ranges, horizon
# --------------------------------------------------------------------------


def test_next_change_across_weekend(office: Schedule) -> None:
    assert office.next_change(ny(2026, 1, 9, 16, 0)) == ny(2026, 1, 9, 17, 0)
    assert office.next_change(ny(2026, 1, 9, 17, 0)) == ny(2026, 1, 10, 9, 0)
    assert office.next_change(ny(2026, 1, 10, 12, 0)) == ny(2026, 1, 12, 8, 0)
    # Strictly after: asking exactly at an opening gives the closing.
    assert office.next_change(ny(2026, 1, 12, 8, 0)) == ny(2026, 1, 12, 17, 0)


def test_next_change_across_holiday(office: Schedule) -> None:
    # Christmas Eve closes 13:00; Christmas Day (Fri) is a holiday; Sat opens 09:00.
    assert office.next_change(ny(2026, 12, 24, 13, 0)) == ny(2026, 12, 26, 9, 0)
    # New Year's Eve (Thu) is a recurring holiday: Wed close -> Fri 2027-01-01 open.
    assert office.next_change(ny(2026, 12, 30, 17, 0)) == ny(2027, 1, 1, 8, 0)
    labor_day = build(
        {"weekly": {"mon-fri": "08:00-17:00"}, "holidays": [{"date": "2026-09-07"}]}
    )
    assert labor_day.next_change(ny(2026, 9, 4, 17, 0)) == ny(2026, 9, 8, 8, 0)


def test_adjoining_ranges_do_not_create_a_change() -> None:
    sched = build({"weekly": {"fri": "22:00-06:00", "sat": "06:00-12:00"}})
    assert sched.next_change(ny(2026, 1, 9, 23, 0)) == ny(2026, 1, 10, 12, 0)
    assert sched.next_change(ny(2026, 1, 9, 12, 0)) == ny(2026, 1, 9, 22, 0)


def test_next_change_horizon() -> None:
    never = build({})
    assert never.next_change(utc(2026, 1, 1)) is None
    assert not never.is_open(utc(2026, 6, 1))
    always = build({"weekly": {"mon-sun": "00:00-24:00"}})
    assert always.next_change(utc(2026, 1, 1)) is None
    assert always.is_open(utc(2026, 6, 1))
    sched = build({"weekly": {"mon": "08:00-09:00"}})
    at = ny(2026, 1, 6, 12, 0)  # Tuesday; next opening is 6 days later
    assert sched.next_change(at, horizon_days=5) is None
    assert sched.next_change(at, horizon_days=7) == ny(2026, 1, 12, 8, 0)
    with pytest.raises(ValueError):
        sched.next_change(at, horizon_days=-1)


def test_next_change_matches_minute_scan_over_dst_weeks() -> None:
    """Independent check: scan every minute and compare with next_change."""
    sched = build(
        {
            "weekly": {"mon-fri": ["08:00-12:00", "13:00-17:00"], "sat": "22:00-02:30", "sun": "01:30-03:00"},
            "closures": [{"from": "2026-11-03 10:00", "to": "2026-11-03 14:00"}],
        }
    )
    for start in (utc(2026, 3, 6), utc(2026, 10, 30)):
        flips: list[dt.datetime] = []
        state = sched.is_open(start)
        minute = dt.timedelta(minutes=1)
        t = start
        for _ in range(7 * 24 * 60):
            t += minute
            now = sched.is_open(t)
            if now != state:
                flips.append(t)
                state = now
        chained: list[dt.datetime] = []
        cursor: dt.datetime | None = start
        while True:
            assert cursor is not None
            cursor = sched.next_change(cursor, horizon_days=10)
            if cursor is None or cursor > t:
                break
            chained.append(cursor)
        assert chained == flips
        assert len(flips) > 10


# --------------------------------------------------------------------------
# describe, immutability, YAML integration
# --------------------------------------------------------------------------


def test_describe(office: Schedule) -> None:
    assert office.describe() == (
        "office: Mon-Fri 08:00-17:00, Sat 09:00-12:00 (America/New_York); "
        "2 holidays, 1 special day, 1 closure"
    )
    split = build({"weekly": {"mon": ["13:00-17:00", "08:00-12:00"], "fri": "22:00-06:00"}}, "Europe/Madrid")
    assert split.describe() == "Mon 08:00-12:00 & 13:00-17:00, Fri 22:00-06:00 (Europe/Madrid)"
    assert build({}).describe() == "no weekly hours (America/New_York)"


def test_schedule_is_immutable(office: Schedule) -> None:
    with pytest.raises(AttributeError):
        office._tz = MADRID  # type: ignore[misc]
    with pytest.raises(TypeError):
        Schedule()


def test_loads_from_yaml_text() -> None:
    yaml = pytest.importorskip("yaml")
    text = """
timezone: America/New_York
weekly:
  mon-fri: "08:00-17:00"
  sat: ["09:00-12:00"]
  sun: closed
holidays:
  - date: 2026-12-25
    name: Christmas Day
  - date: "12-31"
    name: New Year's Eve
special_days:
  - date: 2026-12-24
    hours: "08:00-13:00"
    name: Christmas Eve (short day)
closures:
  - from: "2026-11-26 12:00"
    to: "2026-11-27 08:00"
    reason: Staff training
"""
    sched = Schedule.compile(ScheduleSpec.model_validate(yaml.safe_load(text)), "UTC")
    assert sched.tz == NY
    assert not sched.is_open(ny(2026, 12, 25, 10, 0))
    assert not sched.is_open(ny(2026, 11, 26, 13, 0))
    with pytest.raises(ValidationError, match="quoted"):
        ScheduleSpec.model_validate(yaml.safe_load("weekly:\n  mon: 8:00\n"))


# --------------------------------------------------------------------------
# Validation errors: location and a message that says what to write
# --------------------------------------------------------------------------


def test_error_bad_day_name() -> None:
    loc, msg = error_of({"weekly": {"mnd": "08:00-17:00"}})
    assert loc[:2] == ("weekly", "mnd")
    assert "unknown day 'mnd'" in msg
    assert "use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri" in msg
    loc, msg = error_of({"weekly": {"mon-fry": "08:00-17:00"}})
    assert "unknown day 'fry'" in msg


def test_error_bad_time() -> None:
    loc, msg = error_of({"weekly": {"mon-fri": "08:00-25:00"}})
    assert loc == ("weekly", "mon-fri")
    assert "time '25:00'" in msg and "'08:00-25:00'" in msg and "not a valid HH:MM" in msg
    loc, msg = error_of({"weekly": {"mon": "8am-5pm"}})
    assert "not a valid HH:MM" in msg and '"HH:MM"' in msg
    loc, msg = error_of({"weekly": {"mon": "24:00-08:00"}})
    assert "24:00" in msg and "only end" in msg
    loc, msg = error_of({"weekly": {"mon": "08:00"}})
    assert '"HH:MM-HH:MM"' in msg
    loc, msg = error_of({"weekly": {"mon": "08:00-08:00"}})
    assert "00:00-24:00" in msg


def test_error_unquoted_sexagesimal_time() -> None:
    loc, msg = error_of({"weekly": {"mon": 480}})
    assert loc == ("weekly", "mon")
    assert "480" in msg and "08:00" in msg
    assert 'write times as quoted "HH:MM" strings' in msg
    loc, msg = error_of({"weekly": {"mon": ["09:00-12:00", 780]}})
    assert 'write times as quoted "HH:MM" strings' in msg and "13:00" in msg


def test_error_yaml_boolean_and_empty_hours() -> None:
    _, msg = error_of({"weekly": {"sun": False}})
    assert "write closed" in msg
    _, msg = error_of({"weekly": {"sun": None}})
    assert "write closed" in msg


def test_error_unknown_time_zone() -> None:
    loc, msg = error_of({"timezone": "America/NewYork"})
    assert loc == ("timezone",)
    assert "unknown time zone 'America/NewYork'" in msg
    assert "America/New_York" in msg  # suggestion / example of what to write


def test_error_duplicate_day_coverage() -> None:
    loc, msg = error_of({"weekly": {"mon-fri": "08:00-17:00", "wed": "09:00-12:00"}})
    assert loc == ("weekly",)
    assert "'wed'" in msg and "'mon-fri'" in msg and "only one key" in msg
    _, msg = error_of({"weekly": {"mon,tue,mon": "08:00-17:00"}})
    assert "'mon'" in msg and "only once" in msg


def test_error_closure_end_before_start() -> None:
    loc, msg = error_of(
        {"closures": [{"from": "2026-11-27 08:00", "to": "2026-11-26 12:00", "reason": "Storm"}]}
    )
    assert loc == ("closures", 0)
    assert "Storm" in msg and "'to' must be later than 'from'" in msg


def test_error_closure_time_format() -> None:
    loc, msg = error_of({"closures": [{"from": dt.date(2026, 11, 26), "to": "2026-11-27 08:00"}]})
    assert loc == ("closures", 0, "from")
    assert '"2026-11-26 00:00"' in msg
    _, msg = error_of({"closures": [{"from": "26/11/2026 12:00", "to": "2026-11-27 08:00"}]})
    assert "'26/11/2026 12:00'" in msg and 'like "2026-11-26 12:00"' in msg


def test_error_extra_unknown_field() -> None:
    _, msg = error_of({"weekly": {}, "holiday": []})
    assert "unknown field 'holiday'" in msg
    assert "did you mean 'holidays'" in msg
    assert "timezone, weekly, holidays, special_days, closures" in msg
    loc, msg = error_of({"closures": [{"from": "2026-11-26 12:00", "until": "2026-11-27 08:00"}]})
    assert loc == ("closures", 0)
    assert "unknown field 'until'" in msg and "from, to, reason" in msg


def test_error_bad_holiday_and_special_dates() -> None:
    loc, msg = error_of({"holidays": [{"date": "02-30"}]})
    assert loc == ("holidays", 0, "date") and "does not exist" in msg
    _, msg = error_of({"holidays": [{"date": "Dec 25"}]})
    assert "YYYY-MM-DD" in msg and '"MM-DD"' in msg
    _, msg = error_of({"special_days": [{"date": "12-24", "hours": "08:00-13:00"}]})
    assert "full date YYYY-MM-DD" in msg
    _, msg = error_of({"holidays": [{"date": "12-25"}, {"date": "12-25"}]})
    assert "listed twice" in msg


def test_error_special_day_on_holiday() -> None:
    loc, msg = error_of(
        {
            "holidays": [{"date": "12-25", "name": "Christmas Day"}],
            "special_days": [{"date": "2026-12-25", "hours": "08:00-12:00"}],
        }
    )
    assert "Christmas Day" in msg and "remove the holiday or the special day" in msg


# --------------------------------------------------------------------------
# Property test: is_open is constant up to next_change and flips there
# --------------------------------------------------------------------------

PROPERTY_SCHEDULES = [
    build(
        {
            "weekly": {
                "mon-thu": ["08:00-12:00", "13:00-17:00"],
                "fri": "22:00-06:00",
                "sat": "05:00-09:00",
                "sun": "01:30-02:30",
            },
            "holidays": [{"date": "07-04"}, {"date": "2026-09-07"}],
            "special_days": [
                {"date": "2026-11-01", "hours": ["00:00-01:30", "01:45-03:00"]},
                {"date": "2026-03-09", "hours": "closed"},
            ],
            "closures": [
                {"from": "2026-03-08 02:15", "to": "2026-03-08 05:00"},
                {"from": "2026-06-10 11:00", "to": "2026-06-12 09:30"},
            ],
        }
    ),
    MADRID_CLINIC,
    SYDNEY_CLINIC,
]

YEAR_START = int(utc(2026, 1, 1).timestamp())
YEAR_END = int(utc(2027, 1, 1).timestamp())


@settings(max_examples=300, deadline=None, database=None)
@given(
    index=st.integers(min_value=0, max_value=len(PROPERTY_SCHEDULES) - 1),
    seconds=st.integers(min_value=YEAR_START, max_value=YEAR_END),
    fractions=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=5),
)
def test_is_open_constant_until_next_change(index: int, seconds: int, fractions: list[float]) -> None:
    sched = PROPERTY_SCHEDULES[index]
    t = dt.datetime.fromtimestamp(seconds, tz=UTC)
    state = sched.is_open(t)
    change = sched.next_change(t, horizon_days=14)
    assert change is not None  # every sample schedule changes at least weekly
    assert change > t
    assert change.tzinfo == sched.tz
    span = change - t
    for fraction in fractions:
        # timedelta * float rounds to the microsecond: keep samples before change.
        offset = min(span * fraction, span - dt.timedelta(microseconds=1))
        assert sched.is_open(t + offset) == state
    assert sched.is_open(change - dt.timedelta(microseconds=1)) == state
    assert sched.is_open(change) != state
