"""Page objects: one per portal page, each waiting for what its page shows.

The element ids and names are the contract in `sandbox/permisos_sandbox/portal/PAGES.md`.
Every navigation goes through `PortalPage._navigated`, which turns what the portal answered
(maintenance, 5xx, an expired session, a rejected form token, a page without what the flow
needs) into a classified failure, so the steps themselves only deal with their own page. It reads
the page in one round trip to the browser: a pod pays each one on every attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from playwright.async_api import Locator, Page, Response

from permisos.applicant import Applicant
from permisos.resources import Vehicle
from permisos_runner.errors import Permanent, Retryable, retry_after
from permisos_runner.settings import RunnerSettings

log = logging.getLogger(__name__)

MAINTENANCE_HEADING = "mantenimiento"
# The page as `_navigated` judges it: its heading, the portal's validation messages next to the
# fields (`.campo-error`), which of the selectors the flow needs it lacks, and whether the
# portal's notice modal (rendered with the page, PAGES.md) covers it. With every select's
# options, [value, visible name], for the step that chooses from them.
READ_PAGE = """selectors => ({
    heading: (document.querySelector("h1")?.innerText ?? "").trim(),
    errors: Array.from(document.querySelectorAll(".campo-error"))
        .map(item => ({field: item.dataset.campo ?? "", text: item.innerText.trim()}))
        .filter(error => error.text),
    missing: selectors.filter(selector => !document.querySelector(selector)),
    notice: Array.from(document.querySelectorAll("div#aviso.modal"))
        .some(modal => !modal.hidden && getComputedStyle(modal).display !== "none"),
    options: Object.fromEntries(Array.from(document.querySelectorAll("select[name]")).map(
        select => [select.name, Array.from(select.options)
            .map(option => [option.value, (option.textContent || "").trim()])])),
})"""
# A form's text fields filled in one round trip, as typing leaves them: the value through the
# element's own setter, then the input and change events. Returns the fields it could not fill
# (gone, hidden, disabled or read-only).
FILL = """([form, values]) => Object.entries(values).filter(([name, value]) => {
    const field = document.querySelector(`${form} [name="${name}"]`);
    if (!field || field.disabled || field.readOnly || !field.getClientRects().length) {
        return true;
    }
    field.focus();
    Object.getOwnPropertyDescriptor(Object.getPrototypeOf(field), "value").set.call(field, value);
    field.dispatchEvent(new Event("input", {bubbles: true}));
    field.dispatchEvent(new Event("change", {bubbles: true}));
    return false;
}).map(([name]) => name)"""


def _within(form: str, *fields: str) -> tuple[str, ...]:
    """A form and its fields, as selectors for `PortalPage._navigated`'s `expect`."""
    return (form, *(f"{form} {field}" for field in fields))


