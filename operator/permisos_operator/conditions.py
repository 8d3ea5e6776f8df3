"""Kubernetes-style conditions: lastTransitionTime moves only when a condition's status does."""

from __future__ import annotations

from datetime import datetime

from permisos.resources import TERMINAL_PHASES, Condition, Phase


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=since,
    )
    return [c for c in conditions if c.type != type_] + [new]


def phase_conditions(
    conditions: list[Condition],
    phase: Phase,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Ready is True once the permit is issued; Progressing is True while work remains."""
    ready = "True" if phase == "Succeeded" else "False"
    progressing = "False" if phase in TERMINAL_PHASES else "True"
    out = set_condition(conditions, "Ready", ready, reason, message, generation, now)
    return set_condition(out, "Progressing", progressing, reason, message, generation, now)
