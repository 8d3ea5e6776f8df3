"""The admin console: in a real browser at both sizes, an admin finds a failed permit, reads its
story and retries it; over HTTP, who gets in, the confirmations, refunds, accounts, and what the
cluster says (a PermitRequest's conditions, the RunnerPools) read from the real API server with
the API's own ServiceAccount."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from permisos.kube import JSON_PATCH
from permisos_api.models import Application
from tests.api.conftest import APPLICATION, Api
from tests.api.payments_support import Pay
from tests.api.serving import serving
from tests.api.test_admin import _failed
from tests.api.web import SIZES, Visit, applicant_page, chromium
from tests.namespaces import Namespace, permit_request, runner_pool

from .conftest import paid_application


def text(page: httpx.Response) -> str:
    """The page's words, without tags, in single spaces."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page.text)))


async def paid_by_card(pay: Pay, user: Any, **changes: Any) -> str:
    app_id = await pay.new_application(user, **changes)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201, r.text
    await pay.sim.wait_for_deliveries()
    return app_id


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_admin_finds_a_failed_permit_reads_its_story_and_retries_it(
    pay: Pay,
    make_user: Callable[..., Any],
    size: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # No cluster for this app to read: the page must say so, not fail.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    user = await make_user()
    admin = await make_user("admin")
    plates = f"ADM{uuid.uuid4().int % 10_000:04d}"
    app_id = await paid_by_card(pay, user, plates=plates)
    _failed(pay, app_id)
    async with chromium() as browser:
        page = await applicant_page(browser, pay.url, admin.token, size)
        visit = Visit(page, "admin", size)
        await page.goto(pay.url + "/")
        async with page.expect_navigation() as navigation:
            await page.get_by_role("link", name="Administración").click()
        await visit.check("buscar", await navigation.value)

        await page.get_by_label("Placas").fill(plates.lower())
        await page.get_by_label("Estado").select_option(label="No se pudo emitir el permiso")
        response = await visit.submit("Buscar")
        assert await page.get_by_role("heading", name="1 solicitud").is_visible()
        assert plates.lower() not in page.url.lower()  # posted: not in any address or log
        await visit.check("encontrada", response)

        async with page.expect_navigation() as navigation:
            await page.get_by_role("link", name=plates).click()
        response = await navigation.value
        assert await page.locator("#estado").inner_text() == "No se pudo emitir el permiso"
        payments = page.get_by_role("region", name="Pagos")
        assert "Tarjeta" in await payments.inner_text()
        assert "$1,500.00 MXN" in await payments.inner_text()
        events = await page.get_by_role("region", name="Eventos de pago").inner_text()
        assert "payment_intent.succeeded" in events
        history = await page.get_by_role("region", name="Historial del permiso").inner_text()
        assert "Failed" in history and "PortalRejected" in history
        assert "No se pudo consultar el clúster" in await page.locator("main").inner_text()
        await visit.check("historia", response)

        response = await visit.submit("Reintentar el permiso")
        assert await page.get_by_role("status").inner_text() == (
            "Se pidió un nuevo intento del permiso."
        )
        assert await page.locator("#estado").inner_text() == "Pagado: tramitando tu permiso"
        # Each PermitRequest has its own row: the failed one kept, the retry current.
        permits = await page.get_by_role("region", name="Trámites del permiso").inner_text()
        assert "Primero" in permits and "PortalRejected" in permits
        assert "Reintento 1 (actual)" in permits and f"{app_id}-r1" in permits
        # Nothing left to retry or refund while the new attempt runs.
        assert await page.get_by_role("button", name="Reintentar el permiso").count() == 0
        await visit.check("reintentado", response)
    rows = pay.sql("SELECT status, permit_retries FROM applications WHERE id = %s", app_id)
    assert rows == [("paid", 1)]
    names = pay.sql("SELECT request_name FROM permits WHERE application_id = %s", app_id)
    assert sorted(names) == [(app_id,), (f"{app_id}-r1",)]
    queued = pay.sql(
        "SELECT count(*) FROM outbox WHERE application_id = %s AND kind = 'permit_request_r1'",
        app_id,
    )
    assert queued == [(1,)]


async def test_only_admins_get_in(api: Api, make_user: Callable[..., Any]) -> None:
    applicant = await make_user()
    client = api.client()
    for path in ("/admin", f"/admin/solicitudes/{uuid.uuid4()}", "/admin/reembolsos"):
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/entrar", path
        r = await applicant.client.get(path)
        assert r.status_code == 403 and "Sin acceso" in r.text, path
    home = await applicant.client.get("/")
    assert "Administración" not in home.text
    # A form posted by someone else's page, or by an applicant, changes nothing.
    admin = await make_user("admin")
    created = await applicant.client.post(
        "/v1/applications", json=APPLICATION, headers=applicant.bearer()
    )
    app_id = created.json()["id"]
    action = f"/admin/solicitudes/{app_id}/desactivar-cuenta"
    r = await applicant.client.post(action, data={"csrf_token": applicant.csrf, "confirmo": "si"})
    assert r.status_code == 403
    r = await admin.client.post(action, data={"csrf_token": "forged", "confirmo": "si"})
    assert r.status_code == 403 and "caducó" in r.text
    r = await applicant.client.get("/v1/auth/session")
    assert r.status_code == 200, "the account was not disabled"
    r = await admin.client.get(f"/admin/solicitudes/{uuid.uuid4()}")
    assert r.status_code == 404
    # Searching by personal data is a posted form with its token; in an address it is ignored.
    r = await admin.client.post(
        "/admin", data={"csrf_token": "forged", "curp": APPLICATION["curp"]}
    )
    assert r.status_code == 403 and "caducó" in r.text
    # (The application's own email, newest first: this one is on the first page.)
    by_email = {"csrf_token": admin.csrf, "correo": APPLICATION["email"].upper()}
    r = await admin.client.post("/admin", data=by_email)
    assert r.status_code == 200 and f"/admin/solicitudes/{app_id}" in r.text
    r = await admin.client.get("/admin", params={"correo": APPLICATION["email"], "estado": "draft"})
    assert r.status_code == 200 and 'value=""' in r.text.split('id="correo"')[1][:80]


async def test_refunds_and_accounts_from_the_console(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    admin = await make_user("admin")
    card = await paid_by_card(pay, user)
    _failed(pay, card)
    client = admin.client
    page = f"/admin/solicitudes/{card}"
    form = {"csrf_token": admin.csrf}

    # A refund needs its box ticked.
    r = await client.post(f"{page}/reembolsar", data=form)
    assert r.status_code == 422 and "Marca la casilla" in text(r)
    assert pay.sql("SELECT status FROM applications WHERE id = %s", card) == [("permit_failed",)]
    r = await client.post(f"{page}/reembolsar", data={**form, "confirmo": "si"})
    assert r.status_code == 303, r.text
    shown = await client.get(r.headers["location"])
    assert "Se reembolsó el pago con tarjeta." in text(shown)
    assert "Reembolsada" in text(shown)
    refund_id = pay.sql("SELECT refund_id FROM payments WHERE application_id = %s", card)[0][0]
    refund = await pay.sim_call(pay.stripe.v1.refunds.retrieve, refund_id)
    assert refund.amount == 150_000 and refund.status == "succeeded"
    # Twice: refused in words, nothing refunded again.
    r = await client.post(f"{page}/reembolsar", data={**form, "confirmo": "si"})
    assert r.status_code == 409 and "Solo se puede reembolsar" in text(r)

    # OXXO: flagged for a refund by hand, listed, then recorded.
    oxxo = await pay.new_application(user)
    r = await pay.pay(user, oxxo, method="oxxo")
    assert r.status_code == 201, r.text
    pay.sim.pay_oxxo(r.json()["intent_id"])
    await pay.status_becomes(user, oxxo, "paid")
    await pay.sim.wait_for_deliveries()
    _failed(pay, oxxo)
    r = await client.post(f"/admin/solicitudes/{oxxo}/reembolsar", data={**form, "confirmo": "si"})
    assert r.status_code == 303
    listed = await client.get("/admin/reembolsos")
    payment_id = pay.sql("SELECT id FROM payments WHERE application_id = %s", oxxo)[0][0]
    assert f"/admin/pagos/{payment_id}/reembolso-hecho" in listed.text
    r = await client.post(f"/admin/pagos/{payment_id}/reembolso-hecho", data=form)
    assert r.status_code == 422
    r = await client.post(
        f"/admin/pagos/{payment_id}/reembolso-hecho", data={**form, "confirmo": "si"}
    )
    assert r.status_code == 303
    listed = await client.get(r.headers["location"])
    assert "Se registró el reembolso hecho a mano." in text(listed)
    assert f"/admin/pagos/{payment_id}/" not in listed.text
    assert pay.sql("SELECT status FROM applications WHERE id = %s", oxxo) == [("refunded",)]

    # The applicant's account: disabled (every session ends), then enabled.
    r = await client.post(f"{page}/desactivar-cuenta", data={**form, "confirmo": "si"})
    assert r.status_code == 303
    assert "desactivada el" in text(await client.get(page))
    assert (await user.client.get("/v1/auth/session")).status_code == 401
    r = await client.post(f"{page}/activar-cuenta", data=form)
    assert r.status_code == 303
    assert "Cuenta activa" in text(await client.get(page))
    # An admin's own account offers no such button.
    mine = await admin.client.post("/v1/applications", json=APPLICATION, headers=admin.bearer())
    own = await client.get(f"/admin/solicitudes/{mine.json()['id']}")
    assert "Desactivar la cuenta" not in own.text


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_console_shows_what_the_cluster_says(
    engine: Engine, kube: Namespace, api: Api, make_user: Callable[..., Any], size: str
) -> None:
    """The PermitRequest's conditions and the RunnerPools, read with the API's ServiceAccount
    (the `cluster` fixture checks that its Role refused nothing)."""
    admin = await make_user("admin")
    app_id = paid_application(engine)
    with Session(engine) as session, session.begin():
        plates = session.get_one(Application, app_id).plates
    await kube.create("runnerpools", runner_pool("default", replicas=4))
    circuit = {
        "state": "Open",
        "consecutiveFailures": 3,
        "openedAt": "2026-12-08T08:00:00Z",
        "nextProbeAt": "2026-12-08T08:05:00Z",
    }
    unavailable = {
        "type": "PortalAvailable",
        "status": "False",
        "reason": "PortalUnavailable",
        "message": "3 attempts in a row found the portal unavailable.",
        "lastTransitionTime": "2026-12-08T08:00:00Z",
    }
    await kube.patch(
        "runnerpools",
        "default",
        {"status": {"replicas": 0, "queued": 7, "circuit": circuit, "conditions": [unavailable]}},
        "status",
    )
    await kube.create("permitrequests", permit_request(str(app_id), pool="default"))
    waiting = {
        "type": "Admitted",
        "status": "False",
        "reason": "PortalUnavailable",
        "message": "The portal is unavailable; the pool's circuit is open.",
        "lastTransitionTime": "2026-12-08T08:01:00Z",
    }
    patch = [
        {"op": "add", "path": "/status", "value": {"phase": "Queued", "conditions": [waiting]}},
        {"op": "add", "path": "/status/queuePosition", "value": 4},
    ]
    await kube.patch("permitrequests", str(app_id), patch, "status", kind=JSON_PATCH)

    app = api.app(kubernetes_namespace=kube.name)
    client = api.client(app)
    client.cookies.set("permisos_session", admin.token)
    detail = text(await client.get(f"/admin/solicitudes/{app_id}"))
    assert f"Solicitud de {plates}" in detail
    assert "Fase Queued" in detail and "Lugar en la fila 4" in detail
    assert "Admitted False PortalUnavailable" in detail
    assert "The portal is unavailable; the pool's circuit is open." in detail
    assert "08/12/2026 02:01" in detail  # Mexico City's clock
    pools = text(await client.get("/admin/grupos"))
    assert "default 4 0 7 No disponible: 3 attempts in a row" in pools
    assert "Abierto 3 08/12/2026 02:05" in pools

    # The same pages in a browser, and the ones left: the manual refunds, and an applicant
    # turned away.
    applicant = await make_user()
    async with serving(app) as base, chromium() as browser:
        page = await applicant_page(browser, base, admin.token, size)
        visit = Visit(page, "admin-cluster", size)
        response = await page.goto(f"{base}/admin/solicitudes/{app_id}")
        conditions = page.get_by_role("region", name="Condiciones")
        assert "PortalUnavailable" in await conditions.inner_text()
        await visit.check("solicitud-en-el-cluster", response)
        async with page.expect_navigation() as navigation:
            await page.get_by_role("link", name="Grupos de robots").click()
        assert "No disponible" in await page.get_by_role("region").inner_text()
        await visit.check("grupos", await navigation.value)
        async with page.expect_navigation() as navigation:
            await page.get_by_role("link", name="Reembolsos a mano").click()
        await visit.check("reembolsos", await navigation.value)
        page = await applicant_page(browser, base, applicant.token, size)
        visit.page = page
        response = await page.goto(f"{base}/admin")
        assert response is not None and response.status == 403
        assert await page.get_by_role("heading", level=1).inner_text() == "Sin acceso"
        await visit.check("sin-acceso", response)
    await app.state.services.kube.reset()  # what the app's shutdown does
