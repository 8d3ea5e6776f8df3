"""Operator benchmark: creation-to-Job latency, Jobs per second, API calls per admitted request
and resident memory, ours beside a bare Kopf operator.

    .venv/bin/python bench/operator_throughput.py [--requests 500] [--memory-requests 5000]
                                                  [--profile]

Prints figures; asserts nothing about them. One real control plane for the whole run (etcd,
kube-apiserver and the controllers, the Job controller off: no pods follow the Jobs) with the
project's CRDs. Each phase has a namespace of its own, and each operator watches only that
namespace as a ServiceAccount of its own, so the apiserver's audit log tells their calls apart.
Each phase is bounded by --timeout seconds:

1. throughput/baseline  `bench/baseline_operator.py`, a bare Kopf operator that only creates one
                        Job per PermitRequest (the very Job ours makes, so the apiserver does the
                        same work for Jobs); N PermitRequests created at once (--concurrency
                        creates in flight); per request, the time from its create returning to
                        its first Job arriving on a batch/v1 Job watch; Jobs/s = N / (first
                        create sent -> N-th Job seen); its API calls from the audit log.
2. throughput/ours      the same with `python -m permisos_operator` (standalone), its RunnerPool
                        with room for every request, so admission never limits the figures.
3. memory/baseline      M PermitRequests; once it created a Job for each, its RSS (and its
                        children's).
4. memory/ours          RunnerPool at replicas 0, M PermitRequests; once its metrics report all M
                        queued, its RSS.

The baseline goes first in each pair, so ours meets the fuller apiserver. Writes the figures to
bench/results/operator_throughput.json and the processes' logs to bench/results/logs/; with
--profile, ours runs under cProfile and the top entries of its profile are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # the bench folder is not a package
    ROOT,
    Api,
    BenchError,
    Child,
    Children,
    JobWatch,
    control_plane_cpu_seconds,
    free_port,
    group_path,
    metric_value,
    percentile,
    permit_request,
    pool_maximum,
    runner_pool,
    start_control_plane,
    wait_for,
    wait_progress,
)

from permisos.resources import GROUP
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.accounts import (
    AccountRules,
    make_account,
    operator_rules,
    rbac_rules,
)

RESULTS = ROOT / "bench" / "results"
# Verbs that change something (the rest read).
WRITES = ("create", "update", "patch", "delete", "deletecollection")
LOGS = RESULTS / "logs"
BASELINE = ROOT / "bench" / "baseline_operator.py"
WARMUP = "warmup"
MIB = 1024 * 1024
# Both operators log at this level (--log-level); WARNING keeps logging out of the figures.
LOG_LEVEL = {"level": "WARNING"}
# A phase gives up when it sees no progress for this long (--stall).
STALL = {"seconds": 120.0}
# With --profile, our operator runs under cProfile; its profile lands beside its log.
PROFILE = {"on": False}


# --- the two operators -------------------------------------------------------------------------


class Operator:
    """An operator process and the URLs that tell when it is up."""

    def __init__(self, child: Child, health_url: str, metrics_url: str | None) -> None:
        self.child, self.health_url, self.metrics_url = child, health_url, metrics_url


def start_ours(children: Children, kubeconfig: Path, phase: str, ns: str) -> Operator:
    metrics_port, health_port = free_port(), free_port()
    health = f"http://127.0.0.1:{health_port}/healthz"
    env = {
        "KUBECONFIG": str(kubeconfig),
        "PERMISOS_OPERATOR_STANDALONE": "true",
        "PERMISOS_OPERATOR_NAMESPACES": json.dumps([ns]),
        "PERMISOS_OPERATOR_METRICS_HOST": "127.0.0.1",
        "PERMISOS_OPERATOR_METRICS_PORT": str(metrics_port),
        "PERMISOS_OPERATOR_LIVENESS_ENDPOINT": health,
        "PERMISOS_OPERATOR_LOG_LEVEL": LOG_LEVEL["level"],
    }
    argv = [sys.executable, "-m", "permisos_operator"]
    if PROFILE["on"]:
        argv[1:1] = ["-m", "cProfile", "-o", str(LOGS / f"{phase}-operator.prof")]
    child = children.start("permisos_operator", argv, LOGS / f"{phase}-operator.log", env)
    return Operator(child, health, f"http://127.0.0.1:{metrics_port}/metrics")


def start_baseline(children: Children, kubeconfig: Path, phase: str, ns: str) -> Operator:
    health = f"http://127.0.0.1:{free_port()}/healthz"
    argv = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        f"--namespace={ns}",
        "--quiet" if LOG_LEVEL["level"] == "WARNING" else "--verbose",
        "--liveness",
        health,
        str(BASELINE),
    ]
    child = children.start(
        "baseline", argv, LOGS / f"{phase}-operator.log", {"KUBECONFIG": str(kubeconfig)}
    )
    return Operator(child, health, None)


# What the bare Kopf operator calls: its handler's Job, Kopf's own patches and Events, and the
# CRDs Kopf observes.
BASELINE_RULES = AccountRules(
    namespaced=rbac_rules(
        [
            (GROUP, "permitrequests", ("get", "list", "watch", "patch")),
            ("batch", "jobs", ("create",)),
            ("", "events", ("create",)),
        ]
    ),
    cluster=rbac_rules(
        [
            ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
            ("", "namespaces", ("list", "watch")),
        ]
    ),
)


async def operator_account(
    api: Api, control_plane: ControlPlane, ns: str, kind: str
) -> tuple[Path, str]:
    """A namespace, and a ServiceAccount in it with the operator's rules (ours: the chart's
    declared ones); its kubeconfig and its user name in the audit log."""
    await api.kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    account = "permisos-operator" if kind == "ours" else "baseline-operator"
    rules = operator_rules(cluster_wide=False) if kind == "ours" else BASELINE_RULES
    path = LOGS / f"{ns}-{account}.kubeconfig"
    kubeconfig = await make_account(
        api.kube, control_plane.server, control_plane.ca_cert, ns, account, rules, path
    )
    return kubeconfig, f"system:serviceaccount:{ns}:{account}"


async def settle_events(api: Api, ns: str, within: float = 60.0) -> dict[str, Any]:
    """The namespace's Events once two readings 3 s apart agree."""
    deadline = time.monotonic() + within
    events = await api.get(f"/api/v1/namespaces/{ns}/events")
    while time.monotonic() < deadline:
        await asyncio.sleep(3)
        again = await api.get(f"/api/v1/namespaces/{ns}/events")
        if len(again.get("items") or []) == len(events.get("items") or []):
            return again
        events = again
    return events


