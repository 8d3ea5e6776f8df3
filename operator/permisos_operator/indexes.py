"""What the operator knows of the cluster: Kopf's indexes, filled from its watches.

Kopf calls these functions on every watch event (before any handler runs, and fills every index
before the first handler at start). Each keeps only what decisions need: managed fields,
annotations and labels of 5,000 queued requests are memory for nothing. Values are shared with
the handlers: never modify one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from permisos.resources import TERMINAL_PHASES, RunnerPoolSpec
from permisos_operator.jobs import LABEL_PROBE, LABEL_REQUEST
from permisos_operator.timeutil import parse_time

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
# Kopf's index: a mapping of keys to the values every indexed object gave for that key.
Index = Mapping[Key, Iterable[Any]]

_REQUEST_META = ("name", "namespace", "uid", "resourceVersion", "generation")
_STAMPS = ("creationTimestamp", "deletionTimestamp")


def _meta(body: Mapping[str, Any], keys: Iterable[str]) -> Body:
    meta = body.get("metadata") or {}
    return {k: meta[k] for k in (*keys, *_STAMPS) if k in meta}


def request_of(body: Mapping[str, Any]) -> Body:
    """A PermitRequest as reconciling it needs it (and as Kopf's event posting names it)."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _meta(body, _REQUEST_META),
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


@dataclass(frozen=True, slots=True)
class Packed:
    """A request kept as compact JSON: a fifth of the memory of its decoded dicts, for the
    thousands that wait in a queue; decoded when one is worked on."""

    resource_version: int
    data: bytes

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Packed:
        request = request_of(body)
        version = int(request["metadata"].get("resourceVersion") or 0)
        return cls(version, json.dumps(request, separators=(",", ":")).encode())

    def body(self) -> Body:
        decoded: Body = json.loads(self.data)
        return decoded


@dataclass(frozen=True, slots=True)
class Pool:
    """A RunnerPool, its spec parsed once per change (None while invalid or being deleted)."""

    generation: int | None
    spec: RunnerPoolSpec | None
    status: Body
    ref: Body  # what an Event about the pool names


def pool_of(body: Mapping[str, Any]) -> Pool:
    meta = body.get("metadata") or {}
    try:
        spec = RunnerPoolSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        spec = None
    return Pool(
        generation=meta.get("generation"),
        spec=None if meta.get("deletionTimestamp") else spec,
        status=body.get("status") or {},
        ref={
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta},
        },
    )


def job_of(body: Mapping[str, Any]) -> Body:
    """A runner Job as `observe.observe_job` reads it."""
    return {"metadata": _meta(body, ("name", "namespace")), "status": body.get("status") or {}}


def pod_of(body: Mapping[str, Any]) -> Body:
    """A runner pod as `observe.observe_job` reads it: which is newest, what its runner said,
    and its start (what the attempt cost)."""
    status = body.get("status") or {}
    return {
        "metadata": _meta(body, ("name", "creationTimestamp")),
        "status": {
            k: status[k] for k in ("phase", "startTime", "containerStatuses") if k in status
        },
    }


@dataclass(frozen=True, slots=True)
class Entry:
    """A request as its pool's admission and the metrics see it."""

    name: str
    phase: str | None
    priority: int
    created: str  # creationTimestamp: RFC 3339 in UTC, so it sorts as text
    open_since: str | None  # paidAt, else creation; None once finished or deleted
    waiting: bool  # Queued, neither cancelled nor being deleted
    attempts: int
    resource_version: int
    position: int | None = None  # status.queuePosition as written
    waiting_reason: str | None = None  # the Admitted condition's reason as written

    @property
    def order(self) -> tuple[int, str, str]:
        """Higher priority first, then oldest first; the name breaks ties."""
        return (-self.priority, self.created, self.name)


