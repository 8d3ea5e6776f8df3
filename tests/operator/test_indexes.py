"""What the operator's indexes answer, from the objects Kopf would have indexed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from permisos_operator.indexes import Indexes, entry_of, job_of

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def stamp(seconds_ago: int) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def request(name: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "creationTimestamp": stamp(600)}
    return {"metadata": meta, "spec": {"pool": "default"}, "status": {"phase": "Running"}}


def job(name: str, seconds_ago: int) -> dict[str, Any]:
    return job_of(
        {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": stamp(seconds_ago)}}
    )


def test_the_recent_starts_are_the_pools_attempt_and_probe_jobs_of_the_last_minute() -> None:
    """A newly active replica counts the rate limit's last minute from the Jobs any replica
    created, not from zero."""
    indexes = Indexes(
        requests={},
        requests_by_pool={("ns", "default"): [entry_of(request("a")), entry_of(request("b"))]},
        running_by_pool={},
        jobs_by_request={
            ("ns", "a"): [job("a-a1", 90), job("a-a2", 20)],
            ("ns", "b"): [job("b-a1", 50)],
            ("ns", "other-pools-request"): [job("c-a1", 5)],
        },
        pods_by_job={},
        pools={},
        probes_by_pool={("ns", "default"): [job("default-probe-1", 40)]},
    )
    found = indexes.started_since("ns", "default", NOW - timedelta(minutes=1))
    assert found == [NOW - timedelta(seconds=s) for s in (50, 40, 20)]
    assert indexes.started_since("ns", "elsewhere", NOW - timedelta(minutes=1)) == []
