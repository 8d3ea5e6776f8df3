"""Reads what a runner Job and its pod say about an attempt, from their raw API objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from permisos.attempt_result import EXIT_CODES, AttemptResult
from permisos.redact import redact
from permisos_operator.timeutil import parse_time

RUNNER_CONTAINER = "runner"


@dataclass(frozen=True)
class JobObservation:
    """One attempt's Job, with what its pod reported."""

    name: str
    created_at: datetime
    deleting: bool
    finished: bool
    finished_at: datetime | None  # when the Job reached Complete or Failed
    failed_reason: str | None  # the Job's Failed condition reason, e.g. DeadlineExceeded
    started: bool  # a pod got past Pending
    waiting_reason: str | None  # e.g. ImagePullBackOff
    waiting_message: str | None
    terminated: bool  # the runner container's terminated state has been seen
    exit_code: int | None
    termination_message: str | None
    # Each pod's start (the kubelet took it) and its runner's end (None while it runs).
    pod_spans: tuple[tuple[datetime, datetime | None], ...] = ()

    def runner_seconds(self, now: datetime) -> float:
        """Runner pod seconds so far: what the attempt cost, whole seconds as the API keeps
        time; a pod still running (or deleted before it ended) counts until `now`."""
        spent = sum(
            (max((end or now) - start, timedelta(0)) for start, end in self.pod_spans),
            timedelta(0),
        )
        return spent.total_seconds()


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def observe_job(job: dict[str, Any], pods: Iterable[dict[str, Any]]) -> JobObservation:
    status = job.get("status", {})
    complete = _condition(job, "Complete")
    failed = _condition(job, "Failed")
    started = bool(status.get("active") and status.get("ready")) or bool(complete or failed)
    waiting_reason = waiting_message = termination = None
    exit_code = None
    terminated = False
    spans: list[tuple[datetime, datetime | None]] = []
    # The newest pod speaks for the attempt (backoffLimit 0 means there is normally one).
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")):
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase != "Pending":
            started = True
        pod_start = pod.get("status", {}).get("startTime")
        ended_at = None
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            if cs.get("name") != RUNNER_CONTAINER:
                continue
            state = cs.get("state", {})
            if "running" in state:
                started = True
            if "waiting" in state:
                waiting_reason = state["waiting"].get("reason")
                waiting_message = state["waiting"].get("message")
            if "terminated" in state:
                started = terminated = True
                exit_code = state["terminated"].get("exitCode")
                termination = state["terminated"].get("message")
                finished = state["terminated"].get("finishedAt")
                ended_at = parse_time(finished) if finished else None
        if pod_start:
            spans.append((parse_time(pod_start), ended_at))
    ended = complete or failed
    return JobObservation(
        name=job["metadata"]["name"],
        created_at=parse_time(job["metadata"]["creationTimestamp"]),
        deleting=bool(job["metadata"].get("deletionTimestamp")),
        finished=bool(complete or failed or status.get("succeeded") or status.get("failed")),
        finished_at=parse_time(ended["lastTransitionTime"])
        if ended and ended.get("lastTransitionTime")
        else None,
        failed_reason=failed.get("reason") if failed else None,
        started=started,
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        terminated=terminated,
        exit_code=exit_code,
        termination_message=termination,
        pod_spans=tuple(spans),
    )


@dataclass(frozen=True)
class AttemptVerdict:
    """How a finished attempt ended, as the operator understands it."""

    outcome: str  # succeeded | retryable | permanent
    reason: str
    message: str
    result: AttemptResult | None = None


def judge(job: JobObservation) -> AttemptVerdict:
    """Classifies a finished attempt from its termination message (and the Job's own verdict)."""
    if not job.termination_message:
        if job.failed_reason == "DeadlineExceeded":
            return AttemptVerdict(
                "retryable", "DeadlineExceeded", "the attempt ran past its deadline"
            )
        return AttemptVerdict(
            "retryable",
            "InvalidResult",
            f"the runner left no termination message (exit code {job.exit_code})",
        )
    try:
        result = AttemptResult.model_validate_json(job.termination_message)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        return AttemptVerdict(
            "retryable", "InvalidResult", f"unreadable result ({where}: {first['msg']})"
        )
    if job.exit_code is not None and job.exit_code != EXIT_CODES[result.outcome]:
        return AttemptVerdict(
            "retryable",
            "InvalidResult",
            f"exit code {job.exit_code} contradicts outcome {result.outcome}",
        )
    return AttemptVerdict(result.outcome, result.reason, redact(result.message), result)
