"""Fixed-window rate limits counted in the database, so every API replica sees the same counts."""

from __future__ import annotations

import hashlib
import math
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Table, and_, case, delete, update
from sqlalchemy.orm import Session

from permisos.database import upsert

from .models import RateLimitBucket
from .problems import ProblemError


def account_key(email: str) -> str:
    """Buckets name accounts by a digest, so the table holds no email address."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]


# A lockout's count has no window: one row per name, its `hits` the attempts since the last lock,
# or 0 while locked until `expires_at` (when the sweep may remove it, as an unlocked count).
NO_WINDOW = datetime(1970, 1, 1, tzinfo=UTC)


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


def count_attempt(
    db: Session, bucket: str, threshold: int, lock: timedelta
) -> tuple[int, datetime]:
    """Counts one attempt of a lockout kept here, as the users' rows keep theirs: the attempt past
    `threshold` locks. Its number, or 0 and the lock's end while locked. One statement, which
    PostgreSQL applies to the row one at a time; on the request's own connection (a second one
    per request would let parallel requests hold the pool while each waits for another)."""
    now = datetime.now(UTC)
    table = RateLimitBucket.__table__
    assert isinstance(table, Table)
    locked = and_(table.c.hits == 0, table.c.expires_at > now)
    values = upsert(db, table).values(
        bucket=bucket, window_start=NO_WINDOW, hits=1, expires_at=now + lock
    )
    stmt = values.on_conflict_do_update(
        index_elements=["bucket", "window_start"],
        set_={
            "hits": case((locked, 0), (table.c.hits + 1 > threshold, 0), else_=table.c.hits + 1),
            "expires_at": case((locked, table.c.expires_at), else_=now + lock),
        },
    ).returning(table.c.hits, table.c.expires_at)
    hits, until = db.execute(stmt).one()
    db.commit()
    return int(hits), until


def lock_bucket(db: Session, bucket: str, lock: timedelta) -> None:
    table = RateLimitBucket.__table__
    assert isinstance(table, Table)
    stmt = update(table).where(table.c.bucket == bucket, table.c.window_start == NO_WINDOW)
    db.execute(stmt.values(hits=0, expires_at=datetime.now(UTC) + lock))
    db.commit()
