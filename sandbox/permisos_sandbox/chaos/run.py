"""One chaos run: the whole platform (two API replicas, the reconcile CronJob every minute), a
real Prometheus on it, the load and the fault schedule at once from one seed, then the wait for
every application to settle, the checks and the table."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from permisos_sandbox.platform import Platform, PlatformConfig
from permisos_sandbox.platform.applicant import ONE_ADDRESS_LIMITS

from . import faults as fault_schedule
from .alerts import Prometheus, also_raised, judge_alerts
from .checks import Check, Verdict, Window, judge
from .evidence import ADMIN_EMAIL, ADMIN_PASSWORD, Evidence, gather
from .load import Load
from .report import table

# Arrivals fill this share of the run, so the last applicants pay while faults still run.
ARRIVALS_SHARE = 0.9


@dataclass
class ChaosOptions:
    seed: int
    state_dir: Path
    minutes: float = 10.0
    applications: int = 100
    settle_minutes: float = 6.0
    runners: int = 3
    kinds: Sequence[str] = field(default_factory=lambda: fault_schedule.FAULT_KINDS)
    # Seconds each kind of fault is held, over the schedule's own (a shorter run's).
    holds: Mapping[str, float] | None = None


@dataclass
class ChaosResult:
    verdict: Verdict
    evidence: Evidence
    faults: list[Window]
    table: str
    ok: bool


class ChaosPlatform(Platform):
    """The platform with what a chaos run needs on top of `make run`'s values: two API replicas
    (one can die mid-request while the other serves), the reconcile CronJob every minute for
    payments older than a minute (a lost webhook must be found within the run), and the pool's
    circuit breaker cooling down 30 s, at most 2 min: the chart's 60 s to 15 min suit a portal
    that fails for hours, but after the run's tenth minute of faults a probe could come 15 min
    later, past the settling."""

    def values(self) -> dict[str, Any]:
        values = super().values()
        values["api"]["replicas"] = 2
        values["cronJobs"] = {"reconcile": {"schedule": "* * * * *", "olderThanMinutes": 1}}
        values["portal"]["circuitBreaker"] = {"coolDownSeconds": 30, "maxCoolDownSeconds": 120}
        return values


def platform_config(options: ChaosOptions) -> PlatformConfig:
    return PlatformConfig(
        state_dir=options.state_dir,
        runners=options.runners,
        extra_api_env=dict(ONE_ADDRESS_LIMITS),  # every applicant comes from this machine
    ).on_free_ports()  # the usual ones (8000, 8002-8005) may be held by something else here


async def chaos_run(options: ChaosOptions, say: Callable[[str], None] = print) -> ChaosResult:
    say(f"seed {options.seed} (rerun: --seed {options.seed})")
    platform = ChaosPlatform(platform_config(options))
    prometheus: Prometheus | None = None
    try:
        began = time.monotonic()
        await platform.start()
        await platform.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        prometheus = await Prometheus.start(platform, options.state_dir / "prometheus")
        say(f"platform and Prometheus up in {time.monotonic() - began:.0f} s; load and faults")
        return await _run(platform, prometheus, options, say)
    finally:
        if prometheus is not None:
            await prometheus.stop()
        await platform.stop()


async def _run(
    platform: Platform, prometheus: Prometheus, options: ChaosOptions, say: Callable[[str], None]
) -> ChaosResult:
    started = time.time()
    until = started + options.minutes * 60
    settle_until = until + options.settle_minutes * 60
    # Two streams from one seed: the load's draws do not shift the faults' schedule.
    load_rng = random.Random(f"{options.seed}-load")  # noqa: S311 (a schedule, not a secret)
    load = Load(platform, load_rng, f"chaos{options.seed}", say=say)
    applicants = asyncio.create_task(
        load.run(options.applications, options.minutes * 60 * ARRIVALS_SHARE, settle_until)
    )
    whole = Check("the platform came back whole after the faults", judged=1)
    try:
        injected = await fault_schedule.run_faults(
            platform,
            random.Random(f"{options.seed}-faults"),  # noqa: S311
            until,
            kinds=options.kinds,
            log=say,
            holds=options.holds,
        )
    except Exception as error:  # a part that did not come back: the run fails, and says why
        injected = getattr(error, "injections", [])
        whole.fail("-", f"{type(error).__name__}: {str(error)[:300]}")
        say(f"faults FAILED: {type(error).__name__}: {error}")
    faults: list[Window] = list(injected)
    say(f"faults done ({len(faults)} injected); waiting for every application to settle")
    await applicants
    settled = max(0.0, time.time() - until)
    ev, unread = await gather(platform, load.log)
    gathered = Check("the evidence was read from every source", judged=8)
    for source, why in unread.items():
        gathered.fail(source, why)
    verdict = judge(ev, load.outcomes, load.log.calls, faults)
    seconds = time.time() - started + 60
    alert_lines, alert_check = await judge_alerts(prometheus, faults, seconds)
    verdict.checks += [whole, gathered, alert_check]
    known = [line.alert for line in alert_lines]
    text = table(
        seed=options.seed,
        minutes=options.minutes,
        faults=faults,
        ev=ev,
        calls=load.log.calls,
        verdict=verdict,
        alerts=alert_lines,
        other_alerts=await also_raised(prometheus, seconds, known),
        settled_seconds=settled,
    )
    return ChaosResult(verdict, ev, faults, text, verdict.ok)
