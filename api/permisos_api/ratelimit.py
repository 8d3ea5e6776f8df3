"""Fixed-window rate limits counted in the database, so every API replica sees the same counts."""

from __future__ import annotations

import hashlib
import math
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Table, delete

from permisos.database import upsert

from .models import RateLimitBucket
from .problems import ProblemError


def account_key(email: str) -> str:
    """Buckets name accounts by a digest, so the table holds no email address."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]


class RateLimiter:
    def __init__(self, engine: Engine, window_seconds: int) -> None:
        self._engine = engine
        self._window = window_seconds

    def hit(self, bucket: str, limit: int, *, now: datetime | None = None) -> None:
        """Counts one request; raises a 429 problem once the window holds more than `limit`.

        Runs in its own transaction: the count must stick even when the request then fails.
        """
        now = now or datetime.now(UTC)
        epoch = int(now.timestamp())
        start = datetime.fromtimestamp(epoch - epoch % self._window, UTC)
        end = start + timedelta(seconds=self._window)
        table = RateLimitBucket.__table__
        assert isinstance(table, Table)
        values = upsert(self._engine, table).values(
            bucket=bucket, window_start=start, hits=1, expires_at=end
        )
        stmt = values.on_conflict_do_update(
            index_elements=["bucket", "window_start"], set_={"hits": table.c.hits + 1}
        ).returning(table.c.hits)
        with self._engine.begin() as conn:
            hits = conn.execute(stmt).scalar_one()
            # Old windows are swept now and then rather than by a separate job.
            if random.random() < 0.01:  # noqa: S311 (not security-relevant)
                conn.execute(delete(table).where(table.c.expires_at < now))
        if hits > limit:
            retry = max(1, math.ceil((end - now).total_seconds()))
            raise ProblemError(
                "rate-limited",
                f"Too many requests; retry in {retry} seconds.",
                headers={"Retry-After": str(retry)},
            )
