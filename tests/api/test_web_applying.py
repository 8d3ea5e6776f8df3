"""The application form in a real browser: filled at a phone's size and a desktop's (a wrong
CURP first), under the page weight budget, and filled with the keyboard alone; then the
application's own page with its price. axe-core checks each page; screenshots go under
var/screenshots/web/solicitud/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from tests.api.conftest import BAD_CURP, CURP, Api, User
from tests.api.serving import serving
from tests.api.web import CHROMIUM, SCREENSHOTS, SIZES, Visit, weight

BUDGET_BYTES = 100 * 1024  # the form's first load, everything included


@asynccontextmanager
async def logged_in(api: Api, user: User, size: str) -> AsyncIterator[tuple[str, Page]]:
    """A browser holding the user's session cookie, on the served app."""
    async with serving(api.app(cookie_secure=False)) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            context: BrowserContext = await browser.new_context(
                viewport=SIZES[size], locale="es-MX"
            )
            await context.add_cookies(
                [{"name": "permisos_session", "value": user.token, "url": base}]
            )
            yield base, await context.new_page()
        finally:
            await browser.close()


async def fill_form(page: Page, curp: str) -> None:
    await page.get_by_label("Nombre(s)").fill("Juana")
    await page.get_by_label("Primer apellido").fill("Gómez")
    await page.get_by_label("Segundo apellido (opcional)").fill("Díaz")
    await page.get_by_label("CURP").fill(curp)
    await page.get_by_label("Teléfono celular").fill("55 1234 5678")
    await page.get_by_label("Placas").fill("JKL-4821")
    await page.get_by_label("Marca").select_option(label="Nissan")
    await page.get_by_label("Línea").select_option(label="Versa")
    await page.get_by_label("Año modelo").select_option("2022")


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_applicant_files_an_application_and_sees_its_price(
    api: Api, make_user: Callable[..., Any], size: str
) -> None:
    user = await make_user()
    async with logged_in(api, user, size) as (base, page):
        visit = Visit(page, "solicitud", size)
        await page.goto(base + "/")
        async with page.expect_navigation() as navigation:
            await page.get_by_role("link", name="Nueva solicitud").click()
        response = await navigation.value
        # A first load, nothing cached: the whole page within the budget.
        sent = await weight(page)
        print(f"[{size}] application form, first load: {sent} bytes (budget {BUDGET_BYTES})")
        assert 0 < sent < BUDGET_BYTES
        await visit.check("formulario", response)
        # The account's email is offered; the prices are shown before paying.
        assert await page.get_by_label("Correo electrónico").input_value() == user.email
        assert "$1,500.00 MXN" in await page.get_by_text("Particular:").inner_text()

        # The line list follows the make (the page's one small script).
        await page.get_by_label("Marca").select_option(label="Nissan")
        aveo = page.locator("#line option", has_text="Aveo")
        assert await aveo.is_disabled()

        await fill_form(page, BAD_CURP)
        async with page.expect_navigation() as navigation:
            await page.get_by_role("button", name="Continuar").click()
        response = await navigation.value
        assert response is not None and response.status == 422
        assert "La CURP no es válida" in await page.locator("#curp-error").inner_text()
        assert await page.get_by_label("CURP").get_attribute("aria-invalid") == "true"
        assert await page.get_by_label("Placas").input_value() == "JKL-4821"  # kept
        assert await page.get_by_label("Línea").input_value() == "NIS-01"
        assert "Revisa 1 campo marcado" in await page.get_by_role("alert").inner_text()
        await visit.check("formulario-con-error", response)

        await page.get_by_label("CURP").fill(CURP)
        async with page.expect_navigation() as navigation:
            await page.get_by_role("button", name="Continuar").click()
        response = await navigation.value
        assert "/solicitudes/" in page.url
        assert await page.locator("#estado").inner_text() == "Borrador"
        assert await page.locator("#precio").inner_text() == "$1,500.00 MXN"
        summary = await page.locator(".resumen").inner_text()
        assert "Nissan Versa 2022" in summary and "JKL4821" in summary
        await visit.check("solicitud", response)

        # It is listed on the home page, and nobody else can open it.
        await page.goto(base + "/")
        assert "JKL4821" in await page.locator(".solicitudes").inner_text()
        print(f"[{size}] screenshots: {SCREENSHOTS / 'solicitud' / size}")


async def test_the_form_can_be_completed_with_the_keyboard_alone(
    api: Api, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    async with logged_in(api, user, "escritorio") as (base, page):
        await page.goto(base + "/solicitudes/nueva")

        async def focused() -> str:
            return str(await page.evaluate("document.activeElement.id"))

        for _ in range(12):  # from the top of the page to the first field
            await page.keyboard.press("Tab")
            if await focused() == "first_name":
                break
        typed = {
            "first_name": "Juana",
            "last_name": "Gómez",
            "maternal_surname": "",
            "curp": CURP,
            "email": None,  # already filled with the account's address
            "phone": "5512345678",
            "plates": "JKL4821",
            "make": "Nissan",
            "line": "Versa",
            "model_year": "2022",
            "vin": "",
        }
        for field, text in typed.items():
            assert await focused() == field
            if text:
                await page.keyboard.type(text)
            await page.keyboard.press("Tab")
        assert await focused() == "service_type-particular"  # the chosen one of the group
        await page.keyboard.press("ArrowDown")  # Público
        await page.keyboard.press("Tab")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert "/solicitudes/" in page.url, await page.locator("main").inner_text()
        assert await page.locator("#precio").inner_text() == "$2,200.00 MXN"
        other = await make_user()
        app_path = page.url.removeprefix(base)
    async with logged_in(api, other, "telefono") as (base, page):
        response = await page.goto(base + app_path)
        assert response is not None and response.status == 404
