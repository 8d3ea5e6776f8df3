"""/v1/admin: search, detail, refunds (card through the simulator, OXXO by hand), user accounts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from permisos_api.db import utcnow
from tests.api.conftest import (
    APPLICATION,
    CURP,
    PASSWORD,
    Api,
    login,
    set_permit,
    unique_email,
)
from tests.api.payments_support import Pay


def _failed(pay: Pay, app_id: str) -> None:
    """What the operator-side mirror writes when the permit fails for good."""
    pay.sql("UPDATE applications SET status = 'permit_failed' WHERE id = %s", app_id)
    set_permit(pay.api.settings, app_id, phase="Failed", reason="PortalRejected")
    pay.sql(
        "INSERT INTO permit_history (application_id, phase, reason, attempt, transitioned_at) "
        "VALUES (%s, 'Failed', 'PortalRejected', 1, now()) RETURNING id",
        app_id,
    )


async def test_search_and_detail(
    api: Api, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    owner = await make_user()
    admin = await make_user("admin")
    email = unique_email("Buscado")
    r = await owner.client.post(
        "/v1/applications",
        json={**APPLICATION, "email": email, "plates": "xyz-9876"},
        headers=owner.bearer(),
    )
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    h = admin.bearer()

    caplog.set_level(logging.INFO, logger="permisos_api.admin")
    r = await admin.client.get("/v1/admin/applications", params={"email": email.upper()}, headers=h)
    assert r.status_code == 200, r.text
    assert [a["id"] for a in r.json()["items"]] == [app_id] and r.json()["total"] == 1
    r = await admin.client.get(
        "/v1/admin/applications",
        params={"plates": "XYZ 9876", "curp": CURP.lower(), "status": "draft"},
        headers=h,
    )
    assert app_id in [a["id"] for a in r.json()["items"]]
    r = await admin.client.get(
        "/v1/admin/applications", params={"plates": "XYZ9876", "status": "paid"}, headers=h
    )
    assert app_id not in [a["id"] for a in r.json()["items"]]
    r = await admin.client.get("/v1/admin/applications", params={"limit": 1}, headers=h)
    assert r.status_code == 200 and len(r.json()["items"]) == 1 and r.json()["limit"] == 1

    r = await admin.client.get(f"/v1/admin/applications/{app_id}", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["application"]["id"] == app_id and body["application"]["owner_id"] == owner.id
    assert body["payments"] == [] and body["payment_events"] == []
    assert body["permit_history"] == []
    r = await admin.client.get(f"/v1/admin/applications/{uuid.uuid4()}", headers=h)
    assert r.status_code == 404

    lines = [rec.getMessage() for rec in caplog.records if rec.name == "permisos_api.admin"]
    assert any(f"admin={admin.id} action=view_application" in line for line in lines)
    assert not any(email.lower() in line.lower() or CURP in line for line in lines)


async def test_card_refund_after_failed_permit(pay: Pay, make_user: Callable[..., Any]) -> None:
    user = await make_user()
    admin = await make_user("admin")
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201, r.text
    payment_id, intent_id = r.json()["payment_id"], r.json()["intent_id"]
    await pay.sim.wait_for_deliveries()

    # Paid but the permit has not failed: refusing.
    url = f"/v1/admin/applications/{app_id}/refund"
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 409 and r.json()["type"].endswith("/invalid-state")

    _failed(pay, app_id)
    # Money that came in later for the paid application (a stale card tab): flagged for a
    # human, so the refund here is the payment that paid, not this newer one.
    pay.sql(
        "INSERT INTO payments (id, application_id, method, stripe_payment_intent_id, "
        "idempotency_key, status, amount_centavos, currency, succeeded_at, "
        "manual_refund_required, created_at, updated_at) SELECT gen_random_uuid(), id, 'card', "
        "'pi_extra_' || id::text, 'extra:' || id::text, 'succeeded', amount_centavos, 'MXN', "
        "now() + interval '1 minute', true, now(), now() FROM applications WHERE id = %s",
        app_id,
    )
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "refunded" and body["payment_id"] == payment_id
    refund = await pay.sim_call(pay.stripe.v1.refunds.retrieve, body["refund_id"])
    assert refund.payment_intent == intent_id and refund.amount == 150_000
    assert refund.status == "succeeded"
    rows = pay.sql(
        "SELECT refund_id, refunded_at IS NOT NULL FROM payments WHERE id = %s", payment_id
    )
    assert rows == [(body["refund_id"], True)]
    assert (await pay.application(user, app_id))["status"] == "refunded"

    # Refunded: a second refund is refused.
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 409

    detail = await admin.client.get(f"/v1/admin/applications/{app_id}", headers=admin.bearer())
    d = detail.json()
    refunded = {p["id"]: p["refund_id"] for p in d["payments"]}
    assert refunded[payment_id] == body["refund_id"]
    # The extra payment stays a human's refund, still listed for one.
    manual = await admin.client.get("/v1/admin/refunds/manual", headers=admin.bearer())
    assert [p["application_id"] for p in manual.json()["items"]].count(app_id) == 1
    assert d["permit_history"][0]["phase"] == "Failed"
    assert any(e["type"] == "payment_intent.succeeded" for e in d["payment_events"])
    assert all("detail" not in e for e in d["payment_events"])
    assert "juana" not in str(d["payment_events"]).lower()


async def test_retry_a_failed_permit(
    pay: Pay, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    user = await make_user()
    admin = await make_user("admin")
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201, r.text
    await pay.sim.wait_for_deliveries()
    url = f"/v1/admin/applications/{app_id}/retry-permit"

    # Paid, the permit not failed: nothing to retry.
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 409 and r.json()["type"].endswith("/invalid-state")
    _failed(pay, app_id)
    set_permit(
        pay.api.settings,
        app_id,
        folio="F-1",
        message="no",
        updated_at=utcnow(),
        artifacts=[],
        notice_sent_at=utcnow(),
    )
    r = await user.client.post(url, headers=user.bearer())
    assert r.status_code == 403
    # The lists show each application's current permit too (loaded for the page at once).
    r = await admin.client.get(
        "/v1/admin/applications", params={"status": "permit_failed"}, headers=admin.bearer()
    )
    assert {a["id"]: a["permit_phase"] for a in r.json()["items"]}[app_id] == "Failed"
    r = await user.client.get("/v1/applications", headers=user.bearer())
    assert {a["id"]: a["permit_reason"] for a in r.json()["items"]}[app_id] == "PortalRejected"

    caplog.set_level(logging.INFO, logger="permisos_api.admin")
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 202, r.text
    assert r.json() == {
        "application_id": app_id,
        "retry": 1,
        "permit_request": f"{app_id}-r1",
        "status": "paid",
    }
    rows = pay.sql("SELECT status, permit_retries FROM applications WHERE id = %s", app_id)
    assert rows == [("paid", 1)]
    # The retry is a permit of its own; the failed one keeps what it came to.
    permits = pay.sql(
        "SELECT retry, request_name, phase, reason, folio, notice_sent_at IS NULL "
        "FROM permits WHERE application_id = %s ORDER BY retry",
        app_id,
    )
    assert permits == [
        (0, app_id, "Failed", "PortalRejected", "F-1", False),
        (1, f"{app_id}-r1", None, None, None, True),
    ]
    shown = await pay.application(user, app_id)
    assert shown["permit_phase"] is None and shown["permit_reason"] is None
    kinds = pay.sql(
        "SELECT kind, dispatched_at IS NULL FROM outbox WHERE application_id = %s ORDER BY id",
        app_id,
    )
    assert ("permit_request_r1", True) in kinds
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "permisos_api.admin"]
    assert any(f"admin={admin.id} action=retry_permit" in line for line in lines)

    # Not failed any more: a second retry is refused, and nothing more is queued.
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 409
    count = pay.sql("SELECT count(*) FROM outbox WHERE application_id = %s", app_id)
    assert count == [(len(kinds),)]
    detail = await admin.client.get(f"/v1/admin/applications/{app_id}", headers=admin.bearer())
    assert detail.json()["application"]["permit_retries"] == 1
    listed = [(p["retry"], p["request_name"], p["phase"]) for p in detail.json()["permits"]]
    assert listed == [(0, app_id, "Failed"), (1, f"{app_id}-r1", None)]

    # Failed again and refunded: no retry.
    _failed(pay, app_id)
    r = await admin.client.post(f"/v1/admin/applications/{app_id}/refund", headers=admin.bearer())
    assert r.status_code == 200, r.text
    r = await admin.client.post(url, headers=admin.bearer())
    assert r.status_code == 409
    r = await admin.client.post(
        f"/v1/admin/applications/{uuid.uuid4()}/retry-permit", headers=admin.bearer()
    )
    assert r.status_code == 404


async def test_oxxo_refund_is_manual(pay: Pay, make_user: Callable[..., Any]) -> None:
    user = await make_user()
    admin = await make_user("superadmin")
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 201, r.text
    payment_id, intent_id = r.json()["payment_id"], r.json()["intent_id"]
    pay.sim.pay_oxxo(intent_id)
    await pay.status_becomes(user, app_id, "paid")
    await pay.sim.wait_for_deliveries()
    _failed(pay, app_id)

    r = await admin.client.post(f"/v1/admin/applications/{app_id}/refund", headers=admin.bearer())
    assert r.status_code == 202, r.text
    assert r.json()["outcome"] == "manual_refund_required" and r.json()["refund_id"] is None
    assert (await pay.application(user, app_id))["status"] == "permit_failed"

    r = await admin.client.get("/v1/admin/refunds/manual", headers=admin.bearer())
    assert r.status_code == 200
    assert payment_id in [p["id"] for p in r.json()["items"]]

    mark = f"/v1/admin/payments/{payment_id}/manual-refund"
    r = await admin.client.post(mark, headers=admin.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["refunded_at"] and r.json()["manual_refund_required"]
    assert (await pay.application(user, app_id))["status"] == "refunded"
    r = await admin.client.get("/v1/admin/refunds/manual", headers=admin.bearer())
    assert payment_id not in [p["id"] for p in r.json()["items"]]
    r = await admin.client.post(mark, headers=admin.bearer())
    assert r.status_code == 409
    r = await admin.client.post(
        f"/v1/admin/payments/{uuid.uuid4()}/manual-refund", headers=admin.bearer()
    )
    assert r.status_code == 404


async def test_refund_refused_in_other_states(api: Api, make_user: Callable[..., Any]) -> None:
    user = await make_user()
    admin = await make_user("admin")
    r = await user.client.post("/v1/applications", json=APPLICATION, headers=user.bearer())
    app_id = r.json()["id"]
    r = await admin.client.post(f"/v1/admin/applications/{app_id}/refund", headers=admin.bearer())
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    r = await admin.client.post(
        f"/v1/admin/applications/{uuid.uuid4()}/refund", headers=admin.bearer()
    )
    assert r.status_code == 404


async def test_disable_and_enable(api: Api, make_user: Callable[..., Any]) -> None:
    user = await make_user()
    admin = await make_user("admin")
    superadmin = await make_user("superadmin")
    r = await admin.client.post(f"/v1/admin/users/{user.id}/disable", headers=admin.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["disabled_at"] and r.json()["id"] == user.id
    # Every session revoked; no new login.
    r = await user.client.get("/v1/auth/session", headers=user.bearer())
    assert r.status_code == 401
    r = await login(api.client(), user.email)
    assert r.status_code == 403 and r.json()["type"].endswith("/account-disabled")

    r = await admin.client.post(f"/v1/admin/users/{user.id}/enable", headers=admin.bearer())
    assert r.status_code == 200 and r.json()["disabled_at"] is None
    r = await api.client().post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200, r.text

    # An admin cannot disable a superadmin (nor themselves); a superadmin can.
    r = await admin.client.post(f"/v1/admin/users/{superadmin.id}/disable", headers=admin.bearer())
    assert r.status_code == 403
    r = await admin.client.post(f"/v1/admin/users/{admin.id}/disable", headers=admin.bearer())
    assert r.status_code == 409
    r = await superadmin.client.post(
        f"/v1/admin/users/{admin.id}/disable", headers=superadmin.bearer()
    )
    assert r.status_code == 200
    r = await admin.client.get("/v1/admin/refunds/manual", headers=admin.bearer())
    assert r.status_code == 401
    r = await superadmin.client.post(
        f"/v1/admin/users/{uuid.uuid4()}/disable", headers=superadmin.bearer()
    )
    assert r.status_code == 404