def entry_of(body: Mapping[str, Any]) -> Entry:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    phase = status.get("phase")
    deleting = bool(meta.get("deletionTimestamp"))
    created = str(meta.get("creationTimestamp") or "")
    finished = phase in TERMINAL_PHASES or deleting
    return Entry(
        name=str(meta["name"]),
        phase=phase,
        priority=int(spec.get("priority") or 0),
        created=created,
        open_since=None if finished else str(spec.get("paidAt") or created),
        waiting=phase == "Queued" and not deleting and not spec.get("cancel"),
        attempts=int(status.get("attempts") or 0),
        resource_version=int(meta.get("resourceVersion") or 0),
        position=status.get("queuePosition"),
        waiting_reason=next(
            (
                c.get("reason")
                for c in status.get("conditions") or []
                if c.get("type") == "Admitted"
            ),
            None,
        ),
    )


def pool_name(body: Mapping[str, Any]) -> str:
    return str((body.get("spec") or {}).get("pool") or "default")


def job_name_of_pod(body: Mapping[str, Any]) -> str | None:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if name:
        return str(name)
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return str(ref["name"])
    return None


def request_of_job(body: Mapping[str, Any]) -> str | None:
    value = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_REQUEST)
    return str(value) if value else None


def pool_of_probe(body: Mapping[str, Any]) -> str | None:
    value = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_PROBE)
    return str(value) if value else None


def _newest(values: Iterable[Packed]) -> Body | None:
    best = max(values, key=lambda packed: packed.resource_version, default=None)
    return best.body() if best is not None else None


@dataclass
class Indexes:
    """The operator's indexes, by what they are for."""

    requests: Index
    requests_by_pool: Index
    running_by_pool: Index
    jobs_by_request: Index
    pods_by_job: Index
    pools: Index
    probes_by_pool: Index

    def request(self, namespace: str, name: str) -> Body | None:
        return _newest(self.requests.get((namespace, name), ()))

    def pool(self, namespace: str, name: str) -> Pool | None:
        found: list[Pool] = list(self.pools.get((namespace, name), ()))
        return found[0] if found else None

    def job(self, namespace: str, request: str, job: str) -> Body | None:
        jobs: Iterable[Body] = self.jobs_by_request.get((namespace, request), ())
        return next((j for j in jobs if j["metadata"]["name"] == job), None)

    def probe(self, namespace: str, pool: str, job: str) -> Body | None:
        probes: Iterable[Body] = self.probes_by_pool.get((namespace, pool), ())
        return next((j for j in probes if j["metadata"]["name"] == job), None)

    def pods(self, namespace: str, job: str) -> list[Body]:
        return list(self.pods_by_job.get((namespace, job), ()))

    def started_since(self, namespace: str, pool: str, since: datetime) -> list[datetime]:
        """When the pool's attempt and probe Jobs created after `since` were created, oldest
        first: the portal rate limit's recent starts, as a newly active replica finds them."""
        jobs: list[Body] = list(self.probes_by_pool.get((namespace, pool), ()))
        for entry in self.entries(namespace, pool):
            jobs += self.jobs_by_request.get((namespace, entry.name), ())
        stamps = (j["metadata"].get("creationTimestamp") for j in jobs)
        return sorted(t for t in (parse_time(s) for s in stamps if s) if t > since)

    def entries(self, namespace: str, pool: str) -> list[Entry]:
        return list(self.requests_by_pool.get((namespace, pool), ()))

    def running(self, namespace: str, pool: str) -> int:
        """How many of the pool's requests are Running, without going through its queue."""
        return len(list(self.running_by_pool.get((namespace, pool), ())))

    def pool_keys(self) -> set[Key]:
        """Every pool that exists or that a request names."""
        return set(self.pools) | {k for k in self.requests_by_pool if self.entries(*k)}

    def all_entries(self) -> Iterator[tuple[Key, Entry]]:
        for key in list(self.requests_by_pool):
            for entry in self.requests_by_pool.get(key, ()):
                yield key, entry
