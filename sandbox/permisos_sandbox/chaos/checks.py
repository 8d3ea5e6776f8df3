"""The invariants, judged on the evidence: each check lists its problems by application id (never
personal data), and the tallies the table prints (lost, doubled) are the applications that broke
the money-keeping or the exactly-once checks."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .client import Call
from .evidence import Evidence
from .load import UNPAID_FINAL, Outcome

FINAL = frozenset({"permit_ready", "permit_failed", "refunded"})
KINDS = ("certificate", "permit", "placard")
# A 503 this long after PostgreSQL is back still counts as its outage: the pools find their
# connections dead on first use and the pods' readiness follows.
POSTGRES_GRACE_SECONDS = 15.0


class Window(Protocol):
    """A fault's time span (the faults' Injection)."""

    @property
    def kind(self) -> str: ...
    @property
    def started(self) -> float: ...
    @property
    def ended(self) -> float: ...


@dataclass
class Check:
    name: str
    problems: dict[str, list[str]] = field(default_factory=dict)  # application id (or "-")
    judged: int = 0  # how many things it looked at: a check of nothing is no check

    def fail(self, key: str, why: str) -> None:
        self.problems.setdefault(key, []).append(why)

    @property
    def ok(self) -> bool:
        return not self.problems and self.judged > 0


@dataclass
class Verdict:
    checks: list[Check]
    lost: set[str]
    doubled: set[str]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.lost and not self.doubled


def money_taken(ev: Evidence) -> Counter[str]:
    """Applications and how many of their PaymentIntents Stripe says succeeded."""
    return Counter(
        str(pi["metadata"].get("application_id"))
        for pi in ev.intents
        if pi["status"] == "succeeded" and pi.get("metadata")
    )


def judge(
    ev: Evidence, outcomes: Sequence[Outcome], calls: Sequence[Call], faults: Iterable[Window]
) -> Verdict:
    money, windows = money_taken(ev), list(faults)
    keeping = [none_stuck(ev, money), ready_files(ev), failed_reasons(ev, outcomes)]
    keeping.append(refunds_listed(ev, money))
    once = [one_submission(ev), one_request_per_lineage(ev), payments_once(ev, money)]
    others = [no_server_errors(calls, windows), database_agrees(ev), journeys(outcomes)]
    if any(w.kind == "webhook-lost" for w in windows):
        others.append(lost_webhooks_found(ev))
    lost = {a for c in keeping for a in c.problems if a in money}
    doubled = {a for c in once for a in c.problems}
    return Verdict([*keeping, *once, *others], lost, doubled)


def none_stuck(ev: Evidence, money: Counter[str]) -> Check:
    check = Check("every paid application ends permit_ready or permit_failed (none stuck)")
    paid = {a for a, row in ev.applications.items() if row["paid_at"]} | set(money)
    for a in paid:
        check.judged += 1
        status = ev.applications[a]["status"] if a in ev.applications else "missing"
        if status not in FINAL:
            check.fail(a, f"paid, still {status}")
    return check


def ready_files(ev: Evidence) -> Check:
    check = Check("permit_ready: three PDFs in S3 whose SHA-256 match the status")
    requests = {pr["metadata"]["name"]: pr for pr in ev.permit_requests}
    for a, row in ev.applications.items():
        if row["status"] != "permit_ready":
            continue
        check.judged += 1
        permit = ev.current_permit(a)
        pr = requests.get(permit["request_name"]) if permit else None
        if permit is None or pr is None:
            check.fail(a, "no current permit or PermitRequest")
            continue
        status = pr.get("status") or {}
        artifacts = {x["kind"]: x for x in (status.get("result") or {}).get("artifacts") or []}
        if status.get("phase") != "Succeeded" or tuple(sorted(artifacts)) != KINDS:
            check.fail(a, f"PermitRequest {status.get('phase')} with {sorted(artifacts)}")
            continue
        for kind, x in artifacts.items():
            if ev.objects.get(x["key"]) != (x["sha256"], x["bytes"]):
                check.fail(a, f"{kind}: S3 holds {ev.objects.get(x['key'])}, status says other")
        listed = {x["kind"]: x["sha256"] for x in permit["artifacts"] or []}
        if listed != {k: x["sha256"] for k, x in artifacts.items()}:
            check.fail(a, "the API lists other checksums than the PermitRequest's")
    return check


def failed_reasons(ev: Evidence, outcomes: Sequence[Outcome]) -> Check:
    check = Check("permit_failed: a reason the applicant and the admin read")
    seen = {o.application_id: o for o in outcomes if o.application_id}
    for a, row in ev.applications.items():
        if row["status"] != "permit_failed":
            continue
        check.judged += 1
        permit = ev.current_permit(a) or {}
        if not (permit.get("reason") and permit.get("message")):
            check.fail(a, f"no reason or message: {permit.get('reason')!r}")
        if a in seen and not (seen[a].permit_reason and seen[a].permit_message):
            check.fail(a, "the applicant's last read of it shows no reason")
        if a not in ev.admin_failed:
            check.fail(a, "not in the admin's listing of failed permits")
    return check


def refunds_listed(ev: Evidence, money: Counter[str]) -> Check:
    """Money the platform keeps no permit for is listed for a refund: a failed permit (above) or
    a payment flagged for a refund by hand; and every payment Stripe took is in the database."""
    check = Check("every payment Stripe took is recorded; refund-worthy ones listed for the admin")
    recorded = {p["stripe_payment_intent_id"]: p for p in ev.payments}
    for pi in ev.intents:
        if pi["status"] != "succeeded":
            continue
        check.judged += 1
        a = str((pi.get("metadata") or {}).get("application_id"))
        payment = recorded.get(pi["id"])
        if payment is None or payment["status"] != "succeeded":
            said = payment["status"] if payment else "nothing"
            check.fail(a, f"Stripe took {pi['id']}; the database says {said}")
        elif (
            payment["manual_refund_required"]
            and not payment["refunded_at"]
            and payment["id"] not in ev.admin_manual_refunds
        ):
            check.fail(a, "flagged for a manual refund but not listed for the admin")
    return check


def lost_webhooks_found(ev: Evidence) -> Check:
    """Each payment whose `succeeded` webhook was lost (an OXXO one: nothing else tells the API)
    is recorded, and it was the reconcile CronJob, asking Stripe, that found it."""
    check = Check("every payment whose webhook was lost was found by the reconcile CronJob")
    recorded = {p["stripe_payment_intent_id"]: p for p in ev.payments}
    owners = {pi["id"]: str((pi.get("metadata") or {}).get("application_id")) for pi in ev.intents}
    for intent_id in ev.lost_webhooks:
        check.judged += 1
        a = owners.get(intent_id, "-")
        payment = recorded.get(intent_id)
        if payment is None or payment["status"] != "succeeded":
            said = payment["status"] if payment else "nothing"
            check.fail(a, f"the webhook of {intent_id} was lost; the database says {said}")
        elif intent_id not in ev.reconciled:
            check.fail(a, f"{intent_id} is recorded, but the reconcile CronJob never found it")
    return check


def one_submission(ev: Evidence) -> Check:
    check = Check("the portal received at most one submission per application")
    for a, count in ev.submissions.items():
        check.judged += 1
        if count > 1:
            check.fail(a, f"{count} submissions")
        if ev.applications[a]["status"] == "permit_ready" and count != 1:
            check.fail(a, f"permit_ready from {count} submissions")
    return check


def one_request_per_lineage(ev: Evidence) -> Check:
    check = Check("at most one PermitRequest per application and attempt lineage")
    lineages = defaultdict(set)
    for permit in ev.permits:
        lineages[permit["application_id"]].add(permit["request_name"])
    by_application: dict[str, list[str]] = defaultdict(list)
    for pr in ev.permit_requests:
        by_application[pr["spec"]["applicationId"]].append(pr["metadata"]["name"])
    for a, names in by_application.items():
        check.judged += 1
        row = ev.applications.get(a)
        if row is None or not row["paid_at"]:
            check.fail(a, f"{len(names)} PermitRequests for an unpaid application")
        if not set(names) <= lineages[a] or len(names) > row_retries(row) + 1:
            check.fail(a, f"PermitRequests {sorted(names)} for lineages {sorted(lineages[a])}")
    return check


def row_retries(row: dict[str, Any] | None) -> int:
    return int(row["permit_retries"]) if row else 0


def payments_once(ev: Evidence, money: Counter[str]) -> Check:
    check = Check("no payment counted twice")
    counted = Counter(
        p["application_id"]
        for p in ev.payments
        if p["status"] == "succeeded" and not p["manual_refund_required"]
    )
    succeeded = Counter(p["application_id"] for p in ev.payments if p["status"] == "succeeded")
    for a in set(money) | set(succeeded):
        check.judged += 1
        if counted[a] > 1:
            check.fail(a, f"{counted[a]} payments counted toward one permit")
        if succeeded[a] != money[a]:
            check.fail(a, f"Stripe took {money[a]}, the database has {succeeded[a]} succeeded")
    return check


def no_server_errors(calls: Sequence[Call], faults: Sequence[Window]) -> Check:
    check = Check("no 5xx from the API but a 503 with Retry-After while PostgreSQL is down")
    down = [f for f in faults if "postgres" in f.kind]
    for call in calls:
        if call.status is None:
            continue
        check.judged += 1
        if call.status < 500:
            continue
        during = any(
            call.ended >= f.started and call.started <= f.ended + POSTGRES_GRACE_SECONDS
            for f in down
        )
        if not (call.status == 503 and call.retry_after and during):
            at = time.strftime("%H:%M:%S", time.gmtime(call.started))
            check.fail(f"{call.method} {call.route}", f"{call.status} at {at}")
    return check


def database_agrees(ev: Evidence) -> Check:
    """The API's mirror holds what the cluster says of each current permit."""
    check = Check("the database agrees with the PermitRequests")
    requests = {pr["metadata"]["name"]: pr for pr in ev.permit_requests}
    for a, row in ev.applications.items():
        permit = ev.current_permit(a)
        if permit is None or permit["request_name"] not in requests:
            continue
        check.judged += 1
        status = requests[permit["request_name"]].get("status") or {}
        if status.get("phase") != permit["phase"]:
            check.fail(a, f"database {permit['phase']}, cluster {status.get('phase')}")
        if (status.get("result") or {}).get("folio") != permit["folio"]:
            check.fail(a, "the folios differ")
        expected = {"Succeeded": "permit_ready", "Failed": "permit_failed"}.get(permit["phase"])
        if expected and row["status"] not in (expected, "refunded"):
            check.fail(a, f"permit {permit['phase']} but application {row['status']}")
    return check


def journeys(outcomes: Sequence[Outcome]) -> Check:
    """Each applicant got through its steps and saw the end its scenario leads to."""
    check = Check("every applicant's journey ended as its scenario leads")
    for o in outcomes:
        check.judged += 1
        key = o.application_id or f"applicant {o.index}"
        if o.error:
            check.fail(key, f"{o.scenario}: {o.error}")
        elif o.scenario == "rejected" and (o.status, o.permit_reason) != (
            "permit_failed",
            "PortalRejected",
        ):
            check.fail(key, f"rejected plates ended {o.status} ({o.permit_reason})")
        elif o.status not in UNPAID_FINAL.get(o.scenario, FINAL):
            check.fail(key, f"{o.scenario}: last seen {o.status}")
    return check
