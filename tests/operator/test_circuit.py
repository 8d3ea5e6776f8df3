"""The circuit breaker's transitions, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from permisos.resources import CircuitBreaker, PortalCircuit
from permisos_operator.circuit import (
    CLOSED,
    after_attempt,
    after_probe,
    allowed,
    cool_down,
    probe_due,
    probing,
)

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
BREAKER = CircuitBreaker(failure_threshold=3, cool_down_seconds=10, max_cool_down_seconds=35)


def fail(circuit: PortalCircuit, reason: str = "PortalUnavailable") -> PortalCircuit:
    return after_attempt(circuit, BREAKER, 4, "retryable", reason, NOW)


def test_consecutive_unavailable_failures_open_it_and_a_success_resets_the_count() -> None:
    two = fail(fail(CLOSED))
    assert (two.state, two.consecutive_failures) == ("Closed", 2)
    assert (
        after_attempt(two, BREAKER, 4, "succeeded", "PermitIssued", NOW).consecutive_failures == 0
    )
    # The portal judging the data is the portal working too.
    assert (
        after_attempt(two, BREAKER, 4, "permanent", "PortalRejected", NOW).consecutive_failures == 0
    )
    # Trouble that is not the portal's changes nothing.
    assert fail(two, "StorageUnavailable") == two
    opened = fail(two, "DownloadFailed")
    assert (opened.state, opened.reason, opened.consecutive_failures) == (
        "Open",
        "PortalUnavailable",
        3,
    )
    assert opened.opened_at == NOW and opened.next_probe_at == NOW + timedelta(seconds=10)
    assert allowed(opened, 0) == 0
    # Attempts begun before it opened end without changing it.
    assert fail(opened) == opened
    assert after_attempt(opened, BREAKER, 4, "succeeded", "PermitIssued", NOW) == opened


def test_a_changed_portal_opens_it_at_once() -> None:
    opened = fail(CLOSED, "PortalChanged")
    assert (opened.state, opened.reason) == ("Open", "PortalChanged")


def test_a_probe_when_due_then_waves_of_one_two_four_until_closed() -> None:
    opened = fail(fail(fail(CLOSED)))
    assert not probe_due(opened, NOW + timedelta(seconds=9))
    assert probe_due(opened, NOW + timedelta(seconds=10))
    in_flight = probing(opened, "default-probe-1")
    assert not probe_due(in_flight, NOW + timedelta(hours=1))
    later = NOW + timedelta(seconds=12)
    half = after_probe(in_flight, BREAKER, 8, True, "PortalHealthy", later)
    assert (half.state, half.wave, half.probe) == ("HalfOpen", 1, None)
    assert allowed(half, 0) == 1 and allowed(half, 1) == 0
    waves = [half.wave]
    while half.state == "HalfOpen":
        half = after_attempt(half, BREAKER, 8, "succeeded", "PermitIssued", later)
        waves.append(half.wave)
    assert waves == [1, 2, 4, 0] and half == CLOSED
    assert allowed(half, 100) is None


def test_failing_probes_and_relapses_wait_longer_up_to_the_cap() -> None:
    opened = fail(fail(fail(CLOSED)))
    waits = []
    circuit = opened
    for _ in range(4):
        circuit = after_probe(probing(circuit, "p"), BREAKER, 4, False, "PortalUnavailable", NOW)
        waits.append((circuit.next_probe_at - NOW).total_seconds())  # type: ignore[operator]
        assert circuit.state == "Open" and circuit.probe is None
    assert waits == [20, 35, 35, 35]
    assert cool_down(BREAKER, 1) == timedelta(seconds=10)
    # A relapse while releasing the queue reopens it at once, with the longer wait.
    half = after_probe(probing(opened, "p"), BREAKER, 4, True, "PortalHealthy", NOW)
    relapse = fail(half)
    assert relapse.state == "Open" and relapse.next_probe_at == NOW + timedelta(seconds=20)
    # A probe that meets a changed page keeps it open as PortalChanged.
    changed = after_probe(probing(opened, "p"), BREAKER, 4, False, "PortalChanged", NOW)
    assert changed.reason == "PortalChanged"
