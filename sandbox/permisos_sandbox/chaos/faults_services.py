"""Faults of the world outside the cluster: PostgreSQL stopped, the portal simulator failing or
slow (its `/__control/config`), Stripe's webhooks late, doubled, out of order or lost (the
payments simulator's `/__control/webhooks/faults`). Each is held for `hold` seconds and put back
in `finally`, to the values it found."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from permisos_sandbox.platform import Platform

from .recovery import Log, Skipped, undo, wait_for

# The event whose loss matters: the applicant paid at an OXXO store, and only the reconcile
# CronJob, asking Stripe, can learn it (a card's success the API reads when it confirms).
LOST_TYPE = "payment_intent.succeeded"
LOST_METHOD = "oxxo"


class ServiceFaults:
    def __init__(self, platform: Platform, log: Log) -> None:
        self.platform = platform
        self.log = log

    # --- PostgreSQL ------------------------------------------------------------------------

    async def postgres_down(self, rng: random.Random, hold: float) -> str:
        """Fast shutdown for `hold` seconds, then the same server again: same port, same data."""
        server = self.platform.postgres
        if server is None:
            raise Skipped("the platform uses a database it did not start")
        try:
            # To its end even if cancelled meanwhile: starting it again before it is down fails.
            await undo(asyncio.to_thread(server.halt))
            await asyncio.sleep(hold)
        finally:
            began = time.monotonic()
            await undo(asyncio.to_thread(server.start))
        return f"PostgreSQL down {hold:.0f} s; serving again in {time.monotonic() - began:.1f} s"

    # --- the portal simulator --------------------------------------------------------------

    async def _held(self, url: str, changes: dict[str, Any], hold: float) -> None:
        """PUTs `changes` (merged by the simulator), waits, then PUTs back what they replaced."""
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
            before = (await http.get(url)).raise_for_status().json()
            restore = {key: before[key] for key in changes}
            try:
                (await http.put(url, json=changes)).raise_for_status()
                await asyncio.sleep(hold)
            finally:
                await undo(_put(url, restore))

    @property
    def _portal(self) -> str:
        return f"{self.platform.portal_url}/__control/config"

    async def portal_errors(self, rng: random.Random, hold: float) -> str:
        await self._held(self._portal, {"error_rate": 0.3}, hold)
        return f"portal answering 30% 5xx for {hold:.0f} s"

    async def portal_maintenance(self, rng: random.Random, hold: float) -> str:
        await self._held(self._portal, {"maintenance": True}, hold)
        return f"portal in maintenance (503, Retry-After) for {hold:.0f} s"

    async def portal_slow_download(self, rng: random.Random, hold: float) -> str:
        seconds = round(rng.uniform(4.0, 10.0), 1)
        changes = {"download": "slow", "download_delay_seconds": seconds}
        await self._held(self._portal, changes, hold)
        return f"portal PDFs taking {seconds} s each for {hold:.0f} s"

    async def portal_session_expiry(self, rng: random.Random, hold: float) -> str:
        """The portal's logged-in sessions end now, several times over `hold` seconds, so
        runners half way through the portal's forms find themselves logged out."""
        times = 0
        try:
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline:
                await _put(self._portal, {"expire_sessions_now": True})
                times += 1
                await asyncio.sleep(
                    min(rng.uniform(3.0, 8.0), max(0.0, deadline - time.monotonic()))
                )
        finally:
            await undo(_put(self._portal, {"expire_sessions_now": False}))
        return f"portal sessions expired {times} times over {hold:.0f} s"

    # --- Stripe's webhooks -----------------------------------------------------------------

    @property
    def _webhooks(self) -> str:
        return f"{self.platform.payments_url}/__control/webhooks/faults"

    async def webhooks_delayed(self, rng: random.Random, hold: float) -> str:
        seconds = round(rng.uniform(5.0, 20.0), 1)
        await self._held(self._webhooks, {"delay_seconds": seconds}, hold)
        return f"webhooks sent {seconds} s late for {hold:.0f} s"

    async def webhooks_duplicated(self, rng: random.Random, hold: float) -> str:
        await self._held(self._webhooks, {"copies": 3}, hold)
        return f"every webhook delivered three times for {hold:.0f} s"

    async def webhooks_reordered(self, rng: random.Random, hold: float) -> str:
        seconds = round(rng.uniform(3.0, 8.0), 1)
        await self._held(self._webhooks, {"reorder_seconds": seconds}, hold)
        return f"webhooks held {seconds} s and sent newest first, for {hold:.0f} s"

    async def webhook_lost(self, rng: random.Random, hold: float) -> str:
        """The next OXXO payment's `payment_intent.succeeded` is never delivered; waits up to
        `hold` seconds for one to be lost. The checks find its payment recorded by the reconcile
        CronJob (`checks.lost_webhooks_found`)."""
        url = self._webhooks
        lost: dict[str, Any] | None = None
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
            began = time.time()
            try:
                await _put(
                    url, {"lose_next": 1, "lose_types": [LOST_TYPE], "lose_methods": [LOST_METHOD]}
                )

                async def gone() -> dict[str, Any] | None:
                    answer = await http.get(f"{self.platform.payments_url}/__control/deliveries")
                    found = [d for d in answer.json()["deliveries"] if d["outcome"] == "lost"]
                    fresh = [d for d in found if d["at"] >= began]
                    return fresh[-1] if fresh else None

                lost = await wait_for(gone, hold)
            finally:
                await undo(_put(url, {"lose_next": 0, "lose_types": [], "lose_methods": []}))
        if lost is None:
            raise Skipped(f"no {LOST_METHOD} {LOST_TYPE} event came within {hold:.0f} s")
        return f"webhook of {lost['event_type']} {lost['event_id']} lost"


async def _put(url: str, changes: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        (await http.put(url, json=changes)).raise_for_status()
