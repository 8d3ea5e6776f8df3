"""The PermitRequest state machine, as pure functions of what exists now.

Nothing here talks to the API: given a request, its current attempt's Job and its pool, `decide`
says what the status should become and what to do about Jobs. The controller applies the step
and calls again when anything changes, so the same inputs always lead to the same step
(level-triggered), and a crash between two steps is repaired by the next call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from permisos.resources import (
    TERMINAL_PHASES,
    AttemptRecord,
    PermitRequestSpec,
    PermitRequestStatus,
    PermitResult,
    Phase,
    RunnerPoolSpec,
)
from permisos_operator.circuit import CHANGED, UNAVAILABLE
from permisos_operator.conditions import phase_conditions, set_condition
from permisos_operator.observe import AttemptVerdict, JobObservation, judge

# Transitions that are bad news are Warning Events; the rest are Normal.
WARNING_PHASES: frozenset[Phase] = frozenset({"Retrying", "Failed", "Pending"})
# How often a request waiting on something with no event of its own is looked at again.
RECHECK = timedelta(seconds=30)
# Failures of the portal, not of the request: not charged against maxAttempts (as a Job's
# podFailurePolicy ignores disruptions). The pool's circuit breaker and the portal's holds stop
# attempts while they last, so no request ends Failed because the portal was down.
UNCHARGED = UNAVAILABLE | {CHANGED, "RateLimited"}
# Beyond its deadline the Job controller should have killed a Job; past this margin the operator
# gives the attempt up itself, so a lost Job controller cannot hang a request forever.
DEADLINE_GRACE = timedelta(seconds=60)
# Jobs and pods arrive on separate watches: a finished Job may be seen before its pod's final
# state. Its result is awaited this long before the attempt counts as having left none.
RESULT_GRACE = timedelta(seconds=15)


@dataclass(frozen=True)
class Transition:
    old: Phase | None
    new: Phase
    reason: str
    message: str

    @property
    def event_type(self) -> str:
        return "Warning" if self.new in WARNING_PHASES else "Normal"


@dataclass
class Step:
    """What reconciling one request should do now."""

    status: PermitRequestStatus | None = None  # the status to write; None keeps it
    transition: Transition | None = None
    create_job: str | None = None
    delete_job: str | None = None
    verdict: AttemptVerdict | None = None  # a finished attempt, for metrics
    requeue_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int
    backoff_seconds: int
    max_backoff_seconds: int

    def delay(self, finished_attempts: int) -> timedelta:
        """Capped exponential backoff: base, 2 x base, 4 x base, and so on up to the cap."""
        seconds = self.backoff_seconds * 2 ** max(0, finished_attempts - 1)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


def retry_settings(spec: PermitRequestSpec, pool: RunnerPoolSpec) -> RetrySettings:
    own = spec.retry_policy
    base = pool.retry_policy
    return RetrySettings(
        max_attempts=(own and own.max_attempts) or base.max_attempts,
        backoff_seconds=(own and own.backoff_seconds) or base.backoff_seconds,
        max_backoff_seconds=(own and own.max_backoff_seconds) or base.max_backoff_seconds,
    )


def job_name(request: str, attempt: int) -> str:
    return f"{request}-a{attempt}"


# The Admitted condition each phase implies (a None reason: the transition's own). A Queued
# request's reason is PoolFull until its pool says more (the portal's gates).
ADMITTED: dict[str, tuple[str, str | None]] = {
    "Pending": ("False", None),
    "Queued": ("False", "PoolFull"),
    "Retrying": ("False", "BackingOff"),
    "Running": ("True", "Admitted"),
}


def transition(
    status: PermitRequestStatus,
    new: Phase,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> tuple[PermitRequestStatus, Transition]:
    """The status after entering `new`, with its conditions and timestamps."""
    updated = status.model_copy(deep=True)
    old = status.phase
    updated.phase = new
    updated.observed_generation = generation
    updated.conditions = phase_conditions(status.conditions, new, reason, message, generation, now)
    admitted = ADMITTED.get(new)
    if admitted is not None:
        value, why = admitted
        updated.conditions = set_condition(
            updated.conditions, "Admitted", value, why or reason, message, generation, now
        )
    updated.queue_position = updated.estimated_start_at = None  # the pool's daemon sets them
    if new == "Queued":
        updated.queued_at = now
        updated.next_attempt_at = None
    if new in TERMINAL_PHASES:
        updated.completed_at = now
        updated.current_job = None
        updated.next_attempt_at = None
    return updated, Transition(old, new, reason, message)


def admit(
    name: str, status: PermitRequestStatus, generation: int | None, now: datetime
) -> tuple[PermitRequestStatus, Transition, str]:
    """Queued → Running: the next attempt gets a Job. Called by the pool's admission loop."""
    attempt = status.attempts + 1
    job = job_name(name, attempt)
    updated, change = transition(
        status, "Running", "JobCreated", f"attempt {attempt} runs as Job {job}", generation, now
    )
    updated.attempts = attempt
    updated.current_job = job
    updated.started_at = status.started_at or now
    return updated, change, job


