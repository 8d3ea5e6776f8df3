"""The bare Playwright floor of the runner benchmark: the clicks and downloads of one permit on
the portal simulator and nothing else (no checks, no S3, no trace).

Imports only Playwright, so that run as its own process it is also the floor of what a pod
does (start Python, start Playwright's driver, launch Chromium, one permit, exit):

    python bench/floor_permit.py PORTAL_URL REFERENCE PLATES APPLICANT_JSON
"""

from __future__ import annotations

import asyncio
import json
import sys

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
APPLICANT_FIELDS = (
    ("nombre", "first_name"),
    ("primer_apellido", "last_name"),
    ("segundo_apellido", "maternal_surname"),
    ("curp", "curp"),
    ("correo", "email"),
    ("telefono", "phone"),
)


async def floor_permit(
    browser: Browser, portal: str, reference: str, plate: str, applicant: dict[str, str]
) -> None:
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    try:
        await page.goto(f"{portal}/login")
        await page.fill("input[name=usuario]", "operador")
        await page.fill("input[name=contrasena]", "secreto")
        await page.click("form#login button[type=submit]")
        await page.wait_for_url("**/tramites")
        await page.goto(f"{portal}/consulta?referencia={reference}")
        await page.wait_for_selector("#sin-resultados, table#resultado")
        await page.goto(f"{portal}/tramites/nuevo/solicitante")
        await page.fill("form#solicitante [name=referencia]", reference)
        for name, key in APPLICANT_FIELDS:
            await page.fill(f"form#solicitante [name={name}]", applicant[key])
        await page.click("form#solicitante button[type=submit]")
        await page.wait_for_url("**/tramites/nuevo/vehiculo")
        await page.select_option("select[name=marca]", label="Nissan")
        await page.wait_for_selector("select[name=linea] option:text('Versa')", state="attached")
        await page.select_option("select[name=linea]", label="Versa")
        await page.select_option("select[name=tipo_servicio]", "particular")
        await page.select_option("select[name=ano_modelo]", "2022")
        await page.fill("input[name=placas]", plate)
        await page.click("form#vehiculo button[type=submit]")
        await page.wait_for_url("**/tramites/nuevo/revision")
        await page.click("#confirmar-envio")
        await page.wait_for_selector("#estado[data-estado=listo]", timeout=60_000)
        for kind in ("permiso", "certificado", "placa"):
            async with page.expect_download() as info:
                await page.click(f"a.documento[data-tipo={kind}]")
            download = await info.value
            await download.path()
    finally:
        await context.close()


async def one_permit(portal: str, reference: str, plate: str, applicant: dict[str, str]) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            await floor_permit(browser, portal, reference, plate, applicant)
        finally:
            await browser.close()


if __name__ == "__main__":
    portal_url, ref, plates, person = sys.argv[1:5]
    asyncio.run(one_permit(portal_url, ref, plates, json.loads(person)))
