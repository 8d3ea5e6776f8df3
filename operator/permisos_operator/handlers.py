"""The operator's Kopf wiring: indexes of what it watches, handlers for what changes, a daemon
per RunnerPool for admission and a timer per pool for rechecks.

Every function Kopf calls for an event is a coroutine, even the ones that do not wait: Kopf runs
plain functions in a thread pool, a thread hop per call.

Kopf runs all of it only on the active replica of the peering; every handler here is a thin
call into `reconcile`, `admission` or `leadership`, whose decisions the pure `lifecycle` makes.
"""

from __future__ import annotations

import socket
from typing import Any

import kopf

from permisos.resources import GROUP, VERSION
from permisos_operator import admission, events
from permisos_operator.context import Context
from permisos_operator.essence import LeanDiffBaseStorage
from permisos_operator.indexes import (
    Indexes,
    Packed,
    entry_of,
    job_name_of_pod,
    job_of,
    pod_of,
    pool_name,
    pool_of,
    pool_of_probe,
    request_of,
    request_of_job,
)
from permisos_operator.jobs import LABEL_REQUEST, MANAGED_BY
from permisos_operator.kube import connection_info
from permisos_operator.reconcile import reconcile
from permisos_operator.settings import OperatorSettings
from permisos_operator.timeutil import utcnow

# How often each pool looks for running and backing-off requests whose time has come.
RECHECK_SECONDS = 1.0


# The operator's own requests in flight at once (its connections to the API server), and the
# Events Kopf posts at once: Kopf's own connection pool has no limit, so a burst of hundreds of
# Events took hundreds of TLS connections (each with a 128 KiB buffer) and crowded out the
# status writes and Jobs that the requests wait for.
CONNECTIONS = 64
EVENT_POSTERS = 8


def _ns(namespace: str | None) -> str:
    """Every kind the operator handles is namespaced."""
    assert namespace is not None
    return namespace


def _ctx(memo: Any) -> Context:
    ctx: Context = memo["context"]
    return ctx


def kopf_settings(settings: kopf.OperatorSettings, operator: OperatorSettings) -> None:
    """Kopf's settings from the operator's own."""
    settings.posting.reporting_component = "permisos-operator"
    settings.posting.worker_limit = EVENT_POSTERS
    settings.posting.reporting_instance = socket.gethostname()
    settings.peering.name = operator.peering_name
    settings.peering.priority = operator.priority
    settings.peering.standalone = operator.standalone
    settings.peering.lifetime = operator.peering_lifetime
    # Watching named namespaces, Kopf need not list and watch the cluster's namespaces and CRDs
    # (which would need a ClusterRole): it serves exactly those namespaces, and the resources
    # that discovery shows at start. A CRD added or changed later is noticed after a restart.
    settings.scanning.disabled = bool(operator.namespaces)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Idle per-object workers go soon: thousands of queued requests need no task each. (Capping
    # the workers at 100 took the benchmark's RSS with 5,000 new requests from 181 to 152 MiB,
    # but doubled the p95 latency of a burst of 500: Kopf's default, no cap, stays.)
    settings.queueing.idle_timeout = 1.0
    settings.persistence.diffbase_storage = LeanDiffBaseStorage()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **indexes: Any) -> None:
    ctx = _ctx(memo)
    kopf_settings(settings, ctx.settings)
    ctx.indexes = Indexes(
        requests=indexes["requests"],
        requests_by_pool=indexes["requests_by_pool"],
        running_by_pool=indexes["running_by_pool"],
        jobs_by_request=indexes["jobs_by_request"],
        pods_by_job=indexes["pods_by_job"],
        pools=indexes["pools"],
        probes_by_pool=indexes["probes_by_pool"],
    )


@kopf.on.login()
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    return await connection_info(_ctx(memo).writer.kube)


# --- indexes ---------------------------------------------------------------------------------


@kopf.index(GROUP, VERSION, "permitrequests")
async def requests(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Any, Any]:
    return {(_ns(namespace), name): Packed.of(body)}


