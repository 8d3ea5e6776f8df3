"""Whether this replica is the active one of Kopf's peering, for the metrics and /healthz.

Kopf pauses every watch and handler of a replica that sees a live peer of a higher (or equal)
priority, and tells no one. So the operator watches its own peering object like any resource:
while active, it sees the peers' keep-alives (at least once per lifetime) and judges by Kopf's own
rule; once paused, it sees nothing, and the judgement expires after a lifetime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from permisos.kube import parse_time

log = logging.getLogger("permisos.operator")


class Leadership:
    def __init__(self, identity: str, priority: int, lifetime: float, standalone: bool) -> None:
        self.identity, self.priority = identity, priority
        self.lifetime, self.standalone = lifetime, standalone
        self._top = False
        self._seen = float("-inf")

    def observe(self, peering: Mapping[str, Any]) -> None:
        """A peering object's state, as this (unpaused) replica's watch delivered it."""
        now = datetime.now(UTC)
        rivals = []
        for peer, info in (peering.get("status") or {}).items():
            if peer == self.identity or not isinstance(info, Mapping):
                continue
            seen = parse_time(str(info.get("lastseen") or "")) or now
            seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
            if seen + timedelta(seconds=int(info.get("lifetime") or 0)) > now:
                rivals.append(int(info.get("priority") or 0))
        top = all(priority < self.priority for priority in rivals)
        was = self.leading
        self._top, self._seen = top, time.monotonic()
        if self.leading != was:
            log.info("this replica is %s", "active" if self.leading else "on standby")

    @property
    def leading(self) -> bool:
        if self.standalone:
            return True
        return self._top and time.monotonic() - self._seen < self.lifetime