class PortalPage:
    """What every page object shares: the page, the settings, and reading the portal's answer."""

    def __init__(self, page: Page, settings: RunnerSettings) -> None:
        self.page = page
        self.settings = settings

    def _url(self, path: str) -> str:
        return f"{self.settings.portal_base}{path}"

    @property
    def _timeout_ms(self) -> float:
        return self.settings.portal_timeout_seconds * 1000

    async def _goto(
        self, url: str, *, expect: Sequence[str] = (), login_page: bool = False
    ) -> dict[str, Any]:
        response = await self.page.goto(url)
        return await self._navigated(response, expect=expect, login_page=login_page)

    async def _follow(
        self, action: Locator, *, expect: Sequence[str] = (), login_page: bool = False
    ) -> dict[str, Any]:
        """Clicks `action` and waits for the navigation it causes."""
        async with self.page.expect_navigation() as navigation:
            await action.click()
        return await self._navigated(await navigation.value, expect=expect, login_page=login_page)

    async def _fill(self, form: str, values: dict[str, str]) -> None:
        refused: list[str] = await self.page.evaluate(FILL, [form, values])
        if refused:
            where = urlsplit(self.page.url).path
            raise Retryable("PortalChanged", f"La página «{where}» no deja llenar {refused[0]}")

    async def _navigated(
        self,
        response: Response | None,
        *,
        expect: Sequence[str] = (),
        login_page: bool = False,
    ) -> dict[str, Any]:
        """Raises the classified failure for a page that is not the one the flow expects, else
        returns what `READ_PAGE` read.

        `expect` is what the flow needs on the page just loaded. Pages are rendered by the
        server, so what is not there now never will be: the portal changed its pages
        (PortalChanged, which opens the pool's circuit), rather than a wait that ends as a
        timeout."""
        status = response.status if response is not None else 200
        # The headers Chromium reported with the response: no round trip to the browser.
        wait = retry_after(response.headers.get("retry-after")) if response else None
        page: dict[str, Any] = await self.page.evaluate(READ_PAGE, list(expect))
        heading = str(page["heading"])
        if MAINTENANCE_HEADING in heading.lower():
            raise Retryable(
                "PortalMaintenance",
                f"El portal está en mantenimiento: {heading}",
                retry_after_seconds=wait,
            )
        if status >= 500:
            raise Retryable("PortalUnavailable", f"HTTP {status}: {heading}".strip(": "))
        if status == 429:
            raise Retryable("RateLimited", f"HTTP 429: {heading}", retry_after_seconds=wait)
        if not login_page and urlsplit(self.page.url).path == "/login":
            raise Retryable("SessionExpired", "La sesión del portal expiró a mitad del trámite")
        if status >= 400:
            # 403 is the portal refusing a stale form token; a fresh session fixes it.
            raise Retryable("PortalHttpError", f"HTTP {status}: {heading}")
        if page["errors"]:
            for error in page["errors"]:
                log.info("portal rejected field %s", error["field"])
            raise Permanent("PortalRejected", "; ".join(error["text"] for error in page["errors"]))
        if page["missing"]:
            where = heading or urlsplit(self.page.url).path
            raise Retryable(
                "PortalChanged", f"La página «{where}» ya no tiene {page['missing'][0]}"
            )
        if page["notice"]:
            # Dismissed here, where the page is read anyway, rather than by a locator handler,
            # which costs a round trip to the page before every action of the attempt.
            await self.page.locator("button#cerrar-aviso").click()
        return page


class LoginPage(PortalPage):
    FORM = "form#login"
    EXPECT = _within(FORM, "input[name=usuario]", "input[name=contrasena]", "[type=submit]")

    async def open(self) -> LoginPage:
        await self._goto(self._url("/login"), expect=self.EXPECT, login_page=True)
        return self

    async def sign_in(self, username: str, password: str) -> HomePage:
        await self._fill(self.FORM, {"usuario": username, "contrasena": password})
        await self._follow(self.page.locator(f"{self.FORM} [type=submit]"), login_page=True)
        if urlsplit(self.page.url).path == "/login":
            alert = self.page.locator(".alerta-error")
            text = (await alert.first.inner_text()).strip() if await alert.count() else ""
            # The pool's account is wrong or locked: not the applicant's data, so retryable
            # (the operator's attempt limit bounds it) while an engineer fixes the Secret.
            raise Retryable("PortalLoginFailed", text or "El portal no aceptó la cuenta")
        await self._navigated(None, expect=HomePage.EXPECT)
        return HomePage(self.page, self.settings)


class HomePage(PortalPage):
    EXPECT = ("a#nuevo-tramite",)


class ConsultaPage(PortalPage):
    EXPECT = ("form#consulta", "table#resultado, #sin-resultados")

    async def find(self, reference: str) -> str | None:
        """The status page URL of an earlier submission with this reference, if any.

        The consulta form is a GET, so its search is a URL: one page load instead of opening
        the form and submitting it (PAGES.md documents both)."""
        query = urlencode({"referencia": reference})
        await self._goto(self._url(f"/consulta?{query}"), expect=self.EXPECT)
        links: list[str] = await self.page.evaluate(
            """() => Array.from(document.querySelectorAll("table#resultado a.ver-tramite"))
                .map(link => link.getAttribute("href") ?? "")"""
        )
        if len(links) > 1:
            log.warning("the portal lists %d submissions for this reference", len(links))
        # The most recent row is the one still worth following.
        if not links or not links[-1]:
            return None
        return urljoin(self.page.url, links[-1])


