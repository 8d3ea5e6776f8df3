"""The portal's gate on a pool's admissions, decided from the pool's spec, its recent starts and
the waits the portal asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from permisos.resources import PortalCircuit, PortalHold, RunnerPoolSpec
from permisos_operator.portal_gate import gate, hold_from, probe_may_start

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # 03:00 in Mexico City, a Tuesday


def pool(**portal: object) -> RunnerPoolSpec:
    return RunnerPoolSpec.model_validate({"replicas": 4, "portal": portal})


def test_no_settings_no_gate() -> None:
    decided = gate(pool(), [NOW] * 100, None, NOW)
    assert decided.open and decided.allowed is None and decided.reason == "PortalHealthy"


def test_no_attempt_starts_inside_a_window_nor_runs_into_one() -> None:
    nightly = pool(maintenanceWindows=[{"start": "02:00", "end": "04:00"}])
    inside = gate(nightly, [], None, NOW)
    assert (inside.allowed, inside.reason) == (0, "MaintenanceWindow")
    assert inside.until == datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert "in maintenance" in inside.message and "2026-12-08T10:00:00Z" in inside.message
    # 01:55 local: the default 600 s deadline would carry an attempt into the window.
    before = gate(nightly, [], None, datetime(2026, 12, 8, 7, 55, tzinfo=UTC))
    assert before.reason == "MaintenanceWindow" and "before an attempt's end" in before.message
    # A 4-minute deadline fits before it.
    short = RunnerPoolSpec.model_validate(
        {
            "activeDeadlineSeconds": 240,
            "portal": {"maintenanceWindows": [{"start": "02:00", "end": "04:00"}]},
        }
    )
    assert gate(short, [], None, datetime(2026, 12, 8, 7, 55, tzinfo=UTC)).open


def test_closed_dates_in_the_pools_time_zone() -> None:
    holiday = pool(closedDates=["2026-12-08"], timeZone="America/Mexico_City")
    assert gate(holiday, [], None, NOW).reason == "MaintenanceWindow"
    assert gate(holiday, [], None, datetime(2026, 12, 9, 7, 0, tzinfo=UTC)).open  # 01:00 on 9th


def test_an_unknown_time_zone_ignores_the_windows_and_says_so() -> None:
    lost = pool(timeZone="Mars/Olympus", maintenanceWindows=[{"start": "00:00", "end": "23:59"}])
    decided = gate(lost, [], None, NOW)
    assert decided.open and decided.reason == "InvalidTimeZone"
    assert "Mars/Olympus" in decided.message


def test_the_rate_limit_counts_the_last_sliding_minute() -> None:
    limited = pool(rateLimit={"attemptsPerMinute": 3})
    assert gate(limited, [], None, NOW).allowed == 3
    starts = [NOW - timedelta(seconds=s) for s in (70, 50, 20)]  # one is older than a minute
    assert gate(limited, starts, None, NOW).allowed == 1
    full = gate(limited, [*starts, NOW - timedelta(seconds=5)], None, NOW)
    assert (full.allowed, full.reason) == (0, "RateLimited")
    assert full.until == NOW + timedelta(seconds=10)  # when the start of 50 s ago leaves


def test_a_wait_the_portal_asked_for_holds_the_pool() -> None:
    hold = hold_from("RateLimited", 30, NOW)
    assert hold == PortalHold(until=NOW + timedelta(seconds=30), reason="RateLimited")
    held = gate(pool(), [], hold, NOW + timedelta(seconds=10))
    assert (held.allowed, held.reason, held.until) == (0, "RateLimited", hold.until)
    assert gate(pool(), [], hold, NOW + timedelta(seconds=30)).open
    maintenance = hold_from("PortalMaintenance", 60, NOW)
    assert maintenance is not None and maintenance.reason == "MaintenanceWindow"
    assert hold_from("PortalUnavailable", 60, NOW) is None
    assert hold_from("RateLimited", None, NOW) is None


def test_an_open_circuits_probe_waits_for_the_portals_own_rules() -> None:
    """A probe inside a maintenance window or a wait the portal asked for would only meet them,
    fail, and lengthen the cool-down; the pool says why it waits in the portal's terms."""
    due = PortalCircuit(
        state="Open", reason="PortalUnavailable", consecutive_failures=3, next_probe_at=NOW
    )
    assert probe_may_start(pool(), [], None, due, NOW)
    nightly = pool(maintenanceWindows=[{"start": "02:00", "end": "04:00"}])  # NOW is 03:00
    assert not probe_may_start(nightly, [], None, due, NOW)
    inside = gate(nightly, [], None, NOW, due)
    assert (inside.allowed, inside.reason) == (0, "MaintenanceWindow")
    assert inside.until == datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # 04:00 local
    held = hold_from("PortalMaintenance", 120, NOW)
    assert not probe_may_start(pool(), [], held, due, NOW + timedelta(seconds=60))
    assert probe_may_start(pool(), [], held, due, NOW + timedelta(seconds=120))
    limited = pool(rateLimit={"attemptsPerMinute": 1})
    assert not probe_may_start(limited, [NOW - timedelta(seconds=30)], None, due, NOW)
    # Not due yet, or one already running: no probe whatever the portal's rules.
    early = due.model_copy(update={"next_probe_at": NOW + timedelta(seconds=5)})
    assert not probe_may_start(pool(), [], None, early, NOW)
    assert not probe_may_start(pool(), [], None, due.model_copy(update={"probe": "p"}), NOW)
    # A changed portal is what an engineer must know, maintenance or not.
    changed = due.model_copy(update={"reason": "PortalChanged"})
    assert gate(nightly, [], None, NOW, changed).reason == "PortalChanged"
