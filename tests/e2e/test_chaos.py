"""`make chaos`, shorter: the same run (`permisos_sandbox.chaos.run`) on the whole platform for a
few minutes, about twenty applicants under the fault schedule, each fault held for less time
than in the 10-minute run so that most kinds fit. Nothing paid may be lost or doubled and every
invariant must hold; the table is printed (run with `-s` to see it as it goes, or read it in a
failure). PERMISOS_CHAOS_SEED repeats a run; otherwise the seed is new and printed first."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from permisos_sandbox.chaos.faults import FAULT_KINDS, LANES
from permisos_sandbox.chaos.run import ChaosOptions, chaos_run

# Shorter holds than the 10-minute run's: the kube-apiserver's and PostgreSQL's outages and the
# portal's and webhooks' faults still last several of the load's steps each.
SHORT_HOLDS = {
    "runner-pod-delete": 20,
    "apiserver-down": 20,
    "postgres-down": 15,
    "portal-errors": 20,
    "portal-maintenance": 15,
    "portal-slow-download": 20,
    "portal-session-expiry": 10,
    "webhooks-delayed": 15,
    "webhooks-duplicated": 15,
    "webhooks-reordered": 15,
    "webhook-lost": 40,
}


@pytest.mark.timeout(1500)
async def test_a_short_chaos_run_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("PERMISOS_CHAOS_SEED") or secrets.randbelow(1_000_000))
    options = ChaosOptions(
        seed=seed,
        state_dir=tmp_path,
        minutes=4,
        applications=20,
        settle_minutes=5,
        holds=SHORT_HOLDS,
    )
    result = await chaos_run(options)
    print(result.table)
    assert not result.verdict.lost, result.table
    assert not result.verdict.doubled, result.table
    assert [c.name for c in result.verdict.checks if not c.ok] == [], result.table
    # Every lane of the schedule injected faults (each lane runs its kinds one at a time, all
    # before any twice; a short run may not reach the last of the cluster's), the leader kills
    # several times.
    injected = {f.kind for f in result.faults}
    assert all(injected & set(lane) for lane in LANES), sorted(set(FAULT_KINDS) - injected)
    kills = [f for f in result.faults if f.kind == "operator-leader-kill"]
    assert len(kills) >= 3, result.table
    # Each applicant's application is in the database (a retried create may add a draft).
    assert len(result.evidence.applications) >= options.applications
    assert result.ok, result.table
