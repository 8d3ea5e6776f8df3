"""The chaos run's fault injectors against the whole platform (`permisos_sandbox.chaos.faults`):
every kind of fault injected and undone while a trickle of applicants pays, and afterwards the
platform is whole (a fresh permit goes end to end); a run cancelled half way leaves nothing
broken. The full run, its load and its invariants are `make chaos` (tests/e2e/test_chaos.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from permisos_sandbox.chaos.faults import FAULT_KINDS, run_faults
from permisos_sandbox.chaos.recovery import operator_leader
from permisos_sandbox.platform import Platform, PlatformConfig
from permisos_sandbox.platform.applicant import ONE_ADDRESS_LIMITS, Applicant
from permisos_sandbox.platform.demo import run_demo
from permisos_sandbox.platform.people import fictional_person
from tests.cluster import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(1200)]

SEED = 16
RUN = secrets.token_hex(3)
# Short holds, so that every kind fits a few minutes (the real run holds the figures).
HOLDS = {
    "apiserver-down": 10,
    "postgres-down": 6,
    # Runner pods come and go with the trickle (the portal's faults open the pool's circuit).
    "runner-pod-delete": 90,
    "portal-errors": 8,
    "portal-maintenance": 6,
    "portal-slow-download": 8,
    "portal-session-expiry": 6,
    "webhooks-delayed": 8,
    "webhooks-duplicated": 8,
    "webhooks-reordered": 8,
    "webhook-lost": 30,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """The platform with a PostgreSQL server of its own (the postgres-down fault stops it)."""
    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("chaos-faults"),
        runners=2,
        # Every applicant comes from this machine's address: no per-address limits.
        extra_api_env=dict(ONE_ADDRESS_LIMITS),
        portal_processing_seconds=3.0,  # attempts last long enough to be hit
        retry_backoff_seconds=1,
    ).on_free_ports()
    async with Platform(config) as running:
        yield running


@pytest.mark.parametrize(
    ("kinds", "in_place"),
    [
        (("apiserver-down", "portal-maintenance"), "apiserver and portal"),
        (("postgres-down", "webhooks-delayed"), "postgres and webhooks"),
    ],
)
async def test_a_cancelled_run_leaves_no_fault_in_place(
    platform: Platform, kinds: tuple[str, str], in_place: str
) -> None:
    p = platform
    cp = p.kubernetes.control_plane if p.kubernetes else None
    pg = p.postgres
    assert cp is not None and pg is not None
    portal = f"{p.portal_url}/__control/config"
    webhooks = f"{p.payments_url}/__control/webhooks/faults"

    async def state() -> dict[str, bool]:
        async with httpx.AsyncClient() as http:
            maintenance = (await http.get(portal)).json()["maintenance"]
            delayed = (await http.get(webhooks)).json()["delay_seconds"] > 0
        up = await asyncio.to_thread(cp.serving)
        return {
            "apiserver and portal": not up and maintenance,
            "postgres and webhooks": not pg.running and delayed,
            "none": up and pg.running and not maintenance and not delayed,
        }

    held = dict.fromkeys(kinds, 300.0)  # far longer than the test waits
    run = asyncio.create_task(
        run_faults(p, random.Random(SEED), time.time() + 900, kinds=kinds, holds=held)
    )
    deadline = time.monotonic() + 60
    while not (await state())[in_place]:  # both lanes' faults are in place
        assert time.monotonic() < deadline and not run.done(), await state()
        await asyncio.sleep(0.5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert (await state())["none"]

    async def api_answers() -> bool:
        async with httpx.AsyncClient(timeout=15) as http:
            try:
                return (await http.get(f"{p.api_url}/readyz")).status_code == 200
            except httpx.HTTPError:  # no ready API pod yet: the forward closes the connection
                return False

    await eventually(api_answers, timeout=120, every=1)


async def test_every_fault_then_the_platform_is_whole(platform: Platform, tmp_path: Path) -> None:
    p = platform
    lines: list[str] = []
    stop = asyncio.Event()
    load = asyncio.create_task(trickle(p, stop))
    began = time.time()
    try:
        injections = await run_faults(
            p, random.Random(SEED), began + 300, log=lines.append, holds=HOLDS
        )
    finally:
        stop.set()
        paid = await load
    print("\n".join(lines))

    kinds = Counter(i.kind for i in injections)
    assert set(kinds) == set(FAULT_KINDS), lines
    assert kinds["operator-leader-kill"] >= 5, lines
    assert all(began <= i.started <= i.ended for i in injections)
    # Which pod, which process, which event: nothing of the applicants.
    emails = {f"chaos-{RUN}-{i}@example.com" for i in range(paid)}
    assert not [i for i in injections if any(e in i.detail for e in emails)]

    # Whole again: an operator replica leads, and a new applicant's permit goes end to end.
    assert await operator_leader(p) is not None
    paths = await run_demo(p, tmp_path / "permits", say=lines.append, within=240)
    assert [path.suffix for path in paths] == [".pdf"] * 3


async def trickle(p: Platform, stop: asyncio.Event) -> int:
    """An applicant paying every few seconds (by card, every third one with an OXXO voucher
    paid at the store: the webhook the lost-webhook fault loses), so that runner pods run and
    payments' webhooks flow while the faults are injected; returns how many started. Their own
    fate is the chaos run's to check."""
    started: list[asyncio.Task[None]] = []
    while not stop.is_set():
        started.append(asyncio.create_task(one_applicant(p, len(started))))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 4)
    await asyncio.gather(*started, return_exceptions=True)
    return len(started)


async def one_applicant(p: Platform, i: int) -> None:
    data = {**fictional_person(i, f"chaos-{RUN}"), "plates": f"CHF{i:04d}"}
    applicant = Applicant(p.api_url, p.outbox, data["email"], data)
    try:
        await applicant.register_and_verify()
        await applicant.login()
        await applicant.apply()
        if i % 3 == 2:
            await applicant.pay_oxxo()
            await applicant.pay_voucher_at_store(p.payments_url)
        else:
            await applicant.pay_card()
    finally:
        await applicant.close()
