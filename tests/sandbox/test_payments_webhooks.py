"""Webhooks: Stripe's signature scheme (checked by the SDK), retries with backoff, control API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import stripe

from tests.sandbox.payments_fixtures import SECRET, Harness, harness, oxxo_params

ROOT = Path(__file__).resolve().parents[2]
CARD = {"amount": 42_000, "currency": "mxn", "payment_method": "pm_card_visa", "confirm": True}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


async def test_signatures_verify_with_the_sdk_and_tampering_fails(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=CARD)
    received = await h.receiver.wait_for("payment_intent.succeeded", pi.id)
    assert received.signature.startswith("t=") and ",v1=" in received.signature
    event = stripe.Webhook.construct_event(received.body, received.signature, SECRET)
    assert event.type == "payment_intent.succeeded"
    assert event.data.object.id == pi.id and event.data.object.status == "succeeded"
    assert event.livemode is False and event.api_version == h.sim.config.api_version
    tampered = received.body.replace(b'"succeeded"', b'"canceled"')
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, received.signature, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received.body, received.signature, "whsec_other")
    # Stripe's five-minute tolerance: an old signature is refused even when the MAC matches.
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received.body, received.signature, SECRET, tolerance=-1)


async def test_retries_after_a_500_then_succeeds(h: Harness) -> None:
    h.receiver.statuses = [500, 503]
    pi = await h.call(
        h.client.v1.payment_intents.create, params={"amount": 20_000, "currency": "mxn"}
    )
    await h.sim.wait_for_deliveries()
    created = [e for e in h.receiver.events() if e["data"]["object"]["id"] == pi.id]
    assert len(created) == 3 and {e["id"] for e in created} == {created[0]["id"]}
    attempts = h.sim.deliveries(created[0]["id"])
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [
        (1, 500, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "succeeded"),
    ]
    # Exponential backoff: 0.1 s, then 0.2 s.
    assert attempts[1]["at"] - attempts[0]["at"] >= 0.09
    assert attempts[2]["at"] - attempts[1]["at"] >= 0.19
    # Every attempt is signed afresh and verifies.
    for r in h.receiver.received:
        stripe.Webhook.construct_event(r.body, r.signature, SECRET)
    event = await h.call(h.client.v1.events.retrieve, created[0]["id"])
    assert event.pending_webhooks == 0


async def test_gives_up_after_max_attempts_and_can_resend(h: Harness) -> None:
    h.receiver.statuses = [500] * 4
    pi = await h.call(
        h.client.v1.payment_intents.create, params={"amount": 20_000, "currency": "mxn"}
    )
    await h.sim.wait_for_deliveries()
    event_id = h.receiver.events()[0]["id"]
    outcomes = [a["outcome"] for a in h.sim.deliveries(event_id)]
    assert outcomes == ["retrying", "retrying", "retrying", "failed"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{h.sim.url}/__control/deliveries") as resp:
            listed = (await resp.json())["deliveries"]
        assert len(listed) == 4 and all(d["event_id"] == event_id for d in listed)
        async with http.post(f"{h.sim.url}/__control/events/{event_id}/resend") as resp:
            assert (await resp.json())["resent_to"] == 1
    await h.sim.wait_for_deliveries()
    assert h.sim.deliveries(event_id)[-1]["outcome"] == "succeeded"
    assert h.receiver.events()[-1]["data"]["object"]["id"] == pi.id


async def test_unreachable_endpoint_never_blocks_the_api(h: Harness) -> None:
    h.sim.configure_webhook("http://127.0.0.1:9/nothing-listens-here", SECRET)
    pi = await h.call(h.client.v1.payment_intents.create, params=CARD)
    assert pi.status == "succeeded"
    await h.sim.wait_for_deliveries()
    failures = [a for a in h.sim.deliveries() if a["outcome"] == "failed"]
    assert failures and all(a["status"] is None and a["error"] for a in failures)


async def test_reconfigure_endpoint_through_control(h: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        body = {"url": h.receiver.url, "secret": "whsec_rotated"}
        async with http.post(f"{h.sim.url}/__control/webhooks", json=body) as resp:
            assert resp.status == 200
            assert (await resp.json())["endpoints"][0]["url"] == h.receiver.url
    pi = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    received = await h.receiver.wait_for("payment_intent.requires_action", pi.id)
    stripe.Webhook.construct_event(received.body, received.signature, "whsec_rotated")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received.body, received.signature, SECRET)


async def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "sandbox"), str(ROOT)])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "permisos_sandbox.payments",
        "--port",
        "0",
        "--api-key",
        "sk_test_cli",
        "--webhook-secret",
        "whsec_cli",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("payments listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer sk_test_cli"}
            async with http.get(f"{url}/v1/payment_intents", headers=headers) as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert proc.stderr is not None
        logs = (await proc.stderr.read()).decode()
        lines = [json.loads(x) for x in logs.splitlines() if x.startswith("{")]
        assert any("GET /v1/payment_intents 200" in x["message"] for x in lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
