"""The pool's circuit breaker around the portal, as pure transitions.

Closed: attempts run; consecutive failures that mean the portal is unavailable are counted, and
`failureThreshold` of them open the circuit (one `PortalChanged` opens it at once). Open: no
attempt starts (queued requests wait, uncharged; running ones finish and change nothing); after
a cool-down (`coolDownSeconds`, doubled at every reopening up to `maxCoolDownSeconds`) a probe
Job signs in and searches the consulta page. Its success makes the circuit HalfOpen: the queue
is released in waves of 1, 2, 4, … attempts at once, each success doubling the wave, until the
pool's replicas are reached and the circuit is Closed; an unavailable failure reopens it. A
failed probe reopens it too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from permisos.resources import CircuitBreaker, PortalCircuit

# Failures that say the portal cannot serve us now, whoever the applicant.
UNAVAILABLE = frozenset(
    {
        "PortalUnavailable",
        "PortalMaintenance",
        "PortalTimeout",
        "PortalHttpError",
        "ProcessingTimeout",
        "DownloadFailed",
        "DownloadTimeout",
        "DownloadIncomplete",
        "BrowserError",
    }
)
CHANGED = "PortalChanged"
# Outcomes that say the portal worked (it issued, or it judged the data itself).
PORTAL_WORKED = frozenset({"succeeded", "permanent"})

CLOSED = PortalCircuit()


def cool_down(breaker: CircuitBreaker, openings: int) -> timedelta:
    seconds = breaker.cool_down_seconds * 2 ** max(0, openings - 1)
    return timedelta(seconds=min(seconds, breaker.max_cool_down_seconds))


def _open(
    circuit: PortalCircuit, breaker: CircuitBreaker, reason: str, now: datetime
) -> PortalCircuit:
    openings = circuit.openings + 1
    return PortalCircuit(
        state="Open",
        reason=reason,
        consecutive_failures=circuit.consecutive_failures,
        opened_at=now,
        openings=openings,
        next_probe_at=now + cool_down(breaker, openings),
    )


def after_attempt(
    circuit: PortalCircuit,
    breaker: CircuitBreaker,
    replicas: int,
    outcome: str,
    reason: str,
    now: datetime,
) -> PortalCircuit:
    """An attempt of the pool ended."""
    if circuit.state == "Open":
        return circuit  # begun before it opened: the probe decides what comes next
    if reason == CHANGED:
        return _open(circuit, breaker, CHANGED, now)
    if reason in UNAVAILABLE:
        failures = circuit.consecutive_failures + 1
        counted = circuit.model_copy(update={"consecutive_failures": failures})
        if circuit.state == "HalfOpen" or failures >= breaker.failure_threshold:
            return _open(counted, breaker, "PortalUnavailable", now)
        return counted
    if outcome in PORTAL_WORKED:
        if circuit.state == "HalfOpen":
            wave = circuit.wave * 2
            if wave >= replicas:
                return CLOSED
            return circuit.model_copy(update={"wave": wave, "consecutive_failures": 0})
        return circuit.model_copy(update={"consecutive_failures": 0})
    return circuit  # the runner's or the cluster's trouble, not the portal's


def probe_due(circuit: PortalCircuit, now: datetime) -> bool:
    return (
        circuit.state == "Open"
        and circuit.probe is None
        and (circuit.next_probe_at is None or circuit.next_probe_at <= now)
    )


def probing(circuit: PortalCircuit, job: str) -> PortalCircuit:
    return circuit.model_copy(update={"probe": job})


def after_probe(
    circuit: PortalCircuit,
    breaker: CircuitBreaker,
    replicas: int,
    healthy: bool,
    reason: str,
    now: datetime,
) -> PortalCircuit:
    """The probe Job ended: HalfOpen with a wave of one, or open again (a longer cool-down)."""
    if healthy:
        if replicas <= 1:
            return CLOSED
        return PortalCircuit(
            state="HalfOpen", reason=circuit.reason, openings=circuit.openings, wave=1
        )
    why = CHANGED if reason == CHANGED else "PortalUnavailable"
    return _open(circuit.model_copy(update={"probe": None}), breaker, why, now)


def allowed(circuit: PortalCircuit, running: int) -> int | None:
    """Attempts that may start now as far as the circuit goes (None: no bound)."""
    if circuit.state == "Open":
        return 0
    if circuit.state == "HalfOpen":
        return max(0, circuit.wave - running)
    return None
