"""Events about PermitRequests and RunnerPools, through Kopf's event posting (`kubectl describe`
lists them).

Kopf posts them in the background, in order per object, retrying failures; losing one never
stops a request. Their messages come from the status, whose runner messages are redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from permisos_operator.lifecycle import Transition


def _ref(body: Mapping[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, body))


def transition(body: Mapping[str, Any], change: Transition) -> None:
    kopf.event(_ref(body), type=change.event_type, reason=change.reason, message=change.message)


def deleted(body: Mapping[str, Any]) -> None:
    """The request is gone; the Event outlives it (`kubectl get events` still lists it)."""
    phase = (body.get("status") or {}).get("phase") or "Pending"
    kopf.event(_ref(body), type="Normal", reason="Deleted", message=f"deleted in phase {phase}")


def portal_gate(pool: Mapping[str, Any], reason: str, message: str) -> None:
    """The pool's portal gate changed: attempts stopped (Warning) or may start again."""
    kind = "Normal" if reason == "PortalHealthy" else "Warning"
    kopf.event(_ref(pool), type=kind, reason=reason, message=message)
