"""The account pages in a real browser (Debian's Chromium), at a phone's size and a desktop's:
create an account (a mistake first), open the mailed link, log in (a wrong password first),
log out, and reset a forgotten password. Every page passes axe-core with no serious or critical
violation; each page's screenshot goes under var/screenshots/web/, and its server time and
weight are printed."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from tests.api.conftest import PASSWORD, Api, read_mail, sql, unique_email
from tests.api.serving import serving
from tests.api.web import CHROMIUM, SCREENSHOTS, SIZES, Visit, mailed_link


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_applicant_creates_an_account_logs_in_and_resets_the_password(
    api: Api, outbox: Path, size: str
) -> None:
    app = api.app(cookie_secure=False)  # plain HTTP on loopback
    address = unique_email("web")
    async with serving(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            context = await browser.new_context(viewport=SIZES[size], locale="es-MX")
            page = await context.new_page()
            visit = Visit(page, "cuenta", size)

            await visit.check("portada", await page.goto(base + "/"))
            async with page.expect_navigation():
                await page.get_by_role("link", name="Crear cuenta").first.click()
            await visit.check("registro")

            # A mistake first: the message is next to its field, and the email is kept.
            await page.get_by_label("Correo electrónico").fill("no-es-un-correo")
            await page.get_by_label("Contraseña").fill("corta")
            response = await visit.submit("Crear cuenta")
            assert response is not None and response.status == 422
            email_error = page.locator("#email-error")
            assert "correo electrónico válido" in await email_error.inner_text()
            assert "al menos 12 caracteres" in await page.locator("#password-error").inner_text()
            assert (
                await page.get_by_label("Correo electrónico").get_attribute("aria-invalid")
                == "true"
            )
            assert await page.get_by_label("Correo electrónico").input_value() == "no-es-un-correo"
            assert await page.get_by_label("Contraseña").input_value() == ""
            await visit.check("registro-con-errores", response)

            await page.get_by_label("Correo electrónico").fill(address)
            await page.get_by_label("Contraseña").fill(PASSWORD)
            response = await visit.submit("Crear cuenta")
            assert await page.get_by_role("heading", level=1).inner_text() == "Revisa tu correo"
            hours = api.settings.email_verification_ttl_seconds // 3600
            assert f"vence en {hours} horas" in await page.locator("main").inner_text()
            await visit.check("registro-enviado", response)

            # Before the link: the login says to confirm the email first.
            await page.goto(base + "/entrar")
            await page.get_by_label("Correo electrónico").fill(address)
            await page.get_by_label("Contraseña").fill(PASSWORD)
            await visit.submit("Entrar")
            assert "confirma tu correo" in await page.get_by_role("alert").inner_text()

            response = await page.goto(base + await mailed_link(outbox, address, "/verificar"))
            assert await page.get_by_role("heading", level=1).inner_text() == "Correo confirmado"
            await visit.check("correo-confirmado", response)

            await page.get_by_role("link", name="Entrar").last.click()
            await page.wait_for_url("**/entrar")
            await page.get_by_label("Correo electrónico").fill(address)
            await page.get_by_label("Contraseña").fill(PASSWORD + "x")
            response = await visit.submit("Entrar")
            alert = page.get_by_role("alert")
            assert await alert.inner_text() == "El correo o la contraseña no son correctos."
            await visit.check("entrar-con-error", response)

            await page.get_by_label("Contraseña").fill(PASSWORD)
            response = await visit.submit("Entrar")
            assert page.url == base + "/"
            assert await page.get_by_role("heading", level=1).inner_text() == "Mis solicitudes"
            assert address in await page.locator("header").inner_text()
            await visit.check("mis-solicitudes", response)

            await visit.submit("Salir")
            assert page.url == base + "/entrar"
            assert await page.get_by_role("link", name="Entrar").count() == 1
            # The session is over on the server too: the home page no longer knows the visitor.
            await page.goto(base + "/")
            assert await page.get_by_role("heading", level=1).inner_text() != "Mis solicitudes"

            # Forgotten password: the mailed link lands on the page that sets a new one.
            await page.goto(base + "/recuperar")
            await visit.check("recuperar")
            await page.get_by_label("Correo electrónico").fill(address)
            await visit.submit("Enviar enlace")
            assert await page.get_by_role("heading", level=1).inner_text() == "Revisa tu correo"
            link = await mailed_link(outbox, address, "/restablecer")
            await page.goto(base + link)
            await page.get_by_label("Contraseña nueva").fill("Otra-Clave-Segura-77")
            await page.get_by_label("Repite la contraseña").fill("Otra-Clave-Segura-78")
            response = await visit.submit("Guardar contraseña")
            assert "no coinciden" in await page.locator("#password_again-error").inner_text()
            await visit.check("restablecer-con-error", response)
            await page.get_by_label("Contraseña nueva").fill("Otra-Clave-Segura-77")
            await page.get_by_label("Repite la contraseña").fill("Otra-Clave-Segura-77")
            await visit.submit("Guardar contraseña")
            heading = await page.get_by_role("heading", level=1).inner_text()
            assert heading == "Contraseña cambiada"
            await visit.check("contrasena-cambiada")
            # The link is spent.
            await page.goto(base + link)
            await page.get_by_label("Contraseña nueva").fill("Tercera-Clave-Segura-5")
            await page.get_by_label("Repite la contraseña").fill("Tercera-Clave-Segura-5")
            await visit.submit("Guardar contraseña")
            assert "ya venció" in await page.get_by_role("alert").inner_text()

            await page.goto(base + "/entrar")
            await page.get_by_label("Correo electrónico").fill(address)
            await page.get_by_label("Contraseña").fill("Otra-Clave-Segura-77")
            await visit.submit("Entrar")
            assert await page.get_by_role("heading", level=1).inner_text() == "Mis solicitudes"
            print(f"[{size}] screenshots: {SCREENSHOTS / 'cuenta' / size}")
            assert all(shot.stat().st_size > 0 for shot in visit.shots)
        finally:
            await browser.close()


async def test_a_form_from_another_site_is_refused(api: Api, outbox: Path) -> None:
    """Login CSRF: a form posted without the visitor's token changes nothing."""
    client = api.client(api.app(cookie_secure=False))
    address = unique_email("csrf")
    answer = await client.post("/registro", data={"email": address, "password": PASSWORD})
    assert answer.status_code == 403
    assert "caducó" in answer.text
    assert read_mail(outbox, address) == []
    form = await client.get("/registro")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await client.post(
        "/registro", data={"email": address, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 200 and len(read_mail(outbox, address)) == 1


async def test_another_site_cannot_log_the_visitor_out(
    api: Api, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app = api.app(cookie_secure=False)
    # Another site's form arrives without the SameSite session cookie: nothing is cleared.
    anonymous = await api.client(app).post("/salir", data={})
    assert anonymous.status_code == 303 and "set-cookie" not in anonymous.headers
    # With the cookie (a same-site page) but without the form's token: refused, still in.
    browser = api.client(app)
    browser.cookies.set("permisos_session", user.token)
    refused = await browser.post("/salir", data={})
    assert refused.status_code == 403 and "caducó" in refused.text
    assert "set-cookie" not in refused.headers
    assert (await browser.get("/")).text.count("Mis solicitudes") >= 1


async def test_the_web_app_can_be_installed_on_a_phone(api: Api) -> None:
    """What a phone reads to install the site: the manifest, linked from every page, and its
    icons, served at the sizes it declares (PNG 192 and 512 among them)."""
    client = api.client()
    home = await client.get("/")
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in home.text
    answer = await client.get("/static/manifest.webmanifest")
    assert answer.headers["content-type"].startswith("application/manifest+json")
    manifest = answer.json()
    assert manifest["lang"] == "es-MX" and manifest["start_url"] == "/"
    assert manifest["display"] == "standalone"
    declared = set()
    for icon in manifest["icons"]:
        served = await client.get(icon["src"])
        assert served.status_code == 200, icon["src"]
        assert served.headers["content-type"] == icon["type"]
        if icon["type"] == "image/png":
            width, height = struct.unpack(">II", served.content[16:24])
            assert icon["sizes"] == f"{width}x{height}"
            declared.add(width)
    assert {192, 512} <= declared


async def test_a_locked_account_and_too_many_tries_are_told_in_words(
    api: Api, make_user: Callable[..., Any]
) -> None:
    """After `lockout_threshold` wrong passwords the account is locked: the page says so, with
    the minutes to wait and the way out (a reset); past the address's limit, the same."""
    user = await make_user()
    app = api.app(cookie_secure=False, login_limit_per_address=8)
    # The browser always comes from 127.0.0.1: forget what earlier tests counted for it.
    sql(
        api.settings,
        "DELETE FROM rate_limit_buckets WHERE bucket LIKE %s",
        "login:address:127.0.0.1%",
    )
    async with serving(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport=SIZES["telefono"], locale="es-MX")
            visit = Visit(page, "bloqueo", "telefono")

            async def try_login(password: str) -> str:
                await page.goto(base + "/entrar")
                await page.get_by_label("Correo electrónico").fill(user.email)
                await page.get_by_label("Contraseña").fill(password)
                async with page.expect_navigation():
                    await page.get_by_role("button", name="Entrar").click()
                return await page.get_by_role("alert").inner_text()

            for _ in range(api.settings.lockout_threshold):
                said = await try_login(PASSWORD + "x")
            assert said == "El correo o la contraseña no son correctos."
            said = await try_login(PASSWORD)  # the right one, too late
            minutes = api.settings.lockout_minutes
            assert "bloqueamos tu cuenta" in said and f"en {minutes} min" in said
            assert "restablece tu contraseña" in said
            await visit.check("cuenta-bloqueada")
            # The address's own limit (8 here), whatever the account.
            for _ in range(3):
                said = await try_login(PASSWORD)
            assert said.startswith("Hubo demasiados intentos desde esta conexión. Espera")
            await visit.check("demasiados-intentos")
        finally:
            await browser.close()
