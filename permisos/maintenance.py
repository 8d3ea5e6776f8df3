"""The portal's maintenance hours: weekly windows and whole closed dates in one time zone.

One definition for the RunnerPool (`spec.portal`, where the operator reads when no attempt may
start) and the portal simulator (which serves its maintenance page inside them). Times are the
portal's local wall-clock times; every answer is an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
DAYS: tuple[Day, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DEFAULT_TIME_ZONE = "America/Mexico_City"
# How far ahead a closure is looked for: past any attempt's deadline, short of a loop over years.
HORIZON = timedelta(days=8)

Interval = tuple[datetime, datetime]


class WeeklyWindow(BaseModel):
    """Every week on `days`, from `start` to `end` (portal time); an `end` not after `start`
    runs through midnight into the next day."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS),
        min_length=1,
        max_length=7,
        description="Days the window starts on (Mon … Sun); every day when left out.",
    )
    start: str = Field(pattern=CLOCK, description="Start, HH:MM in the portal's time zone.")
    end: str = Field(
        pattern=CLOCK,
        description="End, HH:MM; not after start means it ends the next day.",
    )

    def starting_on(self, day: date, zone: ZoneInfo) -> Interval | None:
        """The window that starts on `day`, if it does, in UTC."""
        if DAYS[day.weekday()] not in self.days:
            return None
        start, end = _clock(self.start), _clock(self.end)
        begins = datetime.combine(day, start, zone)
        ends = datetime.combine(day + timedelta(days=1) if end <= start else day, end, zone)
        return begins.astimezone(UTC), ends.astimezone(UTC)


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone `name`; a ValueError naming it when the system does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error


class Schedule(BaseModel):
    """A portal's closures: weekly windows and closed dates, in `time_zone`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    time_zone: str = DEFAULT_TIME_ZONE
    windows: list[WeeklyWindow] = Field(default_factory=list)
    closed_dates: list[date] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        zone_of(name)
        return name

    def closures(self, since: datetime, until: datetime) -> list[Interval]:
        """The closures that overlap [since, until), merged where they touch, in order."""
        zone = zone_of(self.time_zone)
        first = since.astimezone(zone).date() - timedelta(days=1)  # a window from the day before
        last = until.astimezone(zone).date()
        found: list[Interval] = []
        day = first
        while day <= last:
            found += [w for w in (x.starting_on(day, zone) for x in self.windows) if w]
            day += timedelta(days=1)
        for closed in self.closed_dates:
            if first <= closed <= last:
                begins = datetime.combine(closed, time(0), zone)
                ends = datetime.combine(closed + timedelta(days=1), time(0), zone)
                found.append((begins.astimezone(UTC), ends.astimezone(UTC)))
        return [i for i in _merged(found) if i[1] > since and i[0] < until]

    def closed_until(self, now: datetime) -> datetime | None:
        """When the closure `now` falls in ends; None when the portal is open."""
        for begins, ends in self.closures(now, now + HORIZON):
            if begins <= now < ends:
                return ends
        return None

    def allows(self, now: datetime, lasting: timedelta) -> datetime | None:
        """None when something `lasting` that long may start at `now`: the portal is open and
        stays open until it ends. Otherwise, the earliest time worth asking again: the end of
        the closure that is on, or of the one that would interrupt it."""
        for begins, ends in self.closures(now, now + lasting + HORIZON):
            if begins < now + lasting and ends > now:
                return ends
        return None


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for begins, ends in sorted(intervals):
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((begins, ends))
    return merged
