"""The load: applicants arriving at random moments (from the run's seed) who register, apply and
then pay by card, by card with 3-D Secure or at OXXO, let a voucher expire, cancel, or apply
with plates the portal rejects, then follow their application until it is final. Everything
through the public API (with the retrying, recording client), the bank's 3-D Secure page and
the OXXO store (the payments simulator's side, as the outside world)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from permisos_sandbox.platform import Platform
from permisos_sandbox.platform.applicant import FINAL_STATUSES, Applicant, DemoError
from permisos_sandbox.platform.people import fictional_person

from .client import CallLog, RetryingTransport

# The portal simulator's plates that already hold a permit: it rejects them for good.
REJECTED_PLATES = "AAA0001"
RETURN_URL = "https://example.com/listo"
# What each scenario's applicant does, and its share of the load.
SCENARIOS: dict[str, float] = {
    "card": 0.35,
    "card_3ds": 0.15,
    "oxxo_paid": 0.2,
    "oxxo_expired": 0.1,
    "cancelled": 0.1,
    "rejected": 0.1,
}
PAYING = frozenset({"card", "card_3ds", "oxxo_paid", "rejected"})
# Where an applicant who never pays stops following (what the API says of it).
UNPAID_FINAL = {"oxxo_expired": ("expired", "awaiting_payment"), "cancelled": ("cancelled",)}
POLL_SECONDS = 3.0
MAIL_WITHIN_SECONDS = 180.0


@dataclass
class Outcome:
    """One applicant's run, without personal data: what it did and what it last saw."""

    index: int
    scenario: str
    rng: random.Random = field(repr=False, compare=False, default_factory=random.Random)
    application_id: str = ""
    status: str = ""
    permit_reason: str | None = None
    permit_message: str | None = None
    error: str | None = None
    finished_at: float | None = None