def decide(
    name: str,
    generation: int | None,
    spec: PermitRequestSpec,
    status: PermitRequestStatus,
    job: JobObservation | None,
    pool: RunnerPoolSpec | None,
    now: datetime,
) -> Step:
    """The next step for one request. Admission (Queued → Running) is the pool's to decide."""
    phase = status.phase
    if phase in TERMINAL_PHASES:
        return Step()

    if spec.cancel:
        new, change = transition(
            status, "Cancelled", "Cancelled", "cancelled by spec.cancel", generation, now
        )
        if job is not None and job.name == status.current_job:  # what the stopped attempt cost
            new.runner_seconds = (status.runner_seconds or 0) + job.runner_seconds(now)
        return Step(status=new, transition=change, delete_job=status.current_job)

    # Waiting (in line or backing off) for a pool that is not there: waiting for a pool.
    if phase in (None, "Pending", "Queued", "Retrying") and pool is None:
        if phase == "Pending":
            return Step(requeue_at=now + RECHECK)
        new, change = transition(
            status,
            "Pending",
            "PoolNotFound",
            f"RunnerPool {spec.pool} does not exist",
            generation,
            now,
        )
        return Step(status=new, transition=change)

    if phase in (None, "Pending"):
        new, change = transition(
            status, "Queued", "Queued", f"waiting for a runner in pool {spec.pool}", generation, now
        )
        return Step(status=new, transition=change)

    if phase == "Retrying":
        due = status.next_attempt_at
        if due is not None and due > now:
            return Step(requeue_at=due)
        new, change = transition(
            status,
            "Queued",
            "BackoffElapsed",
            f"attempt {status.attempts + 1} waits for a runner",
            generation,
            now,
        )
        return Step(status=new, transition=change)

    if phase == "Running":
        return _running(name, generation, spec, status, job, pool, now)

    return Step()  # Queued: the admission loop moves it


def _running(
    name: str,
    generation: int | None,
    spec: PermitRequestSpec,
    status: PermitRequestStatus,
    job: JobObservation | None,
    pool: RunnerPoolSpec | None,
    now: datetime,
) -> Step:
    current = status.current_job or job_name(name, status.attempts)
    if job is None or job.name != current:
        # Admitted but the Job is not there (a crash after the status write, or it was
        # removed): creating it is idempotent, since the name is fixed by the attempt number.
        if pool is None:
            return Step(requeue_at=now + RECHECK)
        return Step(create_job=current, requeue_at=now + RECHECK)

    if job.finished:
        if not job.terminated:
            since = job.finished_at or job.created_at
            if now < since + RESULT_GRACE:
                return Step(requeue_at=since + RESULT_GRACE)
        return finish(name, generation, spec, status, pool, judge(job), job, now)

    if pool is None:
        return Step(requeue_at=now + RECHECK)
    age = now - job.created_at
    if not job.started:
        limit = timedelta(seconds=pool.start_timeout_seconds)
        if age >= limit:
            why = job.waiting_reason or "Unschedulable"
            detail = f": {job.waiting_message}" if job.waiting_message else ""
            verdict = AttemptVerdict(
                "retryable",
                "StartTimeout",
                f"pod did not start within {pool.start_timeout_seconds}s ({why}{detail})",
            )
            step = finish(name, generation, spec, status, pool, verdict, job, now)
            step.delete_job = job.name
            return step
        return Step(requeue_at=job.created_at + limit)
    deadline = timedelta(seconds=pool.active_deadline_seconds) + DEADLINE_GRACE
    if age >= deadline:
        verdict = AttemptVerdict("retryable", "DeadlineExceeded", "the attempt ran too long")
        step = finish(name, generation, spec, status, pool, verdict, job, now)
        step.delete_job = job.name
        return step
    return Step(requeue_at=job.created_at + deadline)


def finish(
    name: str,
    generation: int | None,
    spec: PermitRequestSpec,
    status: PermitRequestStatus,
    pool: RunnerPoolSpec | None,
    verdict: AttemptVerdict,
    job: JobObservation,
    now: datetime,
) -> Step:
    """Records a finished attempt and moves on: Succeeded, Retrying or Failed."""
    spent = job.runner_seconds(now)
    total = (status.runner_seconds or 0) + spent
    record = AttemptRecord(
        number=max(status.attempts, 1),
        job=status.current_job or job_name(name, status.attempts),
        outcome=verdict.outcome,
        reason=verdict.reason,
        message=verdict.message,
        finished_at=now,
        runner_seconds=spent,
        evidence=verdict.result.evidence if verdict.result is not None else [],
    )
    if verdict.outcome == "succeeded" and verdict.result is not None:
        new, change = transition(
            status,
            "Succeeded",
            "PermitIssued",
            f"folio {verdict.result.folio} issued on attempt {record.number}",
            generation,
            now,
        )
        new.result = PermitResult(
            folio=verdict.result.folio or "",
            artifacts=verdict.result.artifacts,
            runner_seconds=total,
        )
    elif verdict.outcome == "permanent":
        new, change = transition(
            status, "Failed", verdict.reason, verdict.message or verdict.reason, generation, now
        )
    else:
        retry = retry_settings(spec, pool or RunnerPoolSpec())
        portal = status.portal_attempts + (verdict.reason in UNCHARGED)
        charged = status.attempts - portal
        if charged >= retry.max_attempts:
            new, change = transition(
                status,
                "Failed",
                "AttemptsExhausted",
                f"{charged} attempts failed; last: {verdict.reason}: {verdict.message}",
                generation,
                now,
            )
        else:
            due = now + retry.delay(max(charged, 1))
            new, change = transition(
                status,
                "Retrying",
                verdict.reason,
                f"attempt {record.number} failed ({verdict.message or verdict.reason}); "
                f"next attempt at {due.isoformat()}",
                generation,
                now,
            )
            new.current_job = None
            new.next_attempt_at = due
        new.portal_attempts = portal
    new.last_attempt = record
    new.runner_seconds = total
    step = Step(status=new, transition=change, verdict=verdict)
    if new.next_attempt_at is not None:
        step.requeue_at = new.next_attempt_at
    return step
