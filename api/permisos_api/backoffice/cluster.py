"""What the cluster says, for the admin console: a PermitRequest's phase and conditions, and
each RunnerPool's replicas, queue and portal state. Read live from the API server (the database
mirrors a request's outcome, not its conditions), with the API's own ServiceAccount."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from permisos.kube import JSON, KubeError, parse_time

from ..kube import ApiKube, permit_requests
from ..kube import runner_pools as runner_pools_path

log = logging.getLogger("permisos_api.admin")


class ClusterUnavailable(Exception):
    """The API server did not answer, or refused: the page says so instead of failing."""


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    since: datetime | None


@dataclass(frozen=True)
class RequestView:
    name: str
    pool: str
    phase: str
    attempts: int
    queue_position: int | None
    conditions: list[Condition]


@dataclass(frozen=True)
class PoolView:
    name: str
    limit: int
    running: int
    queued: int
    circuit: str
    failures: int
    next_probe: datetime | None
    portal: Condition | None


def _conditions(status: JSON) -> list[Condition]:
    return [
        Condition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
            since=parse_time(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or []
    ]


async def _get(kube: ApiKube, path: str) -> JSON | None:
    try:
        return await kube.read(path)
    except KubeError as error:
        log.warning("cluster read refused: %s %s", error.status, error.reason)
        raise ClusterUnavailable(str(error)) from None
    # No configuration, a refused connection, a timeout, TLS: each its own class, all one answer.
    except Exception as error:
        log.warning("cluster unreachable: %s", type(error).__name__)
        await kube.reset()
        raise ClusterUnavailable(type(error).__name__) from None


async def permit_request(kube: ApiKube, namespace: str, name: str) -> RequestView | None:
    found = await _get(kube, permit_requests(namespace, name))
    if found is None:
        return None
    spec, status = found.get("spec") or {}, found.get("status") or {}
    return RequestView(
        name=name,
        pool=str(spec.get("pool") or ""),
        phase=str(status.get("phase") or "Pending"),
        attempts=int(status.get("attempts") or 0),
        queue_position=status.get("queuePosition"),
        conditions=_conditions(status),
    )


async def runner_pools(kube: ApiKube, namespace: str) -> list[PoolView]:
    listed = await _get(kube, runner_pools_path(namespace)) or {}
    pools = []
    for item in listed.get("items") or []:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        circuit = status.get("circuit") or {}
        portal = [c for c in _conditions(status) if c.type == "PortalAvailable"]
        pools.append(
            PoolView(
                name=str(item["metadata"]["name"]),
                limit=int(spec.get("replicas") or 0),
                running=int(status.get("replicas") or 0),
                queued=int(status.get("queued") or 0),
                circuit=str(circuit.get("state") or "Closed"),
                failures=int(circuit.get("consecutiveFailures") or 0),
                next_probe=parse_time(circuit.get("nextProbeAt")),
                portal=portal[0] if portal else None,
            )
        )
    return sorted(pools, key=lambda pool: pool.name)
