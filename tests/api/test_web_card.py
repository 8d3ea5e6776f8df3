"""Paying by card from an application's page, in a real browser at both sizes: Stripe.js (the
payments simulator's stand-in) takes the card in its own frame, a declined card and a failed
3-D Secure are said in Spanish next to the field, and a card that passes 3-D Secure is paid:
Stripe's webhook marks the application paid and the page shows it. The card number never
reaches the API, and reloading the card page reuses the open PaymentIntent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import stripe
from playwright.async_api import Page, Request

from tests.api.payments_support import PUBLISHABLE_KEY, UNREACHABLE, WEBHOOK_SECRET, Pay
from tests.api.web import SIZES, Visit, applicant_page, chromium

CARD_FRAME = "iframe[title='Campo seguro para los datos de la tarjeta']"
BANK_FRAME = "iframe[title='Verificación 3-D Secure de tu banco']"
PAYMENTS = "SELECT method, status FROM payments WHERE application_id = %s"


async def form_token(browser: httpx.AsyncClient, app_id: str) -> str:
    """The CSRF token the application's page gives its forms."""
    page = await browser.get(f"/solicitudes/{app_id}")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found[1]


async def type_card(page: Page, number: str) -> None:
    field = page.frame_locator(CARD_FRAME)
    await field.locator("[autocomplete=cc-number]").fill(number)
    await field.locator("[autocomplete=cc-exp]").fill("12 / 34")
    await field.locator("[autocomplete=cc-csc]").fill("123")