def api_calls(control_plane: ControlPlane, user: str) -> dict[str, int]:
    """Every request `user` made, by verb, from the apiserver's audit log (one auditID each)."""
    seen: dict[str, str] = {}
    for event in control_plane.audit_events():
        if event["user"].get("username") == user:
            seen[event["auditID"]] = event["verb"]
    counts: dict[str, int] = {}
    for verb in seen.values():
        counts[verb] = counts.get(verb, 0) + 1
    return counts


Starter = Callable[[Children, Path, str, str], Operator]


async def wait_healthy(api: Api, operator: Operator, within: float) -> None:
    async def healthy() -> bool:
        if not operator.child.alive():
            raise BenchError(f"the operator exited early; see {operator.child.log_path}")
        return await api.text(operator.health_url) is not None

    await wait_for("the operator's liveness endpoint", healthy, within)


class RssSampler:
    """Samples an operator's RSS in the background; keeps the peak."""

    def __init__(self, child: Child, every: float = 0.5) -> None:
        self.child, self.every, self.peak = child, every, 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.child.rss())
            await asyncio.sleep(self.every)

    async def stop(self) -> int:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, self.child.rss())
        return self.peak


async def create_all(
    api: Api, ns: str, names: list[str], concurrency: int, pools: dict[str, str] | None = None
) -> tuple[float, dict[str, float]]:
    """Creates the PermitRequests, `concurrency` at a time; returns when the first was sent and
    when each create returned (monotonic clock)."""
    gate = asyncio.Semaphore(concurrency)
    returned: dict[str, float] = {}
    pools = pools or {}

    async def one(name: str) -> None:
        body = permit_request(name, ns, pools.get(name, "default"))
        async with gate:
            await api.create(f"{group_path(ns)}/permitrequests", body)
            returned[name] = time.monotonic()

    started = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        for name in names:
            tasks.create_task(one(name))
    return started, returned


