"""Paying at OXXO from an application's page, in a real browser at both sizes: the voucher with
its reference, amount and expiry (Mexico City time) and Stripe's hosted voucher link, a print
view with nothing but the voucher, then the payment at the simulated store reaching the page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import set_permit
from tests.api.payments_support import Pay
from tests.api.web import SCREENSHOTS, SIZES, Visit, applicant_page, chromium


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_applicant_pays_at_oxxo_with_the_voucher_the_page_shows(
    pay: Pay, make_user: Callable[..., Any], size: str
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    async with chromium() as browser:
        page = await applicant_page(browser, pay.url, user.token, size)
        visit = Visit(page, "pago-oxxo", size)
        response = await page.goto(f"{pay.url}/solicitudes/{app_id}")
        assert await page.locator("#estado").inner_text() == "Borrador"
        await visit.check("por-pagar", response)

        async with page.expect_navigation() as navigation:
            await page.get_by_role("button", name="Pagar en efectivo en OXXO").click()
        response = await navigation.value
        assert await page.locator("#estado").inner_text() == "Pago en proceso"
        reference = await page.locator("#referencia").inner_text()
        assert re.fullmatch(r"\d{14}", reference)
        assert await page.locator("#monto").inner_text() == "$1,500.00 MXN"
        expires = await page.locator("#vence").inner_text()
        assert re.fullmatch(
            r"\d\d/\d\d/\d{4} a las \d\d:\d\d \(hora del centro de México\)", expires
        )
        hosted = page.get_by_role("link", name="Ver la ficha de Stripe")
        assert (await hosted.get_attribute("href") or "").startswith(pay.sim.url)
        assert await page.get_by_role("button", name="Imprimir ficha").is_visible()
        # Nothing to pay twice: the voucher replaced the payment buttons.
        assert await page.get_by_role("button", name="Pagar en efectivo en OXXO").count() == 0
        await visit.check("ficha", response)

        await page.emulate_media(media="print")
        assert not await page.locator("header").is_visible()
        assert await page.locator("#ficha").is_visible()
        assert not await page.locator(".resumen", has_text="CURP").is_visible()
        printed = SCREENSHOTS / "pago-oxxo" / size / "ficha-impresa.png"
        await page.screenshot(path=str(printed), full_page=True)
        await page.emulate_media(media="screen")

        # The store takes the cash; Stripe's webhook makes it paid; the page says so.
        payments = await user.client.get(
            f"/v1/applications/{app_id}/payments", headers=user.bearer()
        )
        intent = payments.json()["items"][0]["intent_id"]
        pay.sim.pay_oxxo(intent)
        await pay.status_becomes(user, app_id, "paid")
        await page.reload()
        assert await page.locator("#estado").inner_text() == "Pagado: tramitando tu permiso"
        assert await page.locator("#ficha").count() == 0
        await visit.check("pagada")

        # The page follows the permit by itself: where it waits (the mirror writes it),
        # then, once issued, the documents.
        set_permit(
            pay.api.settings, app_id, phase="Queued", waiting_reason="PoolFull", queue_position=3
        )
        waiting = page.locator("#espera", has_text="número 3 en la fila")
        await waiting.wait_for(timeout=25_000)
        # Each phase in words, as the page follows it.
        queued = "Tu trámite está en la fila para el portal del gobierno."
        assert await page.locator("#fase").inner_text() == queued
        set_permit(pay.api.settings, app_id, phase="Running", waiting_reason=None)
        running = page.locator("#fase", has_text="Estamos tramitando tu permiso")
        await running.wait_for(timeout=25_000)
        assert not await page.locator("#espera").is_visible()
        set_permit(
            pay.api.settings, app_id, phase="Succeeded", waiting_reason=None, queue_position=None
        )
        pay.sql("UPDATE applications SET status = 'permit_ready' WHERE id = %s", app_id)
        ready = page.locator("#estado", has_text="Permiso listo")
        await ready.wait_for(timeout=25_000)
        links = page.get_by_role("link", name=re.compile(r"^Descargar .* \(PDF\)$"))
        assert await links.count() == 3
        await visit.check("permiso-listo")


async def test_paying_twice_or_someone_elses_application_is_refused(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    owner, stranger = await make_user(), await make_user()
    app_id = await pay.new_application(owner)
    r = await stranger.client.get(f"/solicitudes/{app_id}")
    assert r.status_code == 404
    # The owner's browser session, on the app that talks to the payments simulator.
    cookies = {"permisos_session": owner.token}
    async with httpx.AsyncClient(base_url=pay.url, cookies=cookies) as browser:
        page = await browser.get(f"/solicitudes/{app_id}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        # Without the form's token: refused, nothing paid.
        r = await browser.post(f"/solicitudes/{app_id}/oxxo", data={})
        assert r.status_code == 403 and "caducó" in r.text
        count = "SELECT count(*) FROM payments WHERE application_id = %s"
        assert pay.sql(count, app_id) == [(0,)]
        form = {"csrf_token": token.group(1)}
        r = await browser.post(f"/solicitudes/{app_id}/oxxo", data=form)
        assert r.status_code == 303
        r = await browser.post(f"/solicitudes/{app_id}/oxxo", data=form)
        assert r.status_code == 409 and "ya no se puede pagar" in r.text
        assert pay.sql(count, app_id) == [(1,)]
