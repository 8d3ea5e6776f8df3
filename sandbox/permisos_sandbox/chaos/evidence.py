"""What the checks judge, gathered once the run has settled, each from its own source of truth:
the API's database, the PermitRequests (the Kubernetes API), the portal simulator's submission
records, S3, Stripe's (the simulator's) PaymentIntents and what the admin API lists. No personal
data is read: ids, statuses, reasons, checksums and times only."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from permisos.kube import JSON
from permisos.resources import API_VERSION
from permisos_sandbox.platform import Platform
from permisos_sandbox.platform.stack import STRIPE_KEY

from .client import CallLog, RetryingTransport

ADMIN_EMAIL = "chaos-admin@example.com"
ADMIN_PASSWORD = "Administradora-del-caos-42"  # noqa: S105 (the run's own admin)
PAGE = 100


@dataclass
class Evidence:
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    permits: list[dict[str, Any]] = field(default_factory=list)  # every lineage's row
    payments: list[dict[str, Any]] = field(default_factory=list)
    ready_at: dict[str, datetime] = field(default_factory=dict)  # application -> Succeeded
    permit_requests: list[JSON] = field(default_factory=list)
    submissions: dict[str, int] = field(default_factory=dict)  # application -> at the portal
    objects: dict[str, tuple[str, int] | None] = field(default_factory=dict)  # S3 key -> sha, size
    intents: list[JSON] = field(default_factory=list)  # Stripe's
    admin_failed: set[str] = field(default_factory=set)  # application ids
    admin_manual_refunds: set[str] = field(default_factory=set)  # payment ids
    lost_webhooks: dict[str, str] = field(default_factory=dict)  # PaymentIntent -> lost event
    reconciled: set[str] = field(default_factory=set)  # PaymentIntents the CronJob repaired

    def current_permit(self, application_id: str) -> dict[str, Any] | None:
        retries = self.applications[application_id]["permit_retries"]
        for permit in self.permits:
            if permit["application_id"] == application_id and permit["retry"] == retries:
                return permit
        return None


async def gather(p: Platform, log: CallLog) -> tuple[Evidence, dict[str, str]]:
    """Every source in turn; one that does not answer is named with its error (the others are
    still read, so the table says as much as can be known)."""
    found = Evidence()
    failed: dict[str, str] = {}

    async def source(name: str, read: Awaitable[None]) -> None:
        try:
            await read
        except Exception as error:  # a source down after the run: said, not fatal
            failed[name] = f"{type(error).__name__}: {str(error)[:200]}"

    await source("the database", asyncio.to_thread(read_database, p.database_url, found))
    await source("the PermitRequests", _permit_requests_into(p, found))
    await source("the portal's submissions", _submissions(p, found))
    await source("Stripe's PaymentIntents", _intents(p.payments_url, found))
    await source("Stripe's lost webhooks", _lost_webhooks(p.payments_url, found))
    await source("the reconcile CronJob's logs", asyncio.to_thread(_reconciled, p, found))
    await source("S3", asyncio.to_thread(_from_s3, p, found))
    await source("the admin API", _from_admin(p, log, found))
    return found, failed


def read_database(url: str, found: Evidence) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            for row in conn.execute(
                text("SELECT id, status, paid_at, permit_retries FROM applications")
            ).mappings():
                found.applications[str(row["id"])] = dict(row)
            permits = conn.execute(
                text(
                    "SELECT application_id, retry, request_name, phase, reason, message, folio, "
                    "artifacts FROM permits"
                )
            ).mappings()
            found.permits = [{**r, "application_id": str(r["application_id"])} for r in permits]
            payments = conn.execute(
                text(
                    "SELECT id, application_id, method, status, stripe_payment_intent_id, "
                    "manual_refund_required, refunded_at, succeeded_at FROM payments"
                )
            ).mappings()
            found.payments = [
                {**r, "id": str(r["id"]), "application_id": str(r["application_id"])}
                for r in payments
            ]
            ready = conn.execute(
                text(
                    "SELECT application_id, min(transitioned_at) AS at FROM permit_history "
                    "WHERE phase = 'Succeeded' GROUP BY application_id"
                )
            ).mappings()
            found.ready_at = {str(r["application_id"]): r["at"] for r in ready}
    finally:
        engine.dispose()


async def permit_requests(p: Platform) -> list[JSON]:
    path = f"/apis/{API_VERSION}/namespaces/{p.config.namespace}/permitrequests"
    listed = await p.kube.get(path)
    items: list[JSON] = (listed or {}).get("items") or []
    return items


async def _permit_requests_into(p: Platform, found: Evidence) -> None:
    found.permit_requests = await permit_requests(p)


async def _submissions(p: Platform, found: Evidence) -> None:
    async with httpx.AsyncClient(timeout=30.0) as http:
        for application_id in found.applications:
            r = await http.get(
                f"{p.portal_url}/__control/submissions", params={"referencia": application_id}
            )
            r.raise_for_status()
            found.submissions[application_id] = int(r.json()["count"])


async def _intents(payments_url: str, found: Evidence) -> None:
    """Every PaymentIntent, as Stripe lists them (pages of 100)."""
    after: str | None = None
    async with httpx.AsyncClient(timeout=30.0) as http:
        while True:
            params: dict[str, Any] = {"limit": PAGE} | ({"starting_after": after} if after else {})
            r = await http.get(
                f"{payments_url}/v1/payment_intents",
                params=params,
                headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            )
            r.raise_for_status()
            page = r.json()
            found.intents += page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            after = page["data"][-1]["id"]


async def _lost_webhooks(payments_url: str, found: Evidence) -> None:
    """The PaymentIntents whose events the simulator lost (its delivery log), by the event."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        r = await http.get(f"{payments_url}/__control/deliveries")
        r.raise_for_status()
        for delivery in r.json()["deliveries"]:
            if delivery["outcome"] != "lost":
                continue
            event = await http.get(
                f"{payments_url}/v1/events/{delivery['event_id']}",
                headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            )
            event.raise_for_status()
            found.lost_webhooks[event.json()["data"]["object"]["id"]] = delivery["event_id"]