def pool_layout(slots: int) -> list[tuple[str, int]]:
    """RunnerPools with `slots` runner slots in all: `default` alone when the CRD allows that
    many replicas, else `default` plus `bench-pool-<k>`, each at the CRD's maximum."""
    cap = pool_maximum()
    if cap is None or cap >= slots:
        return [("default", slots)]
    layout: list[tuple[str, int]] = []
    while slots > 0:
        take = min(cap, slots)
        layout.append(("default" if not layout else f"bench-pool-{len(layout)}", take))
        slots -= take
    return layout


def log_summary(child: Child) -> dict[str, Any]:
    count, first = child.problems()
    return {"log": str(child.log_path.relative_to(ROOT)), "error_lines": count, "first": first}


# --- phases ----------------------------------------------------------------------------------


async def throughput(
    control_plane: ControlPlane,
    children: Children,
    kind: str,
    start: Starter,
    requests: int,
    concurrency: int,
    within: float,
    round_: int,
) -> dict[str, Any]:
    phase = ns = f"throughput-{kind}-{round_ + 1}"
    api = await Api.of(control_plane, concurrency)
    watch = JobWatch(api, ns)
    operator: Operator | None = None
    try:
        kubeconfig, user = await operator_account(api, control_plane, ns, kind)
        # Room for every request and the warm-up: admission never limits this measurement.
        layout = pool_layout(requests + 1)
        for pool, replicas in layout:
            await api.create(f"{group_path(ns)}/runnerpools", runner_pool(replicas, ns, pool))
        slots = [pool for pool, replicas in layout for _ in range(replicas)]
        operator = start(children, kubeconfig, phase, ns)
        await wait_healthy(api, operator, 60)
        await watch.start()
        # One request end to end first, so both operators' watches are live when timing starts.
        await api.create(f"{group_path(ns)}/permitrequests", permit_request(WARMUP, ns))
        await watch.wait_count([WARMUP], 120, 120)

        names = [f"bench-{i:05d}" for i in range(requests)]
        pools = dict(zip(names, slots[1:], strict=True))
        cpu_op, cpu_api = operator.child.cpu_seconds(), control_plane_cpu_seconds(control_plane)
        sampler = RssSampler(operator.child)
        started, returned = await create_all(api, ns, names, concurrency, pools)
        created_all = time.monotonic()
        await watch.wait_count(names, within, STALL["seconds"])
        peak = await sampler.stop()
        last_job = max(watch.first_job[name] for name in names)
        cpu_op, cpu_api = (
            operator.child.cpu_seconds() - cpu_op,
            control_plane_cpu_seconds(control_plane) - cpu_api,
        )
        latencies = [watch.first_job[name] - returned[name] for name in names]
        # What follows the last Job (status writes, Events posted in the background) is part of
        # the work: let it land, until the namespace's Events stop growing (at most a minute).
        events = await settle_events(api, ns)
        children.stop(operator.child)
        calls = api_calls(control_plane, user)
        return {
            "requests": requests,
            "concurrency": concurrency,
            "namespace": ns,
            "pools": dict(layout),
            "latency_ms": {
                "p50": 1000 * percentile(latencies, 0.50),
                "p95": 1000 * percentile(latencies, 0.95),
                "max": 1000 * max(latencies),
                "min": 1000 * min(latencies),
            },
            "jobs_per_second": requests / (last_job - started),
            "create_seconds": created_all - started,
            "first_create_to_last_job_seconds": last_job - started,
            "operator_cpu_seconds": cpu_op,
            "control_plane_cpu_seconds": cpu_api,
            "operator_rss_peak_mib": peak / MIB,
            "events_in_namespace": len(events.get("items") or []),
            "api_calls": calls,
            "api_calls_per_request": sum(calls.values()) / (requests + 1),
            "api_writes_per_request": sum(n for verb, n in calls.items() if verb in WRITES)
            / (requests + 1),
            "operator_log": log_summary(operator.child),
        }
    finally:
        await watch.stop()
        await api.close()
        if operator is not None:
            children.stop(operator.child)


