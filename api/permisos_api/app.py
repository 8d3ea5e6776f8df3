"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .context import Services
from .db import make_engine, make_sessionmaker
from .mail import Mailer
from .metrics import Metrics
from .observability import ObservabilityMiddleware
from .passwords import Hasher
from .problems import PROBLEM_BASE, install
from .ratelimit import RateLimiter
from .routes import applications, auth, ops
from .settings import ApiSettings

DESCRIPTION = f"""
Applicants register, verify their email, log in and file permit applications.

**Authentication**: a session cookie (`permisos_session`, HttpOnly) plus the CSRF token in
`X-CSRF-Token` on unsafe requests, or `Authorization: Bearer <token>` (log in with
`issue_bearer: true`).

**Errors** are RFC 9457 problem documents (`application/problem+json`); `type` is a URI under
`{PROBLEM_BASE}`, and validation problems list each field and rule in `errors`.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    engine = make_engine(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="Permisos Digitales API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.services = Services(
        settings=settings,
        engine=engine,
        hasher=Hasher(settings),
        mailer=Mailer(settings),
        limiter=RateLimiter(engine, settings.rate_limit_window_seconds),
        metrics=metrics,
    )
    install(app)
    app.include_router(auth.router)
    app.include_router(applications.router)
    app.include_router(ops.router)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app
