"""Whether a pool may start attempts at the portal now: the portal's maintenance hours, the
pool's rate limit and the waits the portal asked for (Retry-After). Pure: what the pool knows
in, a `Gate` out; admission starts no more than it allows, and the pool's `PortalAvailable`
condition says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from permisos.resources import PortalCircuit, PortalHold, RunnerPoolSpec
from permisos_operator.circuit import CHANGED, CLOSED, allowed, probe_due

MINUTE = timedelta(minutes=1)
# Results whose Retry-After holds the whole pool, and the reason the pool then shows.
HOLD_REASONS = {"RateLimited": "RateLimited", "PortalMaintenance": "MaintenanceWindow"}


@dataclass(frozen=True)
class Gate:
    reason: str  # PortalHealthy when open
    message: str
    allowed: int | None = None  # attempts that may start now; None: the portal sets no bound
    until: datetime | None = None  # when it is worth looking again

    @property
    def open(self) -> bool:
        return self.allowed is None or self.allowed > 0


OPEN = Gate("PortalHealthy", "Attempts may start at the portal.")


def gate(
    spec: RunnerPoolSpec,
    started: Sequence[datetime],
    hold: PortalHold | None,
    now: datetime,
    breaker: PortalCircuit = CLOSED,
    running: int = 0,
) -> Gate:
    """`started`: when the pool's attempts of the last minute started (any order); `breaker`
    the pool's circuit and `running` its attempts under way."""
    if breaker.state == "Open":
        if breaker.probe is not None:
            return Gate("Probing", f"Probe {breaker.probe} is checking the portal.", allowed=0)
        ruled = portal_rules(spec, started, hold, now)
        if ruled.reason == "MaintenanceWindow" and breaker.reason != CHANGED:
            return ruled  # says when the portal is back; no probe runs before (probe_may_start)
        reason = breaker.reason if breaker.reason == CHANGED else "PortalUnavailable"
        when = _clock(breaker.next_probe_at) if breaker.next_probe_at else "now"
        why = (
            "the portal's pages changed"
            if reason == CHANGED
            else f"{breaker.consecutive_failures} attempts in a row found the portal unavailable"
        )
        return Gate(
            reason, f"Circuit open: {why}; a probe runs at {when}.", 0, breaker.next_probe_at
        )
    decided = portal_rules(spec, started, hold, now)
    bound = allowed(breaker, running)
    if bound is None or not decided.open:
        return decided
    waves = Gate(
        "PortalRecovering",
        f"The probe passed: up to {breaker.wave} attempts at once while the portal proves itself.",
        allowed=bound,
    )
    return waves if decided.allowed is None or bound < decided.allowed else decided


def portal_rules(
    spec: RunnerPoolSpec, started: Sequence[datetime], hold: PortalHold | None, now: datetime
) -> Gate:
    if hold is not None and hold.until > now:
        return Gate(
            hold.reason,
            f"The portal asked to wait until {_clock(hold.until)}.",
            allowed=0,
            until=hold.until,
        )
    portal = spec.portal
    if portal.maintenance_windows or portal.closed_dates:
        try:
            schedule = portal.schedule()
        except ValueError as error:  # an unknown zone: no window can be placed, none is kept
            return Gate("InvalidTimeZone", f"Maintenance windows ignored: {error}.")
        deadline = timedelta(seconds=spec.active_deadline_seconds)
        reopens = schedule.allows(now, deadline)
        if reopens is not None:
            inside = schedule.closed_until(now) is not None
            why = "in maintenance" if inside else "going into maintenance before an attempt's end"
            return Gate(
                "MaintenanceWindow",
                f"The portal is {why}; attempts start again at {_clock(reopens)}.",
                allowed=0,
                until=reopens,
            )
    if portal.rate_limit is not None:
        limit = portal.rate_limit.attempts_per_minute
        recent = sorted(t for t in started if t > now - MINUTE)
        if len(recent) >= limit:
            frees = recent[len(recent) - limit] + MINUTE
            return Gate(
                "RateLimited",
                f"{limit} attempts started in the last minute; the next at {_clock(frees)}.",
                allowed=0,
                until=frees,
            )
        return Gate(OPEN.reason, OPEN.message, allowed=limit - len(recent))
    return OPEN


def probe_may_start(
    spec: RunnerPoolSpec,
    started: Sequence[datetime],
    hold: PortalHold | None,
    breaker: PortalCircuit,
    now: datetime,
) -> bool:
    """A due probe waits, as an attempt would, for a maintenance window, a wait the portal asked
    for or the rate limit: it would only meet them, fail, and lengthen the cool-down."""
    return probe_due(breaker, now) and portal_rules(spec, started, hold, now).open


def hold_from(reason: str, retry_after_seconds: int | None, now: datetime) -> PortalHold | None:
    """The wait an attempt's result asks of the whole pool, if any."""
    shown = HOLD_REASONS.get(reason)
    if shown is None or not retry_after_seconds:
        return None
    return PortalHold(until=now + timedelta(seconds=retry_after_seconds), reason=shown)


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