async def card_form(page: Page) -> None:
    """The card page once Stripe.js has put its field in place."""
    await page.locator("#tarjeta.StripeElement iframe").wait_for(timeout=10_000)
    await page.frame_locator(CARD_FRAME).locator("[autocomplete=cc-number]").wait_for()


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_applicant_pays_by_card_with_3d_secure(
    pay: Pay, make_user: Callable[..., Any], size: str
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    async with chromium() as browser:
        page = await applicant_page(browser, pay.url, user.token, size)
        sent: list[tuple[str, str]] = []

        def record(request: Request) -> None:
            sent.append((request.url, request.post_data or ""))

        page.on("request", record)
        visit = Visit(page, "pago-tarjeta", size)
        await page.goto(f"{pay.url}/solicitudes/{app_id}")

        response = await visit.submit("Pagar con tarjeta")
        assert page.url == f"{pay.url}/solicitudes/{app_id}/tarjeta"
        await card_form(page)
        assert await page.locator("#monto").inner_text() == "$1,500.00 MXN"
        assert not await page.get_by_text("necesitas JavaScript").is_visible()
        await visit.check("tarjeta", response)

        # A declined card: said in Spanish next to the field; nothing paid.
        await type_card(page, "4000 0000 0000 0002")
        await page.get_by_role("button", name="Pagar $1,500.00 MXN").click()
        notice = page.locator("#tarjeta-aviso")
        await notice.filter(has_text="Tu banco rechazó la tarjeta").wait_for(timeout=10_000)
        assert await notice.get_attribute("aria-live") == "polite"
        await visit.check("tarjeta-rechazada")
        await pay.status_becomes(user, app_id, "awaiting_payment")

        # Reloading reuses the open PaymentIntent (and its client_secret).
        await page.reload()
        await card_form(page)
        assert pay.sql(PAYMENTS, app_id) == [("card", "requires_payment_method")]

        # A card that asks for 3-D Secure: the bank's page opens over ours. First failed...
        await type_card(page, "4000 0027 6000 3184")
        await page.get_by_role("button", name="Pagar $1,500.00 MXN").click()
        bank = page.frame_locator(BANK_FRAME)
        await bank.get_by_role("button", name="Fail authentication").wait_for(timeout=10_000)
        await visit.check("verificacion-del-banco")
        await bank.get_by_role("button", name="Fail authentication").click()
        await notice.filter(has_text="Tu banco no confirmó el pago").wait_for(timeout=10_000)
        assert await page.locator(BANK_FRAME).count() == 0
        await visit.check("verificacion-fallida")

        # ...then completed: the page goes to the application, which Stripe's webhook pays.
        await page.get_by_role("button", name="Pagar $1,500.00 MXN").click()
        await bank.get_by_role("button", name="Complete authentication").click()
        await page.wait_for_url(re.compile(rf"/solicitudes/{app_id}\?payment_intent=pi_"))
        paid = page.locator("#estado", has_text="Pagado: tramitando tu permiso")
        await paid.wait_for(timeout=20_000)
        assert await page.get_by_role("button", name="Pagar con tarjeta").count() == 0
        await visit.check("pagada")

    assert (await pay.application(user, app_id))["status"] == "paid"
    # One PaymentIntent throughout: the decline, the failed and the passed challenge.
    assert pay.sql(PAYMENTS, app_id) == [("card", "succeeded")]
    # Stripe's webhook reached the API: that is what marked the application paid.
    ((intent,),) = pay.sql(
        "SELECT stripe_payment_intent_id FROM payments WHERE application_id = %s", app_id
    )
    (succeeded,) = [e for e in pay.events_for(intent) if e["type"] == "payment_intent.succeeded"]
    outcomes = [d["outcome"] for d in pay.sim.deliveries(succeeded["id"])]
    assert outcomes[-1] == "succeeded", outcomes
    # The card numbers went to Stripe's origin only, never to the API's.
    for number in ("4000000000000002", "4000002760003184"):
        carrying = {url.split("/v1/")[0] for url, body in sent if number in body}
        assert carrying == {pay.sim.url}, carrying


async def test_without_javascript_the_card_page_says_so_and_offers_oxxo(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    async with chromium() as browser:
        page = await applicant_page(
            browser, pay.url, user.token, "telefono", java_script_enabled=False
        )
        await page.goto(f"{pay.url}/solicitudes/{app_id}")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Pagar con tarjeta").click()
        assert await page.get_by_text("necesitas JavaScript").is_visible()
        assert not await page.locator("#pago-tarjeta").is_visible()
        async with page.expect_navigation():
            await page.get_by_role("button", name="Pagar en efectivo en OXXO").click()
        assert re.fullmatch(r"\d{14}", await page.locator("#referencia").inner_text())


async def test_the_card_page_alone_lets_stripe_in(pay: Pay, make_user: Callable[..., Any]) -> None:
    """Its Content-Security-Policy adds Stripe.js's origin for scripts, frames and requests;
    every other page keeps the strict one. Someone else's application is not found."""
    owner, stranger = await make_user(), await make_user()
    app_id = await pay.new_application(owner)
    cookies = {"permisos_session": owner.token}
    async with httpx.AsyncClient(base_url=pay.url, cookies=cookies) as browser:
        token = await form_token(browser, app_id)
        r = await browser.post(f"/solicitudes/{app_id}/tarjeta", data={})
        assert r.status_code == 403 and pay.sql(PAYMENTS, app_id) == []
        r = await browser.post(f"/solicitudes/{app_id}/tarjeta", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == f"/solicitudes/{app_id}/tarjeta"
        # Twice is still one PaymentIntent.
        r = await browser.post(f"/solicitudes/{app_id}/tarjeta", data={"csrf_token": token})
        assert r.status_code == 303 and pay.sql(PAYMENTS, app_id) == [
            ("card", "requires_payment_method")
        ]
        card = await browser.get(f"/solicitudes/{app_id}/tarjeta")
        policy = card.headers["content-security-policy"]
        sim = pay.sim.url
        assert f"script-src 'self' {sim};" in policy
        assert f"frame-src {sim};" in policy and f"connect-src 'self' {sim};" in policy
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
        assert f'<script src="{sim}/v3/" defer>' in card.text
        detail = await browser.get(f"/solicitudes/{app_id}")
        assert sim not in detail.headers["content-security-policy"]
    r = await stranger.client.get(f"/solicitudes/{app_id}/tarjeta")
    assert r.status_code == 404
    # Cancelled with the card payment still open: the card page no longer hands it out.
    r = await owner.client.post(f"/v1/applications/{app_id}/cancel", headers=owner.bearer())
    assert r.status_code == 200, r.text
    r = await owner.client.get(f"/solicitudes/{app_id}/tarjeta")
    assert r.status_code == 303 and r.headers["location"] == f"/solicitudes/{app_id}"
    assert "client_secret" not in r.text and "_secret_" not in r.text


async def test_back_from_stripe_before_its_webhook_the_page_says_it_confirms(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    """Stripe took the money but its webhook is late: the page the browser comes back to says
    the payment is being confirmed and follows it, instead of offering to pay again."""
    user = await make_user()
    app_id = await pay.new_application(user)
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    cookies = {"permisos_session": user.token}
    async with httpx.AsyncClient(base_url=pay.url, cookies=cookies) as browser:
        token = await form_token(browser, app_id)
        await browser.post(f"/solicitudes/{app_id}/tarjeta", data={"csrf_token": token})
        card = await browser.get(f"/solicitudes/{app_id}/tarjeta")
        secret = re.search(r'data-secreto="([^"]+)"', card.text)
        assert secret is not None
        intent = secret[1].split("_secret_")[0]
        # What Stripe.js does with the publishable key and the client_secret.
        public = stripe.StripeClient(PUBLISHABLE_KEY, base_addresses={"api": pay.sim.url})
        confirmed = await pay.sim_call(
            public.v1.payment_intents.confirm,
            intent,
            params={"client_secret": secret[1], "payment_method": "pm_card_visa"},
        )
        assert confirmed.status == "succeeded"
        back = await browser.get(f"/solicitudes/{app_id}?payment_intent={intent}")
        assert 'id="estado">Confirmando tu pago con tarjeta<' in back.text
        assert 'data-cada="2"' in back.text and "Pagar con tarjeta" not in back.text
        # Without having paid just now (no intent named), the page tells what it knows.
        plain = await browser.get(f"/solicitudes/{app_id}")
        assert 'id="estado">Pendiente de pago<' in plain.text
