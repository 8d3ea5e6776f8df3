"""What each request can reach on `app.state`, typed, as dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import stripe
from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from .kube import ApiKube
from .mail import Mailer
from .metrics import Metrics
from .passwords import Hasher
from .ratelimit import RateLimiter
from .settings import ApiSettings
from .storage import PermitStorage

T = TypeVar("T")


@dataclass
class Services:
    settings: ApiSettings
    engine: Engine
    hasher: Hasher
    mailer: Mailer
    limiter: RateLimiter
    metrics: Metrics
    stripe_reads: stripe.StripeClient  # short timeout: for reads under a row lock
    stripe: stripe.StripeClient
    storage: PermitStorage
    kube: ApiKube  # the admin console's reads (connects on first use)


async def services(request: Request) -> Services:
    # async: no I/O here, so FastAPI calls it in the loop instead of a worker thread.
    found = request.app.state.services
    assert isinstance(found, Services)
    return found


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One ORM session per request; endpoints commit explicitly.

    async: making the session needs no I/O, so it costs no thread hop; closing one still in a
    transaction rolls back, a round trip, so that goes to a worker thread.
    """
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()  # connects on its first statement, in the endpoint's thread
    try:
        yield session
    finally:
        if session.in_transaction():
            # A rollback, a round trip: in threads of their own, since when every shared worker
            # waits for a connection, the one that frees a connection must not queue behind
            # them (they all waited out the pool's timeout: 503s).
            await anyio.to_thread.run_sync(session.close, limiter=_releases(request))
        else:
            session.close()


def _releases(request: Request) -> anyio.CapacityLimiter:
    limiter = getattr(request.app.state, "releases", None)
    if limiter is None:  # made in the loop that uses it
        limiter = request.app.state.releases = anyio.CapacityLimiter(8)
    assert isinstance(limiter, anyio.CapacityLimiter)
    return limiter


async def in_worker(db: Session, work: Callable[[], T], *, autocommit: bool = False) -> T:
    """A route's database work in one worker thread, the connection handed back there too.

    A sync route costs a thread hop for its body, another for validating its response model
    and one more for get_db's cleanup; an async route that awaits this pays one. What the work
    did not commit is rolled back, as the cleanup would; what it returns stays readable
    (detached, attributes loaded), so it must not rely on lazy loads.

    `autocommit`: each statement is its own transaction, for work whose statements need no
    atomicity together (reads, or a single write). Under PostgreSQL's READ COMMITTED each
    statement sees its own snapshot anyway, so nothing changes but the BEGIN and the
    COMMIT/ROLLBACK round trips, which are gone.
    """

    def work_then_release() -> T:
        try:
            if autocommit:
                db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return work()
        finally:
            db.close()

    return await run_in_threadpool(work_then_release)
