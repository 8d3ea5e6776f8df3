"""The portal's maintenance hours as the RunnerPool and the simulator both read them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from permisos.maintenance import Schedule, WeeklyWindow

MX = ZoneInfo("America/Mexico_City")  # UTC-6 all year since 2022


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=MX).astimezone(UTC)


NIGHTLY = WeeklyWindow(days=["Mon", "Tue", "Wed", "Thu", "Fri"], start="02:00", end="04:00")


def test_inside_a_weekday_window_the_portal_is_closed_until_it_ends() -> None:
    schedule = Schedule(windows=[NIGHTLY])
    tuesday_3am = local(2026, 12, 8, 3, 0)
    assert schedule.closed_until(tuesday_3am) == local(2026, 12, 8, 4, 0)
    assert schedule.closed_until(local(2026, 12, 8, 4, 0)) is None  # the end is open again
    assert schedule.closed_until(local(2026, 12, 12, 3, 0)) is None  # Saturday: no window


def test_a_window_through_midnight_belongs_to_the_day_it_starts() -> None:
    schedule = Schedule(windows=[WeeklyWindow(days=["Sat"], start="23:00", end="01:00")])
    assert schedule.closed_until(local(2026, 12, 13, 0, 30)) == local(2026, 12, 13, 1, 0)
    assert schedule.closed_until(local(2026, 12, 14, 0, 30)) is None  # Monday: Sunday has none


def test_a_closed_date_is_the_whole_local_day_and_touching_closures_merge() -> None:
    schedule = Schedule(
        windows=[WeeklyWindow(start="00:00", end="02:00")], closed_dates=[date(2026, 12, 24)]
    )
    # Christmas Eve all day, then the nightly window right after midnight: one closure.
    assert schedule.closed_until(local(2026, 12, 24, 12, 0)) == local(2026, 12, 25, 2, 0)
    day_before = local(2026, 12, 23, 12, 0)
    assert schedule.closures(day_before, day_before + timedelta(days=1))[0][0] == local(
        2026, 12, 24, 0, 0
    )


def test_an_attempt_starts_only_if_it_can_finish_before_the_next_closure() -> None:
    schedule = Schedule(windows=[NIGHTLY])
    tuesday_1_30 = local(2026, 12, 8, 1, 30)
    assert schedule.allows(tuesday_1_30, timedelta(minutes=20)) is None
    # 45 minutes would run into the 02:00 window: ask again when it is over.
    assert schedule.allows(tuesday_1_30, timedelta(minutes=45)) == local(2026, 12, 8, 4, 0)
    assert schedule.allows(local(2026, 12, 8, 3, 0), timedelta(minutes=1)) == local(
        2026, 12, 8, 4, 0
    )


def test_no_windows_means_always_open() -> None:
    schedule = Schedule()
    now = datetime.now(UTC)
    assert schedule.closed_until(now) is None
    assert schedule.closures(now, now + timedelta(days=8)) == []
    assert schedule.allows(now, timedelta(hours=2)) is None


def test_other_time_zones_and_bad_values_are_refused_clearly() -> None:
    madrid = Schedule(time_zone="Europe/Madrid", windows=[WeeklyWindow(start="02:00", end="03:00")])
    winter = datetime(2026, 12, 8, 2, 30, tzinfo=ZoneInfo("Europe/Madrid"))
    assert madrid.closed_until(winter) == datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Schedule(time_zone="Mars/Olympus")
    with pytest.raises(ValidationError, match="pattern"):
        WeeklyWindow(start="25:00", end="03:00")
    with pytest.raises(ValidationError):
        WeeklyWindow(days=["Lunes"], start="01:00", end="03:00")