async def memory_ours(
    control_plane: ControlPlane, children: Children, requests: int, concurrency: int, within: float
) -> dict[str, Any]:
    phase = ns = "memory-ours"
    api = await Api.of(control_plane, concurrency)
    operator: Operator | None = None
    try:
        kubeconfig, _ = await operator_account(api, control_plane, ns, "ours")
        await api.create(f"{group_path(ns)}/runnerpools", runner_pool(0, ns))
        operator = start_ours(children, kubeconfig, phase, ns)
        await wait_healthy(api, operator, 60)
        metrics_url = operator.metrics_url
        assert metrics_url is not None

        async def depth() -> float | None:
            text = await api.text(metrics_url)
            if text is None:
                return None
            value: float | None = metric_value(text, "permisos_queue_depth", 'pool="default"')
            return value

        await wait_for("the operator to report the pool", lambda: _not_none(depth), 60)
        await asyncio.sleep(2)
        idle = operator.child.rss()
        sampler = RssSampler(operator.child)
        started = time.monotonic()
        names = [f"mem-{i:05d}" for i in range(requests)]
        await create_all(api, ns, names, concurrency)
        created = time.monotonic() - started

        try:
            await wait_progress(
                f"queue depth {requests} on /metrics", depth, requests, within, STALL["seconds"]
            )
        except BenchError as error:
            text = await api.text(metrics_url) or ""
            phases = {
                phase: metric_value(text, "permisos_permitrequests", f'phase="{phase}"')
                for phase in ("Pending", "Queued", "Running")
            }
            raise BenchError(f"{error}; operator's permitrequests by phase: {phases}") from None
        seen = time.monotonic() - started
        await asyncio.sleep(3)
        rss = operator.child.rss()
        peak = await sampler.stop()
        pool = await api.get(f"{group_path(ns)}/runnerpools/default")
        return {
            "requests": requests,
            "state": f"all {requests} Queued (RunnerPool replicas=0), no Jobs",
            "rss_idle_mib": idle / MIB,
            "rss_mib": rss / MIB,
            "rss_peak_mib": peak / MIB,
            "create_seconds": created,
            "all_seen_seconds": seen,
            "pool_status_queued": (pool.get("status") or {}).get("queued"),
            "operator_cpu_seconds": operator.child.cpu_seconds(),
            "operator_log": log_summary(operator.child),
        }
    finally:
        await api.close()
        if operator is not None:
            children.stop(operator.child)


async def memory_baseline(
    control_plane: ControlPlane, children: Children, requests: int, concurrency: int, within: float
) -> dict[str, Any]:
    phase = ns = "memory-baseline"
    api = await Api.of(control_plane, concurrency)
    watch = JobWatch(api, ns)
    operator: Operator | None = None
    try:
        kubeconfig, _ = await operator_account(api, control_plane, ns, "baseline")
        await api.create(f"{group_path(ns)}/runnerpools", runner_pool(0, ns))
        operator = start_baseline(children, kubeconfig, phase, ns)
        await wait_healthy(api, operator, 60)
        await watch.start()
        await asyncio.sleep(2)
        idle = operator.child.rss()
        sampler = RssSampler(operator.child)
        started = time.monotonic()
        names = [f"mem-{i:05d}" for i in range(requests)]
        await create_all(api, ns, names, concurrency)
        created = time.monotonic() - started
        await watch.wait_count(names, within, STALL["seconds"])
        seen = time.monotonic() - started
        await asyncio.sleep(3)
        rss = operator.child.rss()
        peak = await sampler.stop()
        return {
            "requests": requests,
            "state": f"all {requests} handled: one Job created for each",
            "rss_idle_mib": idle / MIB,
            "rss_mib": rss / MIB,
            "rss_peak_mib": peak / MIB,
            "create_seconds": created,
            "all_seen_seconds": seen,
            "operator_cpu_seconds": operator.child.cpu_seconds(),
            "operator_log": log_summary(operator.child),
        }
    finally:
        await watch.stop()
        await api.close()
        if operator is not None:
            children.stop(operator.child)


