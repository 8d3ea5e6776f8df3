"""The applicant follows the permit: phase, reason and the portal's words on the application,
and every phase with its time on /permit-history, as the API's mirror writes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from permisos_api.db import make_engine
from permisos_api.mirror import Snapshot, record

from .payments_support import Pay


async def test_the_owner_sees_each_phase_and_the_portals_reason(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    owner, stranger, admin = await make_user(), await make_user(), await make_user("admin")
    app_id = await pay.new_application(owner)
    r = await pay.pay(owner, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201, r.text
    await pay.status_becomes(owner, app_id, "paid")
    before = await pay.application(owner, app_id)
    assert (before["permit_phase"], before["permit_attempts"]) == (None, 0)

    t0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    rejection = "Las placas ya cuentan con un permiso vigente"
    engine = make_engine(pay.api.settings)
    try:
        for phase, reason, message, attempt, seconds in (
            ("Queued", "Queued", None, 0, 0),
            ("Running", "JobStarted", None, 1, 2),
            ("Failed", "PortalRejected", rejection, 1, 9),
        ):
            snap = Snapshot(
                uuid.UUID(app_id), phase, reason, message, attempt, t0 + timedelta(seconds=seconds)
            )
            assert record(engine, snap)
    finally:
        engine.dispose()

    app = await pay.application(owner, app_id)
    assert app["status"] == "permit_failed"
    assert (app["permit_phase"], app["permit_reason"], app["permit_message"]) == (
        "Failed",
        "PortalRejected",
        rejection,
    )
    assert app["permit_attempts"] == 1

    r = await owner.client.get(f"/v1/applications/{app_id}/permit-history", headers=owner.bearer())
    assert r.status_code == 200, r.text
    history = r.json()["items"]
    assert [(h["phase"], h["attempt"]) for h in history] == [
        ("Queued", 0),
        ("Running", 1),
        ("Failed", 1),
    ]
    assert history[-1]["message"] == rejection
    assert history[1]["transitioned_at"].startswith("2026-11-26T12:00:02")

    r = await stranger.client.get(
        f"/v1/applications/{app_id}/permit-history", headers=stranger.bearer()
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await admin.client.get(f"/v1/applications/{app_id}/permit-history", headers=admin.bearer())
    assert r.status_code == 200 and len(r.json()["items"]) == 3