@kopf.index(GROUP, VERSION, "permitrequests")
async def requests_by_pool(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return {(_ns(namespace), pool_name(body)): entry_of(body)}


@kopf.index(GROUP, VERSION, "permitrequests")
async def running_by_pool(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[Any, Any]:
    running = (body.get("status") or {}).get("phase") == "Running"
    return {(_ns(namespace), pool_name(body)): name} if running else {}


@kopf.index("batch", "v1", "jobs", labels=MANAGED_BY)
async def jobs_by_request(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    request = request_of_job(body)
    return {(_ns(namespace), request): job_of(body)} if request else {}


@kopf.index("batch", "v1", "jobs", labels=MANAGED_BY)
async def probes_by_pool(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    pool = pool_of_probe(body)
    return {(_ns(namespace), pool): job_of(body)} if pool else {}


@kopf.index("", "v1", "pods", labels=MANAGED_BY)
async def pods_by_job(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    job = job_name_of_pod(body)
    return {(_ns(namespace), job): pod_of(body)} if job else {}


@kopf.index(GROUP, VERSION, "runnerpools")
async def pools(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Any, Any]:
    return {(_ns(namespace), name): pool_of(body)}


# --- what changes ----------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "permitrequests")
async def permitrequest_changed(
    type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    ctx, ns = _ctx(memo), _ns(namespace)
    pool = (ns, pool_name(body))
    attempts = int((body.get("status") or {}).get("attempts") or 0)
    ctx.admissions.shown(pool, name, attempts if type != "DELETED" else 1 << 30)
    # The echo of the operator's own last write brings nothing new to decide on.
    echo = ctx.written.pop((ns, name), None) == body.get("metadata", {}).get("resourceVersion")
    if type == "DELETED":
        ctx.due.pop((ns, name), None)
        events.deleted(request_of(body))
    elif not echo and await reconcile(ctx, ns, name):
        await admission.enqueue(ctx, pool, name)
    ctx.wake(pool).set()


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_BY)
async def job_changed(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    request = request_of_job(body)
    # A Job just created, with no status yet, tells its request nothing new.
    if request and not (type == "ADDED" and not body.get("status")):
        await reconcile(_ctx(memo), _ns(namespace), request)
    elif (pool := pool_of_probe(body)) is not None:  # a probe: its pool reads how it went
        _ctx(memo).wake((_ns(namespace), pool)).set()


@kopf.on.event("", "v1", "pods", labels={**MANAGED_BY, LABEL_REQUEST: kopf.PRESENT})
async def pod_changed(labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    await reconcile(_ctx(memo), _ns(namespace), str(labels[LABEL_REQUEST]))


@kopf.on.event(GROUP, VERSION, "runnerpools")
async def pool_changed(
    type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """A new limit admits (or stops admitting) at once; a pool going away sends its queue and
    its backing-off requests back to Pending (PoolNotFound: no timer of its own rechecks them),
    and a pool appearing takes its Pending requests."""
    ctx, ns = _ctx(memo), _ns(namespace)
    ctx.wake((ns, name)).set()
    if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
        for entry in ctx.known.entries(ns, name):
            if entry.phase in ("Queued", "Retrying", "Pending", None):
                await reconcile(ctx, ns, entry.name)


@kopf.daemon(GROUP, VERSION, "runnerpools", cancellation_timeout=10)
async def admit_for_pool(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    await admission.run(_ctx(memo), (_ns(namespace), name))


@kopf.timer(GROUP, VERSION, "runnerpools", interval=RECHECK_SECONDS)
async def recheck_pool(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Running and backing-off requests whose time has come (a backoff over, a start timeout
    or deadline passed): their own events tell nothing then. One never looked at is due."""
    ctx, ns = _ctx(memo), _ns(namespace)
    now = utcnow()
    for entry in ctx.known.entries(ns, name):
        if entry.phase in ("Running", "Retrying"):
            # A time decided on an older version of the request than the index shows is no
            # longer the request's: it is looked at now.
            due, decided_on = ctx.due.get((ns, entry.name), (None, None))
            stale = decided_on != entry.resource_version
            if (stale or due is None or due <= now) and await reconcile(ctx, ns, entry.name):
                await admission.enqueue(ctx, (ns, name), entry.name)


async def peering_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    _ctx(memo).leadership.observe(body)


def watch_peering(cluster_wide: bool, name: str) -> None:
    """Registers the handler on the one peering kind this operator's Kopf peers through."""
    plural = "clusterkopfpeerings" if cluster_wide else "kopfpeerings"
    kopf.on.event("kopf.dev", "v1", plural, field="metadata.name", value=name)(peering_changed)


@kopf.on.probe(id="controller")
async def controller_running(memo: Any, **_: Any) -> bool:
    return _ctx(memo).leadership.leading
