"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .context import Services
from .controls import ControlCharactersMiddleware
from .db import make_engine, make_sessionmaker
from .dispatcher import Dispatcher, DispatcherMetrics
from .docs import install_docs
from .kube import ApiKube, ReadinessProbe, configured
from .mail import Mailer
from .metrics import Metrics
from .mirror import Mirror, MirrorMetrics
from .observability import ObservabilityMiddleware
from .openapi import install_openapi
from .passwords import Hasher
from .payments.stripe_client import make_stripe_client
from .problems import PROBLEM_BASE, install, problem_responses
from .ratelimit import RateLimiter
from .routes import account, admin, applications, auth, catalog, ops, payments, permits, webhooks
from .security import SecurityHeadersMiddleware
from .settings import ApiSettings
from .storage import PermitStorage
from .web import install_web

DESCRIPTION = f"""
Applicants register, verify their email, log in and file permit applications.

**Authentication**: a session cookie (`permisos_session`, HttpOnly) plus the CSRF token in
`X-CSRF-Token` on unsafe requests, or `Authorization: Bearer <token>` (log in with
`issue_bearer: true`).

**Errors** are RFC 9457 problem documents (`application/problem+json`); `type` is a URI under
`{PROBLEM_BASE}`, and validation problems list each field and rule in `errors`.

**Payments** go through Stripe: a card PaymentIntent the client confirms with Stripe.js (3-D
Secure included), or an OXXO voucher. Stripe's signed webhooks (`POST /v1/webhooks/stripe`) are
the source of truth for the outcome.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    engine = make_engine(settings)
    metrics = Metrics()

    dispatcher = Dispatcher(settings, engine, DispatcherMetrics(metrics.registry))
    mirror = Mirror(settings, engine, MirrorMetrics(metrics.registry))
    kube = ApiKube(settings.kubernetes_timeout_seconds)
    # The Kubernetes API joins /readyz when this process uses it and has a cluster configuration.
    kube_probe = (
        ReadinessProbe(settings.kubernetes_namespace, settings.kubernetes_timeout_seconds)
        if (settings.dispatcher_enabled or settings.mirror_enabled) and configured()
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Two loops beside the requests: PermitRequests out (dispatcher), their phases back in.
        loops = [
            asyncio.create_task(run())
            for enabled, run in (
                (settings.dispatcher_enabled, dispatcher.run_forever),
                (settings.mirror_enabled, mirror.run_forever),
            )
            if enabled
        ]
        try:
            yield
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dispatcher.close()
            await mirror.close()
            await kube.reset()
            engine.dispose()

    app = FastAPI(
        title="Permisos Digitales API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from this process (no CDN)
        redoc_url=None,
        # Any operation may fail unexpectedly, or find the database down.
        responses=problem_responses(500, 503),
    )
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.dispatcher = dispatcher
    app.state.mirror = mirror
    app.state.kube_probe = kube_probe
    app.state.services = Services(
        settings=settings,
        engine=engine,
        hasher=Hasher(settings),
        mailer=Mailer(settings),
        limiter=RateLimiter(engine, settings.rate_limit_window_seconds),
        metrics=metrics,
        stripe_reads=make_stripe_client(settings, timeout=settings.stripe_read_timeout_seconds),
        stripe=make_stripe_client(settings),
        storage=PermitStorage(settings),
        kube=kube,
    )
    install(app)
    app.include_router(auth.router)
    app.include_router(applications.router)
    app.include_router(catalog.router)
    app.include_router(permits.router)
    app.include_router(account.router)
    app.include_router(payments.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    app.include_router(ops.router)
    # Innermost: its refusals carry the security headers and are counted like any answer.
    app.add_middleware(ControlCharactersMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    install_openapi(app)
    install_docs(app)
    install_web(app)
    return app
