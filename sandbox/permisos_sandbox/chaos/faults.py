"""The fault schedule of `make chaos` (issue #16): every kind of fault, several times, at moments
drawn from one seeded `random.Random`, against a running `Platform`.

Four lanes run side by side, each on its own stream drawn from the seed (so a seed repeats its
schedule): the active operator replica killed every 10-20 s; the cluster's and the database's
faults one at a time (each waits for the part it hit to come back, so they do not pile up into
an outage no platform survives); the portal's one at a time; Stripe's webhooks' one at a
time. Every fault undoes itself in `finally`, also when the run is cancelled, and the run ends
by waiting until the platform is whole again (`recovery.whole`).

    injections = await run_faults(platform, random.Random(seed), time.time() + 600)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from permisos.kube import KubeError
from permisos_sandbox.platform import Platform

from .faults_cluster import ClusterFaults
from .faults_services import ServiceFaults
from .recovery import NotWhole, Skipped, whole

OPERATOR_LANE = ("operator-leader-kill",)
CLUSTER_LANE = (
    "runner-pod-delete",
    "node-agent-restart",
    "apiserver-down",
    "etcd-restart",
    "postgres-down",
    "api-replica-kill",
)
PORTAL_LANE = (
    "portal-errors",
    "portal-maintenance",
    "portal-slow-download",
    "portal-session-expiry",
)
WEBHOOK_LANE = ("webhooks-delayed", "webhooks-duplicated", "webhooks-reordered", "webhook-lost")
LANES = (OPERATOR_LANE, CLUSTER_LANE, PORTAL_LANE, WEBHOOK_LANE)
FAULT_KINDS: tuple[str, ...] = sum(LANES, ())

# How long each fault is held (seconds): the figures where it gives them. For
# runner-pod-delete, how long to wait for a runner pod to be running; for webhook-lost, for a
# payment whose webhook to lose.
HOLDS: dict[str, float] = {
    "operator-leader-kill": 0,
    "runner-pod-delete": 30,
    "node-agent-restart": 0,
    "apiserver-down": 60,
    "etcd-restart": 0,
    "postgres-down": 30,
    "api-replica-kill": 0,
    "portal-errors": 30,
    # Long enough for the pool's attempts to meet it failureThreshold times in a row: the
    # circuit opens, and a probe closes it once the portal is back.
    "portal-maintenance": 90,
    "portal-slow-download": 30,
    "portal-session-expiry": 15,
    "webhooks-delayed": 30,
    "webhooks-duplicated": 30,
    "webhooks-reordered": 30,
    "webhook-lost": 60,
}
# About how long a part takes to come back after its fault: a fault starts only if its hold
# and this fit before the run's end.
COMEBACK: dict[str, float] = {
    "operator-leader-kill": 15,
    "node-agent-restart": 45,
    "apiserver-down": 30,
    "etcd-restart": 20,
    "postgres-down": 10,
    "api-replica-kill": 20,
}
LEADER_KILL_EVERY = (10.0, 20.0)
GAP = (3.0, 10.0)  # seconds between two faults of one lane
# The portal's lane rests longer: with the cluster's gaps the portal was broken 95% of the run,
# the pool's circuit stayed open (its cool-down doubling at each failed probe) and the queue
# could not drain. Up about as long as it is down, the portal still gets each fault 3 times.
PORTAL_GAP = (15.0, 30.0)


@dataclass(frozen=True)
class Injection:
    kind: str
    started: float  # time.time() when the fault began
    # time.time() when it was undone; for a kill, when the killed part was back (the standby
    # leading, the container ready again)
    ended: float
    detail: str  # which pod, process, event; never personal data


Fault = Callable[[random.Random, float], Awaitable[str]]


async def run_faults(
    platform: Platform,
    rng: random.Random,
    until: float,
    *,
    kinds: Sequence[str] = FAULT_KINDS,
    log: Callable[[str], None] = print,
    holds: Mapping[str, float] | None = None,
) -> list[Injection]:
    """Injects faults at random moments (from rng) until time.time() >= until, each kind several
    times; undoes every fault before returning (the platform is whole again); returns what it
    did. `holds` overrides `HOLDS` (a short run in tests). Raises NotWhole, whose `injections`
    are what it did, if a part did not come back (the other faults are undone first)."""
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds: {unknown}; known: {FAULT_KINDS}")
    cluster, services = ClusterFaults(platform, log), ServiceFaults(platform, log)
    faults: dict[str, Fault] = {
        kind: getattr(cluster, _method(kind), None) or getattr(services, _method(kind))
        for kind in FAULT_KINDS
    }
    held = {**HOLDS, **(holds or {})}
    if platform.postgres is None and "postgres-down" in kinds:
        log("[chaos] postgres-down left out: the platform uses a database it did not start")
        kinds = [k for k in kinds if k != "postgres-down"]
    began = time.time()
    done: list[Injection] = []

    async def inject(kind: str, lane_rng: random.Random) -> Injection | None:
        started = time.time()
        try:
            detail = await faults[kind](lane_rng, held[kind])
        except (Skipped, KubeError, ProcessLookupError) as why:
            # Nothing was hit (nothing to hit, or it went away first): not an injection.
            log(f"[chaos {started - began:6.1f}s] {kind}: skipped ({why})")
            return None
        except Exception as error:
            log(f"[chaos {started - began:6.1f}s] {kind}: FAILED ({error!r})")
            raise
        ended = time.time()
        started = cluster.hit_at.pop(kind, started)  # a kill begins when it hits
        done.append(Injection(kind, started, ended, detail))
        log(f"[chaos {started - began:6.1f}s] {kind} ({ended - started:.1f} s): {detail}")
        return done[-1]

    def fits(kind: str) -> bool:
        return time.time() + held[kind] + COMEBACK.get(kind, 2.0) < until

    async def leader_kills(lane_rng: random.Random) -> None:
        # 10-20 s from one kill to the next, the takeover included: one that takes longer
        # than the draw is followed by the next kill at once.
        last = time.time()
        while True:
            due = last + lane_rng.uniform(*LEADER_KILL_EVERY)
            if not fits("operator-leader-kill") or due >= until:
                return
            await asyncio.sleep(max(0.0, due - time.time()))
            killed = await inject("operator-leader-kill", lane_rng)
            last = killed.started if killed else time.time()

    async def one_at_a_time(lane: list[str], lane_rng: random.Random) -> None:
        rotation: list[str] = []
        gap = PORTAL_GAP if set(lane) <= set(PORTAL_LANE) else GAP
        while True:
            await asyncio.sleep(lane_rng.uniform(*gap))
            if not rotation:
                # Every kind once before any twice, in an order of the seed's.
                rotation = lane_rng.sample(lane, len(lane))
            kind = next((k for k in rotation if fits(k)), None)
            if kind is None:
                return
            rotation.remove(kind)
            await inject(kind, lane_rng)

    lanes = [[k for k in lane if k in kinds] for lane in LANES]
    # One stream per lane, drawn in a fixed order: a lane's draws do not depend on the others'.
    streams = [random.Random(rng.random()) for _ in lanes]  # noqa: S311 (a schedule)
    try:
        async with asyncio.TaskGroup() as group:
            if lanes[0]:
                group.create_task(leader_kills(streams[0]))
            for lane, stream in zip(lanes[1:], streams[1:], strict=True):
                if lane:
                    group.create_task(one_at_a_time(lane, stream))
    except* Exception as failed:
        # A part that did not come back (the other lanes were cancelled and undid theirs).
        first = failed.exceptions[0]
        error = NotWhole(f"{type(first).__name__}: {first}")
        error.injections = done
        raise error from first
    try:
        log(f"[chaos {time.time() - began:6.1f}s] {await whole(platform)}")
    except NotWhole as error:
        error.injections = done
        raise
    return done


def _method(kind: str) -> str:
    return kind.replace("-", "_")