@dataclass
class Load:
    platform: Platform
    rng: random.Random
    tag: str
    log: CallLog = field(default_factory=CallLog)
    outcomes: list[Outcome] = field(default_factory=list)
    say: Callable[[str], None] = print

    def plan(self, applications: int) -> list[str]:
        """Each scenario's share (at least one of each), in a seeded random order."""
        counts = {name: max(1, round(share * applications)) for name, share in SCENARIOS.items()}
        while sum(counts.values()) > applications and counts["card"] > 1:
            counts["card"] -= 1
        counts["card"] += applications - sum(counts.values())
        plan = [name for name, n in counts.items() for _ in range(n)]
        self.rng.shuffle(plan)
        return plan

    async def run(self, applications: int, over_seconds: float, settle_until: float) -> None:
        """Starts the applicants at random moments within `over_seconds`; returns when every
        one is final or `settle_until` (time.time()) has passed."""
        plan = self.plan(applications)
        starts = sorted(self.rng.uniform(0, over_seconds) for _ in plan)
        # Each applicant draws from a generator of its own: the same seed, the same choices,
        # whatever order the tasks run in.
        rngs = [random.Random(self.rng.getrandbits(64)) for _ in plan]  # noqa: S311
        began = time.monotonic()
        tasks = []
        for i, (scenario, at) in enumerate(zip(plan, starts, strict=True)):
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            outcome = Outcome(i, scenario, rngs[i])
            self.outcomes.append(outcome)
            tasks.append(asyncio.create_task(self._one(outcome, settle_until)))
        await asyncio.gather(*tasks)
        tally = Counter(o.status or "none" for o in self.outcomes)
        self.say(f"load: {len(self.outcomes)} applicants done: {dict(sorted(tally.items()))}")

    async def _one(self, outcome: Outcome, settle_until: float) -> None:
        p = self.platform
        plates = REJECTED_PLATES if outcome.scenario == "rejected" else self._plates(outcome.index)
        data = {**fictional_person(outcome.index, self.tag), "plates": plates}
        applicant = Applicant(
            p.api_url, p.outbox, data["email"], data, transport=RetryingTransport(self.log)
        )
        try:
            await self._act(applicant, outcome)
            await self._follow(applicant, outcome, settle_until)
        except Exception as error:  # any failure is this applicant's, for the checks to show
            # The message names the step and the status; the API's bodies carry no personal data.
            outcome.error = f"{type(error).__name__}: {str(error)[:300]}"
        finally:
            await applicant.close()

    @staticmethod
    def _plates(i: int) -> str:
        return f"CHS{i:04d}"  # one per applicant: the portal refuses plates already permitted

    async def _act(self, a: Applicant, outcome: Outcome) -> None:
        # The mail may wait out a fault (the API's outbox, its database).
        await a.register_and_verify(mail_within=MAIL_WITHIN_SECONDS)
        await a.login()
        await a.apply()
        outcome.application_id = a.application_id
        await _pause(outcome, 1, 4)
        scenario = outcome.scenario
        if scenario == "cancelled":
            r = await a.http.post(f"/v1/applications/{a.application_id}/cancel", headers=a.auth)
            _ok(r, 200, "cancel")
        elif scenario in ("card", "rejected"):
            await self._paying(a, a.pay_card())
        elif scenario == "card_3ds":
            created = await self._paying(a, a.pay_card("pm_card_threeDSecure2Required", RETURN_URL))
            challenge = ((created.get("next_action") or {}).get("redirect_to_url") or {}).get("url")
            if created and not challenge:
                raise DemoError(f"3-D Secure: no challenge page in {created.get('status')!r}")
            await _pause(outcome, 2, 8)  # the applicant reads the bank's page
            if challenge:
                await self._outside(f"{challenge}/complete", "complete 3-D Secure")
        else:
            await self._paying(a, a.pay_oxxo())
            await _pause(outcome, 5, 40)  # the walk to the store, or the days the voucher lapses
            action = "pay" if scenario == "oxxo_paid" else "expire"
            await self._outside(
                f"{self.platform.payments_url}/__control/oxxo/{a.intent_id}/{action}",
                f"{action} the OXXO voucher",
            )

    async def _paying(self, a: Applicant, pay: Any) -> dict[str, Any]:
        """Pays; when the answer was lost (a dropped connection) and the retry is refused as
        already paid, reads back the payment the first try made, as a real client must."""
        try:
            created: dict[str, Any] = await pay
            return created
        except DemoError as error:
            if "HTTP 409" not in str(error):
                raise
        r = await a.http.get(f"/v1/applications/{a.application_id}/payments", headers=a.auth)
        items = _ok(r, 200, "list payments").get("items") or []
        if not items:
            raise DemoError("pay: refused as not payable, and no payment exists")
        a.intent_id = items[0]["intent_id"]
        return {}

    async def _outside(self, url: str, step: str) -> None:
        """The world outside the API (the bank's page, the store): tried again until it answers,
        since the payments simulator is not under fault."""
        async with httpx.AsyncClient(timeout=30.0) as http:
            for _ in range(10):
                try:
                    r = await http.post(url)
                except httpx.TransportError:
                    await asyncio.sleep(2)
                    continue
                if r.status_code >= 400 and r.status_code != 303:
                    raise DemoError(f"{step}: HTTP {r.status_code}")
                return
        raise DemoError(f"{step}: the payments simulator did not answer")

    async def _follow(self, a: Applicant, outcome: Outcome, settle_until: float) -> None:
        """Reads the application every few seconds until it is final for its scenario."""
        done = UNPAID_FINAL.get(outcome.scenario, FINAL_STATUSES)
        while True:
            app = await a.get()
            outcome.status = app["status"]
            outcome.permit_reason = app.get("permit_reason")
            outcome.permit_message = app.get("permit_message")
            if outcome.status in done:
                outcome.finished_at = time.time()
                return
            if time.time() > settle_until:
                return
            await asyncio.sleep(POLL_SECONDS)


async def _pause(outcome: Outcome, low: float, high: float) -> None:
    await asyncio.sleep(outcome.rng.uniform(low, high))


def _ok(response: httpx.Response, status: int, step: str) -> dict[str, Any]:
    if response.status_code != status:
        raise DemoError(f"{step}: HTTP {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body
