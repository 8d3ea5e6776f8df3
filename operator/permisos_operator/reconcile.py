"""Reconciling one PermitRequest: from what the indexes show, `lifecycle.decide` says the next
step, and this module applies it (status, Jobs, Events, metrics).

Every path that acts on a request (its own events, its Job's and pod's, its pool's admission and
rechecks) holds the request's lock, so two of them never decide on the same request at once. A
decision taken from a view the watches have not yet refreshed fails its status write with 409
(the resourceVersion it carries) and is taken again when the newer object arrives.

A step into the queue is not written here: the request's pool decides (`admission.enqueue`)
whether it waits in line or, when it is among the first the pool has room for, starts at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from permisos.resources import (
    TERMINAL_PHASES,
    PermitRequestSpec,
    PermitRequestStatus,
    RunnerPoolSpec,
)
from permisos_operator import events
from permisos_operator.circuit import after_attempt
from permisos_operator.context import Context
from permisos_operator.indexes import Body, pool_name
from permisos_operator.jobs import job_manifest
from permisos_operator.kube import Conflict, Gone
from permisos_operator.lifecycle import Step, Transition, decide, job_name, transition
from permisos_operator.observe import JobObservation, observe_job
from permisos_operator.portal_gate import hold_from
from permisos_operator.timeutil import parse_time, utcnow

log = logging.getLogger("permisos.operator")


@dataclass(frozen=True)
class Decision:
    """A request as seen now, and its next step."""

    body: Body
    spec: PermitRequestSpec
    status: PermitRequestStatus
    pool: RunnerPoolSpec | None
    step: Step

    @property
    def queues(self) -> bool:
        return self.step.transition is not None and self.step.transition.new == "Queued"


async def reconcile(ctx: Context, namespace: str, name: str) -> bool:
    """Reconciles the request; True when its next step is into its pool's queue (the caller
    hands it to `admission.enqueue`, outside this request's lock)."""
    started = time.perf_counter()
    try:
        async with ctx.locks.hold((namespace, name)):
            body = ctx.known.request(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return False
            decision = await decide_now(ctx, body)
            if decision is None or decision.queues:
                return decision is not None
            await apply(ctx, decision)
    except (Conflict, Gone):
        pass  # a newer object (or its deletion) is on its way through the watch
    except Exception:
        ctx.metrics.api_errors.labels("reconcile").inc()
        log.exception("reconcile failed", extra={"permitrequest": name})
    finally:
        ctx.metrics.reconcile.observe(time.perf_counter() - started)
    return False


def pool_spec(ctx: Context, namespace: str, name: str) -> RunnerPoolSpec | None:
    """The pool's spec; None when it does not exist (or is invalid, or going away)."""
    pool = ctx.known.pool(namespace, name)
    return pool.spec if pool is not None else None


def observe(ctx: Context, namespace: str, request: str, job: str) -> JobObservation | None:
    found = ctx.known.job(namespace, request, job)
    if found is None:
        return None
    return observe_job(found, ctx.known.pods(namespace, job))


async def decide_now(ctx: Context, body: Body) -> Decision | None:
    """The request's next step from the indexes (None when its spec is invalid: it has just
    been failed for that)."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = PermitRequestStatus.model_validate(body.get("status") or {})
    try:
        spec = PermitRequestSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        if status.phase not in TERMINAL_PHASES:
            message = str(error.errors()[0]["msg"])
            new, change = transition(
                status, "Failed", "InvalidSpec", message, meta.get("generation"), utcnow()
            )
            await write(ctx, body, status, new, change)
        return None
    current = status.current_job or (job_name(name, status.attempts) if status.attempts else "")
    pool = pool_spec(ctx, namespace, spec.pool)
    step = decide(
        name,
        meta.get("generation"),
        spec,
        status,
        observe(ctx, namespace, name, current) if current else None,
        pool,
        utcnow(),
    )
    if step.requeue_at is None:
        ctx.due.pop((namespace, name), None)
    else:
        ctx.due[(namespace, name)] = (step.requeue_at, int(meta.get("resourceVersion") or 0))
    return Decision(body, spec, status, pool, step)


async def apply(ctx: Context, decision: Decision) -> None:
    body, spec, status, pool, step = (
        decision.body,
        decision.spec,
        decision.status,
        decision.pool,
        decision.step,
    )
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if step.delete_job:
        # First the Job, then the status: a crash in between re-decides from a Job that is
        # gone, and never leaves a browser running for an attempt that was given up.
        await ctx.writer.delete_job(namespace, step.delete_job)
    if step.status is not None and step.transition is not None:
        await write(ctx, body, status, step.status, step.transition)
    if step.verdict is not None:
        ctx.metrics.attempts.labels(
            step.verdict.outcome, ctx.metrics.reason_label(step.verdict.reason)
        ).inc()
        result = step.verdict.result
        if result is not None:
            ctx.metrics.observe_steps(step.verdict.outcome, result.timings)
            if result.timings.get("total"):  # what the queue's estimates are made of
                ctx.portal((namespace, spec.pool)).durations.append(result.timings["total"])
            # The portal asked the pool to wait (429, maintenance): no attempt starts meanwhile.
            hold = hold_from(result.reason, result.retry_after_seconds, utcnow())
            if hold is not None:
                ctx.portal((namespace, spec.pool)).note_hold(hold)
                ctx.wake((namespace, spec.pool)).set()
        if pool is not None:  # the circuit breaker counts what the attempt said of the portal
            memory = ctx.portal((namespace, spec.pool))
            memory.circuit = after_attempt(
                memory.circuit,
                pool.portal.circuit_breaker,
                pool.replicas,
                step.verdict.outcome,
                step.verdict.reason,
                utcnow(),
            )
            ctx.wake((namespace, spec.pool)).set()
    if step.create_job and pool is not None:
        # Admitted, and the indexes show no Job. Its admission creates it: only when that is
        # long past (the operator died in between) and the request is still as seen here is it
        # made again. A Job is no status write, which a stale view could not make: the Job
        # may have been deleted by a decision whose status the indexes do not show yet, or the
        # request itself while this replica was paused.
        recent = ctx.admissions.of((namespace, spec.pool))
        if name not in recent and await ctx.writer.is_current(
            namespace, name, meta["resourceVersion"]
        ):
            await create_job(ctx, body, spec, pool, step.create_job, status.attempts)


async def write(
    ctx: Context,
    body: Body,
    old: PermitRequestStatus,
    new: PermitRequestStatus,
    change: Transition,
) -> Body:
    """Writes a transition: the status, then its log line, metrics and Event."""
    meta = body["metadata"]
    name = meta["name"]
    updated = await ctx.writer.write_status(
        meta["namespace"], name, meta["resourceVersion"], body.get("status") or {}, new.wire()
    )
    ctx.written[(meta["namespace"], name)] = str(updated["metadata"]["resourceVersion"])
    ctx.metrics.transitions.labels(change.new).inc()
    log.info(
        "phase %s -> %s (%s)",
        change.old or "Pending",
        change.new,
        change.reason,
        extra={
            "permitrequest": name,
            "attempt": new.attempts,
            "phase": change.new,
            "reason": change.reason,
        },
    )
    paid = (body.get("spec") or {}).get("paidAt")
    if change.new == "Succeeded" and paid:
        ctx.metrics.payment_to_permit.observe(_since(parse_time(paid)))
    if change.new in TERMINAL_PHASES and new.attempts:  # what a request that ran has cost
        ctx.metrics.permit_runner_seconds.labels(change.new).observe(new.runner_seconds or 0)
    events.transition(body, change)
    # Any transition may free or claim a runner, or queue a request: the pool looks again.
    ctx.wake((meta["namespace"], pool_name(body))).set()
    return updated


async def create_job(
    ctx: Context,
    body: Body,
    spec: PermitRequestSpec,
    pool: RunnerPoolSpec,
    job: str,
    attempt: int,
) -> None:
    meta = body["metadata"]
    manifest = job_manifest(
        name=job,
        namespace=meta["namespace"],
        request=meta["name"],
        request_uid=meta["uid"],
        attempt=attempt,
        spec=spec,
        pool=pool,
        settings=ctx.settings,
    )
    created = await ctx.writer.create_job(manifest)
    if created is not None and attempt == 1:
        ctx.metrics.job_start_delay.observe(_since(parse_time(meta["creationTimestamp"])))


def _since(moment: datetime) -> float:
    return max(0.0, (utcnow() - moment).total_seconds())