REPAIRED = re.compile(r"repaired (pi_\w+): now succeeded")


def _reconciled(p: Platform, found: Evidence) -> None:
    """What the reconcile CronJob's runs say they repaired, from the node's logs (its Jobs' pods
    are gone by now, past the CronJob's history limit)."""
    assert p.kubernetes is not None
    for path in p.kubernetes.pod_logs.glob("*-reconcile-*/reconcile/*.log"):
        found.reconciled.update(REPAIRED.findall(path.read_text(errors="replace")))


def _from_s3(p: Platform, found: Evidence) -> None:
    """The objects every Succeeded PermitRequest names: their SHA-256 and size as stored."""
    assert p.s3 is not None
    s3 = p.s3.client()
    for pr in found.permit_requests:
        result = (pr.get("status") or {}).get("result") or {}
        for artifact in result.get("artifacts") or []:
            try:
                body = s3.get_object(Bucket=p.config.bucket, Key=artifact["key"])["Body"].read()
            except s3.exceptions.NoSuchKey:
                found.objects[artifact["key"]] = None
                continue
            found.objects[artifact["key"]] = (hashlib.sha256(body).hexdigest(), len(body))


async def _from_admin(p: Platform, log: CallLog, found: Evidence) -> None:
    """What an admin sees: the failed permits' listing and the payments awaiting a refund."""
    async with httpx.AsyncClient(
        base_url=p.api_url, timeout=30.0, transport=RetryingTransport(log)
    ) as http:
        r = await http.post(
            "/v1/auth/login",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "issue_bearer": True},
        )
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        offset = 0
        while True:
            r = await http.get(
                "/v1/admin/applications",
                params={"status": "permit_failed", "limit": PAGE, "offset": offset},
                headers=auth,
            )
            r.raise_for_status()
            page = r.json()
            found.admin_failed |= {item["id"] for item in page["items"]}
            offset += PAGE
            if offset >= page["total"]:
                break
        r = await http.get("/v1/admin/refunds/manual", headers=auth)
        r.raise_for_status()
        found.admin_manual_refunds = {item["id"] for item in r.json()["items"]}
