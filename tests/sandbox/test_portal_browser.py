"""The portal in a real Chromium: the make's lines arrive by XHR, the notice blocks clicks until
dismissed, the status page reloads itself, and the documents download as attachments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout
from pypdf import PdfReader

from permisos_sandbox.portal import PortalSimulator

from .conftest import VALID_CURP


async def dismiss_notice(page: Page) -> None:
    await page.click("#cerrar-aviso")
    await expect(page.locator("#aviso")).to_be_hidden()


async def test_a_submission_in_chromium(
    portal: PortalSimulator, browser: Browser, tmp_path: Path
) -> None:
    portal.config.modal_rate = 1
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(5000)

    await page.goto(portal.url + "/login")
    await expect(page.locator("#aviso.modal")).to_be_visible()
    await page.fill("input[name=usuario]", "operador")
    await page.fill("input[name=contrasena]", "secreto")
    # The notice covers the page: a click on the form does not get through.
    with pytest.raises(PlaywrightTimeout):
        await page.click("form#login button[type=submit]", timeout=500)
    await dismiss_notice(page)
    await page.click("form#login button[type=submit]")
    await expect(page).to_have_url(portal.url + "/tramites")
    await dismiss_notice(page)
    portal.config.modal_rate = 0

    await page.click("a#nuevo-tramite")
    form = page.locator("form#solicitante")
    for name, value in {
        "referencia": "app-browser",
        "nombre": "Gabriela",
        "primer_apellido": "Hernández",
        "curp": VALID_CURP,
        "correo": "gabriela@example.com",
        "telefono": "5512345678",
    }.items():
        await form.locator(f"input[name={name}]").fill(value)
    await form.locator("button[type=submit]").click()

    await expect(page.locator("form#vehiculo")).to_be_visible()
    linea = page.locator("select[name=linea]")
    assert await linea.locator("option").count() == 0
    async with page.expect_response(re.compile(r"/catalogos/lineas\?marca=KIA$")) as info:
        await page.select_option("select[name=marca]", label="Kia")
    assert (await info.value).status == 200
    await expect(linea.locator("option")).to_have_count(5)  # the prompt and four lines
    assert await linea.locator("option").all_inner_texts() == [
        "Seleccione una línea",
        "Rio",
        "Forte",
        "Sportage",
        "Seltos",
    ]
    await page.select_option("select[name=linea]", label="Sportage")
    await page.select_option("select[name=tipo_servicio]", label="Particular")
    await page.select_option("select[name=ano_modelo]", label="2023")
    await page.fill("input[name=placas]", "KIA2023")
    await page.click("form#vehiculo button[type=submit]")

    await expect(page.locator("dl#resumen")).to_contain_text("Sportage")
    await page.click("button#confirmar-envio")
    # No clicks from here: the page polls estado.json and reloads itself when ready.
    await expect(page.locator("#estado")).to_have_attribute("data-estado", "procesando")
    await expect(page.locator("#estado")).to_have_attribute("data-estado", "listo")
    folio = (await page.locator("#folio").inner_text()).strip()
    assert re.fullmatch(r"PC-\d{4}-\d{6}", folio)

    async with page.expect_download() as download_info:
        await page.click("a.documento[data-tipo=placa]")
    download = await download_info.value
    assert download.suggested_filename == f"placa-{folio}.pdf"
    target = tmp_path / download.suggested_filename
    await download.save_as(target)
    text = PdfReader(target).pages[0].extract_text()
    assert folio in text and "KIA2023" in text and "Sportage" in text

    await context.close()
    assert portal.submissions("app-browser") == 1


async def test_session_expiry_sends_the_browser_to_login(
    portal: PortalSimulator, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(5000)
    await page.goto(portal.url + "/login")
    await page.fill("input[name=usuario]", "operador")
    await page.fill("input[name=contrasena]", "secreto")
    await page.click("form#login button[type=submit]")
    await page.click("a#consulta")
    portal.config.expire_sessions_now = True
    await page.fill("form#consulta input[name=referencia]", "app-x")
    await page.click("form#consulta button[type=submit]")
    await expect(page.locator("#sesion-expirada")).to_contain_text("Su sesión ha expirado")
    assert page.url.endswith("/login?expirada=1")
    await context.close()


async def test_failed_lines_request_leaves_the_page_usable(
    portal: PortalSimulator, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(5000)
    await page.goto(portal.url + "/login")
    await page.fill("input[name=usuario]", "operador")
    await page.fill("input[name=contrasena]", "secreto")
    await page.click("form#login button[type=submit]")
    await page.click("a#nuevo-tramite")
    form = page.locator("form#solicitante")
    await form.locator("input[name=referencia]").fill("app-xhr")
    await form.locator("input[name=nombre]").fill("Gabriela")
    await form.locator("input[name=primer_apellido]").fill("Hernández")
    await form.locator("input[name=curp]").fill(VALID_CURP)
    await form.locator("input[name=correo]").fill("gabriela@example.com")
    await form.locator("input[name=telefono]").fill("5512345678")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("form#vehiculo")).to_be_visible()

    portal.config.error_rate = 1
    async with page.expect_response(re.compile(r"/catalogos/lineas")) as info:
        await page.select_option("select[name=marca]", label="Ford")
    assert (await info.value).status == 503
    await expect(page.locator("select[name=linea] option")).to_have_text(
        ["No fue posible cargar las líneas"]
    )
    portal.config.error_rate = 0
    await page.select_option("select[name=marca]", label="Chevrolet")
    await expect(page.locator("select[name=linea] option")).to_have_count(5)
    await page.select_option("select[name=linea]", label="Onix")
    await context.close()