async def _not_none(probe: Callable[[], Awaitable[Any]]) -> bool:
    return await probe() is not None


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds that measured it; the rest from the first."""
    done = [r for r in results if "error" not in r]
    if not done:
        return results[0] if results else {"error": "no round"}

    def merge(values: list[Any]) -> Any:
        if all(isinstance(v, dict) for v in values):
            keys = values[0].keys()
            return {k: merge([v[k] for v in values if k in v]) for k in keys}
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return statistics.median(values)
        return values[0]

    merged: dict[str, Any] = merge(done)
    merged["rounds"] = len(done)
    return merged


async def guarded(name: str, within: float, run: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Runs one phase; a failure or a timeout is reported, and the next phase still runs."""
    print(f"\n== {name} ...", flush=True)
    began = time.monotonic()
    try:
        # The phase's own waits are bounded by `within`; this bounds the whole phase.
        async with asyncio.timeout(within + 180):
            result = await run
    except (BenchError, TimeoutError, OSError) as error:
        message = str(error) or f"phase exceeded {within + 180:.0f}s"
        print(f"   FAILED: {message}", flush=True)
        return {"error": message}
    result["phase_seconds"] = time.monotonic() - began
    print(f"   done in {result['phase_seconds']:.1f}s", flush=True)
    return result


# --- output ----------------------------------------------------------------------------------


def _get(result: dict[str, Any], *path: str) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: float | None, base: float | None) -> float | None:
    if ours is None or base is None or base == 0:
        return None
    return ours / base


def table(title: str, rows: list[tuple[str, float | None, float | None, int]]) -> list[str]:
    lines = [title, f"  {'':34} {'ours':>12} {'baseline':>12} {'ours/base':>10}"]
    for label, ours, base, digits in rows:
        ratio = _ratio(ours, base)
        lines.append(
            f"  {label:34} {_fmt(ours, digits):>12} {_fmt(base, digits):>12} {_fmt(ratio, 2):>10}"
        )
    return lines


