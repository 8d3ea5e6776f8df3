"""The probes of a pool's circuit breaker: a runner Job in probe mode, created once the open
circuit's cool-down is over, and read when it ends (see `circuit` for what follows)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from permisos_operator.circuit import CHANGED, after_probe, probing
from permisos_operator.context import Context
from permisos_operator.indexes import Key
from permisos_operator.jobs import probe_manifest
from permisos_operator.lifecycle import RESULT_GRACE
from permisos_operator.observe import judge, observe_job
from permisos_operator.portal_gate import probe_may_start
from permisos_operator.timeutil import utcnow

log = logging.getLogger("permisos.operator")

# A probe Job the watches have not shown this long after it was due is taken as failed.
LOST_AFTER = timedelta(seconds=60)


def probe_name(pool: str, now: datetime) -> str:
    """Unique per probe, within a label value's 63 characters."""
    return f"{pool[:36].rstrip('-')}-probe-{now:%Y%m%d%H%M%S}"


async def tend(ctx: Context, pool: Key) -> None:
    """Starts the probe that is due, or reads the one that ended."""
    known = ctx.known.pool(*pool)
    if known is None or known.spec is None:
        return
    spec, memory, now = known.spec, ctx.portal(pool), utcnow()
    breaker = spec.portal.circuit_breaker
    circuit = memory.circuit
    if circuit.probe is not None:
        job = ctx.known.probe(pool[0], pool[1], circuit.probe)
        if job is None:
            due = circuit.next_probe_at or now
            if now - due > LOST_AFTER:
                memory.circuit = after_probe(
                    circuit, breaker, spec.replicas, False, "ProbeLost", now
                )
                log.warning(
                    "probe %s lost; circuit open again", circuit.probe, extra={"pool": pool[1]}
                )
            return
        seen = observe_job(job, ctx.known.pods(pool[0], circuit.probe))
        if not seen.finished:
            return  # its own deadline ends it if the portal never answers
        if not seen.terminated and now < (seen.finished_at or seen.created_at) + RESULT_GRACE:
            return  # its pod's termination message is on its way
        verdict = judge(seen)
        healthy = verdict.outcome == "succeeded"
        outcome = (
            "healthy" if healthy else "changed" if verdict.reason == CHANGED else "unavailable"
        )
        ctx.metrics.probes.labels(outcome).inc()
        memory.circuit = after_probe(circuit, breaker, spec.replicas, healthy, verdict.reason, now)
        log.info(
            "probe %s: %s; circuit %s",
            circuit.probe,
            verdict.reason,
            memory.circuit.state,
            extra={"pool": pool[1], "reason": verdict.reason},
        )
        return
    if probe_may_start(spec, memory.started, memory.hold, circuit, now):
        name = probe_name(pool[1], now)
        manifest = probe_manifest(
            name=name,
            namespace=pool[0],
            pool_name=pool[1],
            pool_uid=str(known.ref["metadata"].get("uid") or ""),
            pool=spec,
            settings=ctx.settings,
        )
        await ctx.writer.create_job(manifest)
        memory.circuit = probing(memory.circuit, name)
        memory.note_start(now)  # the portal counts a probe's sign-in like an attempt's
        log.info("probing the portal with %s", name, extra={"pool": pool[1]})
