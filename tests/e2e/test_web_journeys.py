"""The two whole applicant journeys in a real browser (Debian's Chromium) against the whole
platform: the Helm release on the real control plane, its operator, the runner Jobs the node
agent runs, the portal and payments simulators, S3 and the mail catcher. At a phone's size
(375x812) and a desktop's, every page is checked by axe-core (no serious or critical
violation), photographed under var/screenshots/web/<journey>/<size>/, and its server time
printed.

- Card: create an account on /registro, open the link the verification mail carries, log in on
  /entrar, file the application (a wrong CURP first, said next to the field), see the price, pay
  by card through Stripe.js with 3-D Secure, follow the permit live on its page (where it waits
  in line, then "Permiso listo"), and download the three PDFs from the page.
- OXXO: a new application, its voucher, paid in cash at the simulated store, the page following
  the permit, the permit-ready mail's link, and the three PDFs.

Each PDF downloaded must be one and carry the SHA-256 that GET /v1/applications/{id}/permits
lists. One platform serves every journey of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Response
from playwright.async_api import Error as PlaywrightError

from permisos_sandbox.platform import Platform, PlatformConfig
from permisos_sandbox.platform.applicant import PASSWORD, Applicant
from permisos_sandbox.platform.people import fictional_person
from tests.api.conftest import read_mail
from tests.api.test_web_card import BANK_FRAME, card_form, type_card
from tests.api.web import SCREENSHOTS, SIZES, Visit, chromium
from tests.cluster import eventually
from tests.cluster import kubectl as cluster_kubectl
from tests.databases import fresh_database

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]

RUN = secrets.token_hex(3)
THREE_D_SECURE_CARD = "4000 0027 6000 3184"  # the payments simulator's 3-D Secure test card
PRICE = "$1,500.00 MXN"  # a private car (particular)
PAID = "Pagado: tramitando tu permiso"
READY = "Permiso listo"
RUNNERS = 2
# The whole permit once paid: the runner pod's start, the portal, S3 and the mirror, on a
# shared two-core machine.
PERMIT_WITHIN_MS = 180_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """The whole platform, started once for the journeys of this module."""
    with fresh_database("permisos_web_e2e", migrate=False) as url:
        config = PlatformConfig(
            state_dir=tmp_path_factory.mktemp("platform"),
            database_url=url,
            runners=RUNNERS,
            portal_processing_seconds=0.5,
        ).on_free_ports()
        async with Platform(config) as running:
            yield running


@dataclass
class Journey(Visit):
    """A Visit that knows the page's latest document (its own reloads included), so a page
    reached by a script or a redirect still has its server time printed."""

    documents: list[Response] = field(default_factory=list)

    async def check(self, name: str, response: Response | None = None) -> None:
        await super().check(name, response or (self.documents or [None])[-1])


async def journey_page(browser: Browser, journey: str, size: str) -> Journey:
    context = await browser.new_context(viewport=SIZES[size], locale="es-MX")
    page = await context.new_page()
    visit = Journey(page, journey, size)

    def document(response: Response) -> None:
        if response.request.is_navigation_request() and response.frame == page.main_frame:
            visit.documents.append(response)

    page.on("response", document)
    return visit


def person(journey: str, size: str) -> dict[str, str]:
    """A fictional applicant of this run, its plates and email its own."""
    i = 2 * list(SIZES).index(size) + (journey == "oxxo")
    data = fictional_person(i, f"web-{RUN}")
    return {**data, "email": f"web-{RUN}-{journey}-{size}@example.com", "plates": f"WEB{i:04d}"}


async def mailed_link(p: Platform, address: str, subject: str, path: str) -> str:
    """The link to `path` in the newest mail `address` received about `subject`, as a mail
    reader opens it from the HTML part."""

    async def found() -> str | None:
        for message in reversed(read_mail(p.outbox, address)):
            said = str(make_header(decode_header(message["Subject"])))
            if not said.startswith(subject):
                continue
            for part in message.walk():
                body = part.get_payload(decode=True)
                if part.get_content_type() == "text/html" and isinstance(body, bytes):
                    link = re.search(r'href="([^"]*' + re.escape(path) + r'[^"]*)"', body.decode())
                    if link:
                        return html.unescape(link[1])
        return None

    return await eventually(found, timeout=60, every=0.2)


async def fill_application(page: Page, data: dict[str, str], curp: str) -> None:
    await page.get_by_label("Nombre(s)").fill(data["first_name"])
    await page.get_by_label("Primer apellido").fill(data["last_name"])
    await page.get_by_label("Segundo apellido (opcional)").fill(data["maternal_surname"])
    await page.get_by_label("CURP").fill(curp)
    await page.get_by_label("Teléfono celular").fill(data["phone"])
    await page.get_by_label("Placas").fill(data["plates"])
    await page.get_by_label("Marca").select_option(label="Nissan")
    await page.get_by_label("Línea").select_option(label="Versa")
    await page.get_by_label("Año modelo").select_option("2022")


async def log_in(page: Page, visit: Journey, base: str, address: str) -> None:
    await visit.check("entrar", await page.goto(base + "/entrar"))
    await page.get_by_label("Correo electrónico").fill(address)
    await page.get_by_label("Contraseña").fill(PASSWORD)
    response = await visit.submit("Entrar")
    assert page.url == base + "/"
    assert await page.get_by_role("heading", level=1).inner_text() == "Mis solicitudes"
    await visit.check("mis-solicitudes", response)


async def apply(page: Page, visit: Journey, data: dict[str, str], *, wrong_curp: bool) -> str:
    """From the home page: a new application, filed (with a wrong CURP first, said next to the
    field, if `wrong_curp`); its price; its id."""
    async with page.expect_navigation() as navigation:
        await page.get_by_role("link", name="Nueva solicitud").click()
    await visit.check("formulario", await navigation.value)
    if wrong_curp:  # its check digit is off
        wrong = data["curp"][:-1] + str((int(data["curp"][-1]) + 1) % 10)
        await fill_application(page, data, wrong)
        response = await visit.submit("Continuar")
        assert response is not None and response.status == 422
        assert "La CURP no es válida" in await page.locator("#curp-error").inner_text()
        assert await page.get_by_label("CURP").get_attribute("aria-invalid") == "true"
        assert await page.get_by_label("Placas").input_value() == data["plates"]  # kept
        await visit.check("formulario-con-error", response)
        await page.get_by_label("CURP").fill(data["curp"])
    else:
        await fill_application(page, data, data["curp"])
    response = await visit.submit("Continuar")
    found = re.search(r"/solicitudes/([0-9a-f-]{36})$", page.url)
    assert found, page.url
    assert await page.locator("#estado").inner_text() == "Borrador"
    assert await page.locator("#precio").inner_text() == PRICE
    await visit.check("solicitud", response)
    return found[1]


async def scale_runners(p: Platform, replicas: int) -> None:
    """What an engineer does: `kubectl scale runnerpool/default --replicas=N`."""
    await cluster_kubectl(
        p.kubeconfig,
        "-n",
        p.config.namespace,
        "scale",
        "runnerpool/default",
        f"--replicas={replicas}",
    )


async def follow_to_ready(p: Platform, page: Page, visit: Journey) -> list[str]:
    """The page follows the paid permit by itself: first where it waits (no runner free: the
    pool is scaled to none while the payment goes in), then, once a runner is back, "Permiso
    listo" and its documents. What the page said along the way, in order."""
    seen: list[str] = []

    async def said() -> None:
        espera = page.locator("#espera")
        texts = [await page.locator("#estado").inner_text()]
        texts += [await espera.inner_text()] if await espera.is_visible() else []
        shown = " / ".join(text for text in texts if text)
        if not seen or seen[-1] != shown:
            seen.append(shown)

    waiting = page.locator("#espera", has_text="en la fila")
    await page.locator("#estado", has_text=PAID).wait_for(timeout=60_000)
    await waiting.wait_for(timeout=60_000)  # written live by the page's script, no reload
    await said()
    await visit.check("en-la-fila")
    await scale_runners(p, RUNNERS)
    ready = page.locator("#estado", has_text=READY)
    deadline = asyncio.get_running_loop().time() + PERMIT_WITHIN_MS / 1000
    while not await ready.count():
        assert asyncio.get_running_loop().time() < deadline, seen
        with contextlib.suppress(PlaywrightError):  # the page reloading between two reads
            await said()
        await asyncio.sleep(0.25)
    await page.wait_for_load_state()
    await said()
    assert seen[-1] == READY, seen
    await visit.check("permiso-listo")
    return seen


