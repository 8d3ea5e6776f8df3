"""The table a chaos run prints: faults by kind, applications by final state, lost and doubled,
payment-to-permit times with and without faults, every invariant and the alerts. Ids and counts
only: no person's data."""

from __future__ import annotations

import statistics
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .alerts import AlertLine
from .checks import Verdict, Window
from .client import Call
from .evidence import Evidence
from .faults import CLUSTER_LANE

PROBLEMS_SHOWN = 5


@dataclass(frozen=True)
class Latencies:
    with_faults: list[float]
    without: list[float]


def latencies(ev: Evidence, faults: Sequence[Window]) -> Latencies:
    """Payment to permit_ready, per permit; "with faults" when an injection overlapped it."""
    spans = [
        (row["paid_at"].timestamp(), ev.ready_at[a].timestamp())
        for a, row in ev.applications.items()
        if row["status"] == "permit_ready" and row["paid_at"] and a in ev.ready_at
    ]
    hit: list[float] = []
    clear: list[float] = []
    for paid, ready in spans:
        overlaps = any(f.started <= ready and f.ended >= paid for f in faults)
        (hit if overlaps else clear).append(ready - paid)
    return Latencies(hit, clear)


def _percentiles(values: list[float]) -> str:
    if not values:
        return f"{'-':>8} {'-':>8} {0:>5}"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):7.1f}s {p95:7.1f}s {len(ordered):>5}"


def table(
    *,
    seed: int,
    minutes: float,
    faults: Sequence[Window],
    ev: Evidence,
    calls: Sequence[Call],
    verdict: Verdict,
    alerts: Sequence[AlertLine],
    other_alerts: Sequence[str],
    settled_seconds: float,
) -> str:
    lines = [f"Chaos run, seed {seed}: {minutes:g} min of load and faults, settled in "]
    lines[0] += f"{settled_seconds:.0f} s more"
    lines += ["", "Faults injected          count   seconds"]
    by_kind: Counter[str] = Counter(f.kind for f in faults)
    spent: Counter[str] = Counter()
    for f in faults:
        spent[f.kind] += round(f.ended - f.started)
    for kind in sorted(by_kind):
        lines.append(f"  {kind:<22} {by_kind[kind]:>5} {spent[kind]:>9}")
    if not by_kind:
        lines.append("  (none)")
    lines += ["", "Applications by final state"]
    states = Counter(row["status"] for row in ev.applications.values())
    for status, n in sorted(states.items()):
        lines.append(f"  {status:<22} {n:>5}")
    lines.append(f"  {'total':<22} {sum(states.values()):>5}")
    lines += ["", f"Lost:    {len(verdict.lost)}   (must be 0)"]
    lines.append(f"Doubled: {len(verdict.doubled)}   (must be 0)")
    lat = latencies(ev, faults)
    lines += ["", "Payment to permit               p50      p95     n"]
    lines.append(f"  overlapping a fault     {_percentiles(lat.with_faults)}")
    lines.append(f"  without faults          {_percentiles(lat.without)}")
    answered = Counter(c.status for c in calls if c.status is not None)
    errors = Counter(c.error for c in calls if c.error)
    lines += ["", f"API answers: {sum(answered.values())}; by status " + _counts(answered)]
    lines.append(f"  connection errors retried: {sum(errors.values())} " + _counts(errors))
    lines.append("    during: " + _counts(_dropped_during(calls, faults)))
    lines += ["", "Invariants"]
    for check in verdict.checks:
        mark = "PASS" if check.ok else "FAIL"
        lines.append(f"  {mark}  {check.name} ({check.judged} judged)")
        for key, why in list(check.problems.items())[:PROBLEMS_SHOWN]:
            said = f"{key}: {'; '.join(why[:3])}" + (f" (+{len(why) - 3})" if len(why) > 3 else "")
            lines.append(f"          {said}")
        if len(check.problems) > PROBLEMS_SHOWN:
            lines.append(f"          … and {len(check.problems) - PROBLEMS_SHOWN} more")
    lines += ["", "Alerts                         expected  seen     why"]
    for a in alerts:
        mark = "ok " if a.ok else "BAD"
        lines.append(f"  {mark} {a.alert:<30} {a.expected:<9} {a.seen:<8} {a.why}")
    also = "also pending or firing: " + (", ".join(other_alerts) or "none")
    lines += textwrap.wrap(also, width=96, initial_indent="  ", subsequent_indent="    ")
    lines += ["", "RESULT: " + ("PASS" if verdict.ok and all(a.ok for a in alerts) else "FAIL")]
    return "\n".join(lines)


COMEBACK_SECONDS = 30.0


def _dropped_during(calls: Sequence[Call], faults: Sequence[Window]) -> Counter[str]:
    """Connection errors by the kinds of cluster fault their try overlapped (up to 30 s after
    it, while the hit part comes back); `none` when no such fault ran."""
    cluster = [f for f in faults if f.kind in CLUSTER_LANE]
    during: Counter[str] = Counter()
    for call in calls:
        if call.error:
            hit = {f.kind for f in cluster if f.started <= call.ended <= f.ended + COMEBACK_SECONDS}
            during.update(sorted(hit) or ["none"])
    return during


def _counts(counter: Counter[int] | Counter[str]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(counter.items(), key=lambda kv: str(kv[0])))