class ApplicantStep(PortalPage):
    FORM = "form#solicitante"
    FIELDS = (
        "referencia",
        "nombre",
        "primer_apellido",
        "segundo_apellido",
        "curp",
        "correo",
        "telefono",
    )
    EXPECT = _within(FORM, *(f"[name={name}]" for name in FIELDS), "[type=submit]")

    async def open(self) -> ApplicantStep:
        """Step 1 by its URL (the home page's link goes there), one page load fewer."""
        await self._goto(self._url("/tramites/nuevo/solicitante"), expect=self.EXPECT)
        return self

    async def submit(self, reference: str, applicant: Applicant) -> VehicleStep:
        values = (
            reference,
            applicant.first_name,
            applicant.last_name,
            applicant.maternal_surname,
            applicant.curp,
            applicant.email,
            applicant.phone,
        )
        await self._fill(self.FORM, dict(zip(self.FIELDS, values, strict=True)))
        submit = self.page.locator(f"{self.FORM} [type=submit]")
        read = await self._follow(submit, expect=VehicleStep.EXPECT)
        return VehicleStep(self.page, self.settings, read["options"])


class VehicleStep(PortalPage):
    FORM = "form#vehiculo"
    EXPECT = _within(
        FORM,
        "select[name=marca]",
        "select[name=linea]",
        "select[name=tipo_servicio]",
        "select[name=ano_modelo]",
        "input[name=placas]",
        "[type=submit]",
    )

    def __init__(
        self, page: Page, settings: RunnerSettings, options: dict[str, list[list[str]]]
    ) -> None:
        super().__init__(page, settings)
        # The selects' options as the page was read on arrival; the lines come later, by XHR.
        self.options = options

    async def submit(self, vehicle: Vehicle) -> ReviewPage:
        form = self.page.locator(self.FORM)
        make = form.locator("select[name=marca]")
        line = form.locator("select[name=linea]")
        options = self.options
        make_value = _option_value(options.get("marca", []), vehicle.make, "marca")

        # The page's script loads the lines by XHR when the make changes; watch that call.
        async with self.page.expect_response(lambda r: "/catalogos/lineas" in r.url) as lines:
            await make.select_option(value=make_value)
        response = await lines.value
        if response.status >= 500:
            raise Retryable("PortalUnavailable", f"HTTP {response.status} del catálogo de líneas")
        if response.status == 429:
            wait = retry_after(response.headers.get("retry-after"))
            raise Retryable(
                "RateLimited", "HTTP 429 del catálogo de líneas", retry_after_seconds=wait
            )
        if 300 <= response.status < 400 or response.status == 401:
            raise Retryable("SessionExpired", "La sesión del portal expiró a mitad del trámite")
        # The script reloads the page (to the login form) when the session has expired.
        loaded = line.locator("option:not([value=''])").first
        await loaded.or_(self.page.locator("form#login")).first.wait_for(state="attached")
        line_options = (await self._navigated(None))["options"].get("linea", [])
        await line.select_option(value=_option_value(line_options, vehicle.line, "línea"))

        service = _option_value(options.get("tipo_servicio", []), vehicle.service_type, "tipo")
        await form.locator("select[name=tipo_servicio]").select_option(value=service)
        year = _option_value(options.get("ano_modelo", []), str(vehicle.model_year), "año")
        await form.locator("select[name=ano_modelo]").select_option(value=year)
        await self._fill(self.FORM, {"placas": vehicle.plates})

        await self._follow(form.locator("[type=submit]"), expect=ReviewPage.EXPECT)
        return ReviewPage(self.page, self.settings)


class ReviewPage(PortalPage):
    EXPECT = ("dl#resumen", "button#confirmar-envio")

    async def confirm(self) -> None:
        """Submits the application: from here on the portal holds it under our reference.
        The portal answers with the status page (`permisos_runner.status`)."""
        await self._follow(self.page.locator("button#confirmar-envio"))


def _option_value(options: list[list[str]], wanted: str, what: str) -> str:
    """The value of the option whose visible name (or value) matches, case-insensitively."""
    key = wanted.strip().casefold()
    real = [(value, label) for value, label in options if value]
    for value, label in real:
        if label.casefold() == key or value.casefold() == key:
            return value
    if not real:
        raise Retryable("PortalInconsistent", f"El catálogo de {what} llegó vacío")
    raise Permanent("VehicleNotInCatalog", f"El catálogo del portal no tiene {what} {wanted!r}")
