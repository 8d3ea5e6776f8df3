"""The operator's view of the cluster, kept current by watch events.

Decisions read from here, never from ad-hoc GETs, so a burst of events costs no API calls. After
each write the operator stores the object the server returned, so its next decision already sees
its own write even if the watch event arrives later.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from permisos_operator.jobs import LABEL_REQUEST

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]


def key_of(body: Body) -> Key:
    meta = body["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _newer(new: Body, old: Body | None) -> bool:
    """Whether `new` is at least as recent as `old`.

    resourceVersions are opaque to clients in general, but every API server in use (etcd's
    revision, the sandbox's counter) issues increasing integers; anything else counts as newer.
    """
    if old is None:
        return True
    a, b = new["metadata"].get("resourceVersion", ""), old["metadata"].get("resourceVersion", "")
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return True


@dataclass
class Cache:
    requests: dict[Key, Body] = field(default_factory=dict)
    pools: dict[Key, Body] = field(default_factory=dict)
    jobs: dict[Key, Body] = field(default_factory=dict)
    pods: dict[Key, Body] = field(default_factory=dict)
    # Pods by the Job that owns them, for reading an attempt's termination message.
    _pods_by_job: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Request names by (namespace, pool), for admission.
    _requests_by_pool: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))

    def clear(self) -> None:
        for store in (self.requests, self.pools, self.jobs, self.pods):
            store.clear()
        self._pods_by_job.clear()
        self._requests_by_pool.clear()

    # --- PermitRequests

    def put_request(self, body: Body) -> bool:
        key = key_of(body)
        old = self.requests.get(key)
        if not _newer(body, old):
            return False
        if old is not None:
            self._requests_by_pool[(key[0], _pool(old))].discard(key[1])
        self.requests[key] = body
        self._requests_by_pool[(key[0], _pool(body))].add(key[1])
        return True

    def drop_request(self, key: Key) -> None:
        old = self.requests.pop(key, None)
        if old is not None:
            self._requests_by_pool[(key[0], _pool(old))].discard(key[1])

    def requests_in_pool(self, pool: Key) -> list[Body]:
        names = self._requests_by_pool.get(pool, set())
        return [self.requests[(pool[0], n)] for n in names if (pool[0], n) in self.requests]

    def pool_keys(self) -> set[Key]:
        """Every pool that exists or that some request names."""
        return set(self.pools) | {k for k, names in self._requests_by_pool.items() if names}

    # --- RunnerPools

    def put_pool(self, body: Body) -> bool:
        key = key_of(body)
        if not _newer(body, self.pools.get(key)):
            return False
        self.pools[key] = body
        return True

    # --- Jobs and their pods

    def put_job(self, body: Body) -> bool:
        key = key_of(body)
        if not _newer(body, self.jobs.get(key)):
            return False
        self.jobs[key] = body
        return True

    def drop_job(self, key: Key) -> None:
        self.jobs.pop(key, None)

    def drop_pool(self, key: Key) -> None:
        self.pools.pop(key, None)

    def put_pod(self, body: Body) -> bool:
        key = key_of(body)
        if not _newer(body, self.pods.get(key)):
            return False
        self.pods[key] = body
        job = _job_of_pod(body)
        if job:
            self._pods_by_job[(key[0], job)].add(key[1])
        return True

    def drop_pod(self, key: Key) -> None:
        old = self.pods.pop(key, None)
        job = _job_of_pod(old) if old else None
        if job:
            self._pods_by_job[(key[0], job)].discard(key[1])

    def pods_of_job(self, job: Key) -> list[Body]:
        names = self._pods_by_job.get(job, set())
        return [self.pods[(job[0], n)] for n in names if (job[0], n) in self.pods]

    # --- by kind, for events and resyncs

    def put(self, kind: str, body: Body) -> bool:
        return {
            "requests": self.put_request,
            "pools": self.put_pool,
            "jobs": self.put_job,
            "pods": self.put_pod,
        }[kind](body)

    def drop(self, kind: str, key: Key) -> None:
        {
            "requests": self.drop_request,
            "pools": self.drop_pool,
            "jobs": self.drop_job,
            "pods": self.drop_pod,
        }[kind](key)

    def keys(self, kind: str) -> list[Key]:
        store: dict[Key, Body] = getattr(self, kind)
        return list(store)


def _pool(body: Body) -> str:
    return str(body.get("spec", {}).get("pool") or "default")


def _job_of_pod(body: Body) -> str | None:
    labels = body["metadata"].get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if name:
        return str(name)
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return str(ref["name"])
    return None


def request_of(body: Body) -> str | None:
    """The PermitRequest a Job or pod works for, from its label."""
    value = (body["metadata"].get("labels") or {}).get(LABEL_REQUEST)
    return str(value) if value else None
