"""ARCO rights: exporting all of one's data, and deleting the account (anonymization)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Json

from permisos_api.privacy import PLACEHOLDERS
from permisos_api.settings import ApiSettings

from .conftest import APPLICATION, CURP, PASSWORD, Api, login, set_permit


def _sql(settings: ApiSettings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


async def _paid_application(settings: ApiSettings, user: Any) -> tuple[str, str]:
    """An application with a succeeded card payment, its event and an issued permit."""
    r = await user.client.post("/v1/applications", json=APPLICATION, headers=user.bearer())
    assert r.status_code == 201, r.text
    application_id = r.json()["id"]
    intent = f"pi_{uuid.uuid4().hex[:20]}"
    now = datetime.now(UTC)
    _sql(
        settings,
        "INSERT INTO payments (id, application_id, method, stripe_payment_intent_id, "
        "idempotency_key, status, amount_centavos, succeeded_at, created_at, updated_at) "
        "VALUES (%s, %s, 'card', %s, %s, 'succeeded', 150000, %s, %s, %s)",
        uuid.uuid4(),
        application_id,
        intent,
        f"key-{intent}",
        now,
        now,
        now,
    )
    _sql(
        settings,
        "INSERT INTO payment_events (id, application_id, payment_intent_id, type, status, "
        "amount_centavos, currency, stripe_created_at, outcome, detail) "
        "VALUES (%s, %s, %s, 'payment_intent.succeeded', 'succeeded', 150000, 'mxn', %s, "
        "'applied', %s)",
        f"evt_{uuid.uuid4().hex[:20]}",
        application_id,
        intent,
        now,
        Json({"id": intent}),
    )
    _sql(
        settings,
        "INSERT INTO permit_history (application_id, phase, attempt, transitioned_at) "
        "VALUES (%s, 'Succeeded', 1, %s)",
        application_id,
        now,
    )
    _sql(
        settings,
        "UPDATE applications SET status = 'permit_ready', paid_at = %s, payment_method = 'card' "
        "WHERE id = %s",
        now,
        application_id,
    )
    set_permit(settings, application_id, phase="Succeeded", folio="F-1")
    return application_id, intent


async def test_export_has_all_my_data_and_nobody_elses(
    api: Api, settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    owner, other = await make_user(), await make_user()
    application_id, intent = await _paid_application(settings, owner)
    await _paid_application(settings, other)

    r = await owner.client.get("/v1/me/export", headers=owner.bearer())
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["account"]["id"] == owner.id
    assert data["account"]["email"] == owner.email
    assert "password_hash" not in data["account"]
    assert [a["id"] for a in data["applications"]] == [application_id]
    assert data["applications"][0]["curp"] == CURP
    assert [p["stripe_payment_intent_id"] for p in data["payments"]] == [intent]
    assert [e["payment_intent_id"] for e in data["payment_events"]] == [intent]
    assert "detail" not in data["payment_events"][0]
    assert [h["phase"] for h in data["permit_history"]] == ["Succeeded"]
    assert data["permit_downloads"] == []
    assert len(data["sessions"]) >= 2
    assert other.email not in r.text

    r = await api.client().get("/v1/me/export")
    assert r.status_code == 401


async def test_delete_account_anonymizes_and_keeps_payments(
    api: Api, settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    owner, other = await make_user(), await make_user()
    application_id, intent = await _paid_application(settings, owner)
    others_application, _ = await _paid_application(settings, other)

    # The password is required, and must be right.
    r = await owner.client.request("DELETE", "/v1/me", headers=owner.bearer())
    assert r.status_code == 422, r.text
    r = await owner.client.request(
        "DELETE", "/v1/me", json={"password": "Incorrecto-99"}, headers=owner.bearer()
    )
    assert r.status_code == 401, r.text
    # A cookie session needs its CSRF token, as for any unsafe request.
    r = await owner.client.request("DELETE", "/v1/me", json={"password": PASSWORD})
    assert r.status_code == 403, r.text

    r = await owner.client.request(
        "DELETE", "/v1/me", json={"password": PASSWORD}, headers={"X-CSRF-Token": owner.csrf}
    )
    assert r.status_code == 204, r.text

    # Every session is gone, and no login opens the account again.
    for headers in ({}, owner.bearer()):
        r = await owner.client.get("/v1/me/export", headers=headers)
        assert r.status_code == 401, r.text
    r = await login(api.client(), owner.email)
    assert r.status_code == 401, r.text

    ((email, deleted_at),) = _sql(
        settings, "SELECT email, deleted_at FROM users WHERE id = %s", owner.id
    )
    assert email.startswith("deleted-") and email.endswith("@invalid")
    assert deleted_at is not None
    ((first, last, maternal, curp, mail, phone, anonymized_at, plates),) = _sql(
        settings,
        "SELECT first_name, last_name, maternal_surname, curp, email, phone, anonymized_at, "
        "plates FROM applications WHERE id = %s",
        application_id,
    )
    assert APPLICATION["first_name"] not in (first, last)
    assert curp != CURP and mail != APPLICATION["email"] and phone.strip("0") == ""
    assert anonymized_at is not None
    # The same placeholders as the cleanup command's erasure (permisos_api.privacy); the vehicle
    # stays.
    assert {
        "first_name": first,
        "last_name": last,
        "maternal_surname": maternal,
        "curp": curp,
        "email": mail,
        "phone": phone,
    } == PLACEHOLDERS
    assert plates == "JKL4821"

    # The payment records stay, as the law requires.
    assert _sql(
        settings, "SELECT status FROM payments WHERE stripe_payment_intent_id = %s", intent
    ) == [("succeeded",)]
    assert len(_sql(settings, "SELECT id FROM payment_events WHERE payment_intent_id = %s", intent))

    # Somebody else's account is untouched and still answers for itself only.
    r = await other.client.get("/v1/me/export", headers=other.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["account"]["email"] == other.email
    assert application_id not in r.text
    assert _sql(
        settings, "SELECT curp, anonymized_at FROM applications WHERE id = %s", others_application
    ) == [(CURP, None)]


async def test_delete_waits_for_a_permit_in_progress(
    settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    owner = await make_user()
    application_id, _ = await _paid_application(settings, owner)
    _sql(settings, "UPDATE applications SET status = 'paid' WHERE id = %s", application_id)
    r = await owner.client.request(
        "DELETE", "/v1/me", json={"password": PASSWORD}, headers=owner.bearer()
    )
    assert r.status_code == 409, r.text
