"""Kopf wiring: watch events feed the controller; peering decides which replica runs it.

The handlers only record what they see; all decisions are the controller's. They are coroutines
on purpose: Kopf runs plain functions in a thread pool, and the cache belongs to the event loop.
With peering, the controller runs as a daemon of the operator's own KopfPeering object, so Kopf
stops it whenever another replica with a higher priority takes over, and starts it again when
this one resumes.
"""

from __future__ import annotations

from typing import Any

import kopf

from permisos.resources import GROUP, VERSION
from permisos_operator.controller import Controller
from permisos_operator.jobs import MANAGED_BY


def _controller(memo: Any) -> Controller:
    controller: Controller = memo["controller"]
    return controller


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    operator = memo["settings"]
    settings.posting.enabled = False  # Events are the controller's, one per transition
    settings.peering.name = operator.peering_name
    settings.peering.priority = operator.priority
    settings.peering.standalone = operator.standalone
    settings.peering.lifetime = operator.peering_lifetime
    # Watching named namespaces, Kopf need not list and watch the cluster's namespaces and CRDs
    # (which would need a ClusterRole): it serves exactly those namespaces, and the resources
    # (peering kinds included) that discovery shows at start. A CRD added or changed later is
    # noticed after a restart. Cluster-wide, it keeps observing CRDs (see rbac.py).
    settings.scanning.disabled = bool(operator.namespaces)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Handlers only touch the cache, so per-object workers may go idle quickly.
    settings.queueing.idle_timeout = 1.0


@kopf.on.event(GROUP, VERSION, "permitrequests")
async def permitrequest_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).on_request(dict(event["object"]), event["type"] == "DELETED")


@kopf.on.event(GROUP, VERSION, "runnerpools")
async def runnerpool_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).on_pool(dict(event["object"]), event["type"] == "DELETED")


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_BY)
async def job_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).on_job(dict(event["object"]), event["type"] == "DELETED")


@kopf.on.event("", "v1", "pods", labels=MANAGED_BY)
async def pod_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _controller(memo).on_pod(dict(event["object"]), event["type"] == "DELETED")


# The peering object Kopf itself uses: the ClusterKopfPeering when cluster-wide, the KopfPeering
# of a watched namespace otherwise. Matching the name alone, a cluster-wide replica also ran the
# controller as a daemon of a namespace's KopfPeering of the same name (found on the real
# apiserver: Kopf then put its finalizer on that object).
def _is_own_namespaced_peering(name: str, namespace: str | None, memo: Any, **_: Any) -> bool:
    operator = memo["settings"]
    return bool(
        name == operator.peering_name
        and not operator.standalone
        and namespace in operator.namespaces
    )


def _is_own_cluster_peering(name: str, memo: Any, **_: Any) -> bool:
    operator = memo["settings"]
    return bool(
        name == operator.peering_name and not operator.standalone and not operator.namespaces
    )


@kopf.daemon(
    "kopf.dev", "v1", "kopfpeerings", when=_is_own_namespaced_peering, cancellation_timeout=10
)
async def run_while_active(memo: Any, **_: Any) -> None:
    await _controller(memo).run_forever()


@kopf.daemon(
    "kopf.dev", "v1", "clusterkopfpeerings", when=_is_own_cluster_peering, cancellation_timeout=10
)
async def run_while_active_clusterwide(memo: Any, **_: Any) -> None:
    await _controller(memo).run_forever()


@kopf.on.probe(id="controller")
async def controller_running(memo: Any, **_: Any) -> bool:
    return _controller(memo).running