async def download_documents(page: Page, base: str, app_id: str, folder: Path) -> list[str]:
    """Clicks each document's link on the page, as a person saves the three PDFs; each must be a
    PDF with the SHA-256 that the API lists for it. The kinds downloaded."""
    links = page.get_by_role("link", name=re.compile(r"^Descargar .* \(PDF\)$"))
    assert await links.count() == 3
    listing = await page.request.get(f"{base}/v1/applications/{app_id}/permits")
    assert listing.ok, await listing.text()
    listed = {item["kind"]: item["sha256"] for item in (await listing.json())["items"]}
    kinds = []
    for n in range(3):
        link = links.nth(n)
        kind = (await link.get_attribute("href") or "").rsplit("/", 1)[-1]
        async with page.expect_download() as started:
            await link.click()
        download = await started.value
        path = folder / f"{kind}.pdf"
        await download.save_as(path)
        body = path.read_bytes()
        assert body.startswith(b"%PDF-"), kind
        assert hashlib.sha256(body).hexdigest() == listed[kind], kind
        kinds.append(kind)
    assert sorted(kinds) == ["certificate", "permit", "placard"]
    return kinds


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_card_journey_from_the_account_to_the_pdfs(
    platform: Platform, size: str, tmp_path: Path
) -> None:
    p, base = platform, platform.api_url
    data = person("tarjeta", size)
    async with chromium() as browser:
        visit = await journey_page(browser, "recorrido-tarjeta", size)
        page = visit.page

        # An account: the form, then the link the verification mail carries.
        await visit.check("registro", await page.goto(base + "/registro"))
        await page.get_by_label("Correo electrónico").fill(data["email"])
        await page.get_by_label("Contraseña").fill(PASSWORD)
        response = await visit.submit("Crear cuenta")
        assert await page.get_by_role("heading", level=1).inner_text() == "Revisa tu correo"
        await visit.check("registro-enviado", response)
        link = await mailed_link(p, data["email"], "Confirma tu correo", "/verificar?token=")
        assert link.startswith(base + "/verificar?token="), "the mail links to this platform"
        response = await page.goto(link)
        assert await page.get_by_role("heading", level=1).inner_text() == "Correo confirmado"
        await visit.check("correo-confirmado", response)
        await log_in(page, visit, base, data["email"])

        # The application: a wrong CURP first, then the right one; its price.
        app_id = await apply(page, visit, data, wrong_curp=True)

        # Card payment through Stripe.js, with the bank's 3-D Secure challenge completed. No
        # runner is free meanwhile, so the page shows the permit waiting in line.
        await scale_runners(p, 0)
        try:
            response = await visit.submit("Pagar con tarjeta")
            assert page.url == f"{base}/solicitudes/{app_id}/tarjeta"
            await card_form(page)
            assert await page.locator("#monto").inner_text() == PRICE
            await visit.check("tarjeta", response)
            await type_card(page, THREE_D_SECURE_CARD)
            await page.get_by_role("button", name=f"Pagar {PRICE}").click()
            bank = page.frame_locator(BANK_FRAME)
            await bank.get_by_role("button", name="Complete authentication").wait_for(
                timeout=15_000
            )
            await visit.check("verificacion-del-banco")
            await bank.get_by_role("button", name="Complete authentication").click()
            await page.wait_for_url(re.compile(rf"/solicitudes/{app_id}\?payment_intent=pi_"))
            seen = await follow_to_ready(p, page, visit)
        finally:
            await scale_runners(p, RUNNERS)
        print(f"[{size}] the card journey's page said: {seen}")
        await download_documents(page, base, app_id, tmp_path)
    print(f"[{size}] screenshots: {SCREENSHOTS / visit.journey / size}")


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_oxxo_journey_from_the_voucher_to_the_pdfs(
    platform: Platform, size: str, tmp_path: Path
) -> None:
    p, base = platform, platform.api_url
    data = person("oxxo", size)
    # An account made beforehand (the card journey goes through its pages).
    account = Applicant(base, p.outbox, data["email"], data)
    try:
        await account.register_and_verify()
    finally:
        await account.close()
    async with chromium() as browser:
        visit = await journey_page(browser, "recorrido-oxxo", size)
        page = visit.page
        await log_in(page, visit, base, data["email"])
        app_id = await apply(page, visit, data, wrong_curp=False)

        response = await visit.submit("Pagar en efectivo en OXXO")
        assert await page.locator("#estado").inner_text() == "Pago en proceso"
        reference = await page.locator("#referencia").inner_text()
        assert re.fullmatch(r"\d{14}", reference)
        assert await page.locator("#monto").inner_text() == PRICE
        assert "(hora del centro de México)" in await page.locator("#vence").inner_text()
        await visit.check("ficha", response)
        # Stripe's hosted voucher, linked from the page, carries the same reference.
        hosted = await page.get_by_role("link", name="Ver la ficha de Stripe").get_attribute("href")
        assert hosted is not None
        voucher_page = await page.context.new_page()
        await voucher_page.goto(hosted)
        assert reference in (await voucher_page.locator("body").inner_text()).replace(" ", "")
        await voucher_page.close()

        # The store takes the cash (the payments simulator's counter); Stripe's webhook tells the
        # API. No runner is free meanwhile, so the page shows the permit waiting in line.
        payments = await page.request.get(f"{base}/v1/applications/{app_id}/payments")
        assert payments.ok, await payments.text()
        (intent,) = [item["intent_id"] for item in (await payments.json())["items"]]
        await scale_runners(p, 0)
        try:
            account.intent_id = intent
            await account.pay_voucher_at_store(p.payments_url)

            async def paid_shown() -> bool:
                await page.reload()
                return await page.locator("#estado").inner_text() == PAID

            await eventually(paid_shown, timeout=30, every=1)
            assert await page.locator("#ficha").count() == 0
            seen = await follow_to_ready(p, page, visit)
        finally:
            await scale_runners(p, RUNNERS)
        print(f"[{size}] the OXXO journey's page said: {seen}")

        # The permit-ready mail links to the page with the documents.
        link = await mailed_link(
            p, data["email"], "Tu permiso está listo", f"/solicitudes/{app_id}"
        )
        assert link == f"{base}/solicitudes/{app_id}"
        response = await page.goto(link)
        assert await page.locator("#estado").inner_text() == READY
        await visit.check("documentos", response)
        await download_documents(page, base, app_id, tmp_path)
    print(f"[{size}] screenshots: {SCREENSHOTS / visit.journey / size}")
