"""Fault decisions drawn from one seeded random stream, so a run with a `seed` repeats itself."""

from __future__ import annotations

import math
import random
import time
from collections import deque

from .config import PortalConfig


class Faults:
    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self._seed: int | None = None
        self._random = random.Random()  # noqa: S311 - fault injection, not security
        self._answered: deque[float] = deque()  # when the last minute's requests were answered
        self.reseed()

    def reseed(self) -> None:
        self._seed = self.config.seed
        self._random = random.Random(self._seed)  # noqa: S311

    def _roll(self, rate: float) -> bool:
        # Follows `seed` whether it was changed through the control API or on `sim.config`.
        if self.config.seed != self._seed:
            self.reseed()
        if rate <= 0:
            return False
        return rate >= 1 or self._random.random() < rate

    def server_error(self) -> int | None:
        """The status of an injected failure for this request, if any."""
        return self.config.error_status if self._roll(self.config.error_rate) else None

    def show_modal(self) -> bool:
        return self._roll(self.config.modal_rate)

    def take_rejection(self) -> str | None:
        """`reject_next` applies to exactly one confirmed submission."""
        reason = self.config.reject_next
        if reason:
            self.config.reject_next = None
        return reason or None

    def take_plate_failure(self, plates: str) -> int | None:
        """The status of an injected failure for a confirmation of these plates, if any left."""
        left = self.config.fail_plates.get(plates, 0)
        if left <= 0:
            return None
        self.config.fail_plates = {**self.config.fail_plates, plates: left - 1}
        return self.config.error_status

    def throttle(self, now: float | None = None) -> int | None:
        """Seconds to wait (Retry-After) when this request is over `rate_limit_per_minute` in
        the last sliding minute, else None (and the request counts)."""
        limit = self.config.rate_limit_per_minute
        if limit is None:
            self._answered.clear()
            return None
        now = time.monotonic() if now is None else now
        while self._answered and self._answered[0] <= now - 60:
            self._answered.popleft()
        if len(self._answered) >= limit:
            return max(1, math.ceil(self._answered[0] + 60 - now))
        self._answered.append(now)
        return None
