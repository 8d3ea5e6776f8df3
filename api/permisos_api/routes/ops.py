"""Liveness, readiness and metrics: what Kubernetes probes and Prometheus scrapes.

They stay out of the public OpenAPI document, as the Ingress keeps them inside the cluster;
api/README.md describes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

from ..deps import Svc
from ..kube import ReadinessProbe
from ..schemas import Check, Liveness, Readiness

router = APIRouter(tags=["operations"])


def database_check(engine: Engine) -> Check:
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready", with its kind for the engineer
        return Check(
            status="failed",
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            detail=type(exc).__name__,
        )
    return Check(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))


@router.get(
    "/healthz",
    response_model=Liveness,
    summary="Liveness: the process answers",
    include_in_schema=False,
)
def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: each dependency with its status and latency",
    description="503 while this process has never reached its database (a release with a "
    "wrong database address does not roll out). After that, a failing database is reported "
    "(status degraded) but keeps the API ready: it is shared by every replica, so failing on "
    "it would take them all out of the Service at once, and clients would meet refused "
    "connections instead of the API's 503 problem with Retry-After. The Kubernetes API (when "
    "the process has a cluster configuration) and object storage are reported the same way: "
    "payments keep being accepted while Kubernetes is down (the outbox delivers them when it "
    "is back), and only permit downloads need storage.",
    responses={503: {"model": Readiness, "description": "A dependency failed"}},
    include_in_schema=False,
)
async def readyz(svc: Svc, request: Request) -> Response:
    # At once: the blocking checks in threads, the Kubernetes one on the event loop.
    checks: dict[str, Awaitable[Check]] = {
        "database": asyncio.to_thread(database_check, svc.engine)
    }
    probe: ReadinessProbe | None = getattr(request.app.state, "kube_probe", None)
    if probe is not None:
        checks["kubernetes"] = probe.check()
    if svc.settings.readyz_s3:
        checks["storage"] = asyncio.to_thread(svc.storage.check)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    state = request.app.state
    if results["database"].status == "ok":
        state.database_reached = True
    if not getattr(state, "database_reached", False):
        status = "failed"
    elif all(check.status == "ok" for check in results.values()):
        status = "ok"
    else:
        status = "degraded"
    body = Readiness(status=status, checks=results)
    code = 503 if status == "failed" else 200
    return JSONResponse(body.model_dump(exclude_none=True), status_code=code)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Text exposition"}},
    include_in_schema=False,
)
def metrics(svc: Svc) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