def report(results: dict[str, Any]) -> str:
    ours, base = results["throughput"]["ours"], results["throughput"]["baseline"]
    mem_ours, mem_base = results["memory"]["ours"], results["memory"]["baseline"]
    n, m = results["config"]["requests"], results["config"]["memory_requests"]
    lines = [
        "",
        "=" * 76,
        f"Operator benchmark  ({results['machine']['cpus']} CPUs, Python "
        f"{results['machine']['python']}, {results['machine']['platform']})",
        "Where things ran: the control plane (etcd, kube-apiserver, controllers), the operator",
        "under test and the benchmark client (creates + Job watch) are separate processes on",
        "this same machine; one control plane for every phase, a namespace each.",
        "=" * 76,
    ]
    repeat = results["config"].get("repeat", 1)
    lines += table(
        f"Creation -> first Job: {n} PermitRequests, {results['config']['concurrency']} creates"
        f" in flight (medians of {repeat} rounds)",
        [
            (
                "latency p50 (ms)",
                _get(ours, "latency_ms", "p50"),
                _get(base, "latency_ms", "p50"),
                1,
            ),
            (
                "latency p95 (ms)",
                _get(ours, "latency_ms", "p95"),
                _get(base, "latency_ms", "p95"),
                1,
            ),
            (
                "latency max (ms)",
                _get(ours, "latency_ms", "max"),
                _get(base, "latency_ms", "max"),
                1,
            ),
            ("Jobs per second", _get(ours, "jobs_per_second"), _get(base, "jobs_per_second"), 1),
            (
                "first create -> last Job (s)",
                _get(ours, "first_create_to_last_job_seconds"),
                _get(base, "first_create_to_last_job_seconds"),
                2,
            ),
            (
                "all creates returned after (s)",
                _get(ours, "create_seconds"),
                _get(base, "create_seconds"),
                2,
            ),
            (
                "operator CPU (s)",
                _get(ours, "operator_cpu_seconds"),
                _get(base, "operator_cpu_seconds"),
                2,
            ),
            (
                "control plane CPU (s)",
                _get(ours, "control_plane_cpu_seconds"),
                _get(base, "control_plane_cpu_seconds"),
                2,
            ),
            (
                "operator RSS peak (MiB)",
                _get(ours, "operator_rss_peak_mib"),
                _get(base, "operator_rss_peak_mib"),
                1,
            ),
            (
                "Events in namespace afterwards",
                _get(ours, "events_in_namespace"),
                _get(base, "events_in_namespace"),
                0,
            ),
            (
                "API calls per request (audit log)",
                _get(ours, "api_calls_per_request"),
                _get(base, "api_calls_per_request"),
                2,
            ),
            (
                "  of which writes",
                _get(ours, "api_writes_per_request"),
                _get(base, "api_writes_per_request"),
                2,
            ),
        ],
    )
    by_round = results["throughput"]["ratios_ours_over_baseline"]["jobs_per_second_by_round"]
    lines.append(
        f"  Jobs/s ours/baseline, round by round: {', '.join(_fmt(r, 2) for r in by_round)}"
    )
    for label, result in (("ours", ours), ("baseline", base)):
        calls = result.get("api_calls") or {}
        listed = ", ".join(f"{verb} {count}" for verb, count in sorted(calls.items()))
        lines.append(f"  {label} API calls by verb: {listed or 'n/a'}")
    lines.append("")
    lines += table(
        f"Resident memory (operator process + children) with {m} PermitRequests",
        [
            (
                "RSS before creating (MiB)",
                _get(mem_ours, "rss_idle_mib"),
                _get(mem_base, "rss_idle_mib"),
                1,
            ),
            (
                f"RSS with {m} objects (MiB)",
                _get(mem_ours, "rss_mib"),
                _get(mem_base, "rss_mib"),
                1,
            ),
            (
                "RSS peak during the phase (MiB)",
                _get(mem_ours, "rss_peak_mib"),
                _get(mem_base, "rss_peak_mib"),
                1,
            ),
            (
                "creates -> all seen (s)",
                _get(mem_ours, "all_seen_seconds"),
                _get(mem_base, "all_seen_seconds"),
                1,
            ),
            (
                "operator CPU over the phase (s)",
                _get(mem_ours, "operator_cpu_seconds"),
                _get(mem_base, "operator_cpu_seconds"),
                1,
            ),
        ],
    )
    lines.append(f"  ours:     {mem_ours.get('state', mem_ours.get('error'))}")
    lines.append(f"  baseline: {mem_base.get('state', mem_base.get('error'))}")
    lines.append("")
    lines.append("Notes:")
    lines.append(
        "  latency = first Job seen on the client's batch/v1 watch - that request's create"
    )
    lines.append(
        "  returning (client clock); Jobs/s = requests / (first create sent -> last first-Job)."
    )
    layout = pool_layout(n + 1)
    pools = ", ".join(f"{name}={replicas}" for name, replicas in layout)
    lines.append(f"  throughput phases: RunnerPools {pools} ({n + 1} runner slots = requests + 1")
    if len(layout) > 1:
        lines.append(
            f"  warm-up; the CRD caps spec.replicas at {pool_maximum()}, so the requests are spread"
        )
        lines.append("  over several pools and admission never limits the measurement);")
    else:
        lines.append("  warm-up, so admission never limits the measurement);")
    lines.append(
        "  memory phases: RunnerPool default at replicas=0. Both operators log at WARNING;"
    )
    lines.append("  the baseline is Kopf with its defaults; it makes the same Jobs as ours, and")
    lines.append("  posts no Events (ours posts one per transition).")
    for label, result in (
        ("throughput/ours (first round)", results["throughput"]["rounds"][0]["ours"]),
        ("throughput/baseline (first round)", results["throughput"]["rounds"][0]["baseline"]),
        ("memory/ours", mem_ours),
        ("memory/baseline", mem_base),
    ):
        if "error" in result:
            lines.append(f"  {label}: FAILED - {result['error']}")
            continue
        log = result.get("operator_log") or {}
        lines.append(
            f"  {label}: {log.get('error_lines', 0)} error-looking log lines ({log.get('log')})"
        )
        for line in log.get("first") or []:
            lines.append(f"      {line[:160]}")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    LOGS.mkdir(parents=True, exist_ok=True)
    LOG_LEVEL["level"] = args.log_level.upper()
    PROFILE["on"] = args.profile
    STALL["seconds"] = args.stall
    children = Children()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        },
        "config": {
            "requests": args.requests,
            "memory_requests": args.memory_requests,
            "concurrency": args.concurrency,
            "timeout_seconds": args.timeout,
            "stall_seconds": args.stall,
            "repeat": args.repeat,
        },
        "placement": {
            "control plane": "one for the run: etcd, kube-apiserver, controllers (Jobs' off)",
            "operators": "own process each (python -m permisos_operator | kopf run baseline), "
            "each in its phase's namespace as its own ServiceAccount",
            "client": "this process (creates + batch/v1 Job watch, as cluster admin)",
        },
        "throughput": {},
        "memory": {},
    }
    n, m, c, t = args.requests, args.memory_requests, args.concurrency, args.timeout
    control_plane = await start_control_plane(LOGS, "operators")
    try:
        rounds: list[dict[str, dict[str, Any]]] = []
        for round_ in range(args.repeat):
            # Each goes first in turn: neither always meets the fuller apiserver.
            order = [("baseline", start_baseline), ("ours", start_ours)]
            pair: dict[str, dict[str, Any]] = {}
            for kind, start in order if round_ % 2 == 0 else order[::-1]:
                pair[kind] = await guarded(
                    f"throughput {round_ + 1}/{args.repeat}: {kind}",
                    t,
                    throughput(control_plane, children, kind, start, n, c, t, round_),
                )
            rounds.append(pair)
        results["throughput"]["rounds"] = rounds
        ours = results["throughput"]["ours"] = medians([p["ours"] for p in rounds])
        base = results["throughput"]["baseline"] = medians([p["baseline"] for p in rounds])
        results["throughput"]["ratios_ours_over_baseline"] = {
            "p50": _ratio(_get(ours, "latency_ms", "p50"), _get(base, "latency_ms", "p50")),
            "p95": _ratio(_get(ours, "latency_ms", "p95"), _get(base, "latency_ms", "p95")),
            "jobs_per_second": _ratio(_get(ours, "jobs_per_second"), _get(base, "jobs_per_second")),
            "jobs_per_second_by_round": [
                _ratio(_get(p["ours"], "jobs_per_second"), _get(p["baseline"], "jobs_per_second"))
                for p in rounds
            ],
            "api_calls_per_request": _ratio(
                _get(ours, "api_calls_per_request"), _get(base, "api_calls_per_request")
            ),
        }
        if m > 0:
            results["memory"]["baseline"] = await guarded(
                "memory: baseline", t, memory_baseline(control_plane, children, m, c, t)
            )
            results["memory"]["ours"] = await guarded(
                "memory: ours", t, memory_ours(control_plane, children, m, c, t)
            )
        else:
            results["memory"]["ours"] = results["memory"]["baseline"] = {"error": "skipped"}
    finally:
        children.stop_all()
        await asyncio.to_thread(control_plane.stop)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="throughput phases")
    parser.add_argument("--memory-requests", type=int, default=5000, help="0 skips memory")
    parser.add_argument("--concurrency", type=int, default=32, help="creates in flight")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per phase")
    parser.add_argument("--stall", type=float, default=120, help="seconds without progress")
    parser.add_argument("--repeat", type=int, default=3, help="throughput pairs; medians shown")
    parser.add_argument("--log-level", default="WARNING", help="of both operators (debugging)")
    parser.add_argument(
        "--profile", action="store_true", help="run ours under cProfile; print its top entries"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    figures = asyncio.run(main(arguments))
    print(report(figures))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "operator_throughput.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures written to {out.relative_to(ROOT)}")
    if arguments.profile:
        for prof in sorted(LOGS.glob("*-ours-operator.prof")):
            print(f"\n{prof.relative_to(ROOT)}: top entries by own time")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
