"""The status page of a submission: waiting for the portal to process it, and its documents.

The page polls `estado.json` and reloads itself when the state changes (PAGES.md); the runner
asks the same JSON too, with a short first interval that grows, so it reloads as soon as the
portal is done rather than up to one of the page's intervals later. The page stays the source
of truth: the JSON only tells the runner when to look again.

The three PDFs are fetched at once with the browser context's session (the links' own URLs,
the context's cookies), instead of one browser download after another. When the JSON says
`listo` they start at once, from the URLs PAGES.md gives, while the page reloads; the page's
links are then read as before, and a link the guess got wrong is fetched from the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from permisos_runner.errors import Retryable, retry_after
from permisos_runner.pages import MAINTENANCE_HEADING, PortalPage
from permisos_runner.settings import RunnerSettings

# The runner's own polling: the first look soon, then ever less often (the page polls too,
# and the pool's account shares the portal's rate limit).
FIRST_POLL_SECONDS = 0.1
POLL_GROWTH = 1.5
MAX_POLL_SECONDS = 2.0
READ_STATUS = """() => ({
    estado: document.querySelector("#estado")?.dataset.estado ?? "",
    folio: (document.querySelector("#folio")?.innerText ?? "").trim(),
    motivo: (document.querySelector("#motivo")?.innerText ?? "").trim(),
    documentos: Object.fromEntries(Array.from(document.querySelectorAll("a.documento[data-tipo]"))
        .map(link => [link.dataset.tipo, link.href])),
})"""


@dataclass(frozen=True)
class StatusOutcome:
    state: str  # listo | rechazado
    folio: str | None
    reason: str
    # The document links: portal type (permiso, certificado, placa) -> absolute URL.
    documents: dict[str, str] = field(default_factory=dict)


class StatusPage(PortalPage):
    def __init__(self, page: Page, settings: RunnerSettings) -> None:
        super().__init__(page, settings)
        # Documents fetched before the page showed their links: type -> (URL, its bytes).
        self._early: dict[str, tuple[str, asyncio.Future[bytes]]] = {}

    async def ready(self) -> StatusPage:
        await self.page.locator("#estado").wait_for(state="attached")
        return self

    async def open(self, url: str) -> StatusPage:
        await self._goto(url)
        return await self.ready()

    async def wait_until_done(self, documents: Sequence[str] = ()) -> StatusOutcome:
        """Waits for `listo` or `rechazado`; the page polls and reloads itself meanwhile.
        `documents` (portal types) start downloading as soon as the JSON says `listo`: call
        `discard_early` once they are no longer needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.processing_timeout_seconds
        done = self.page.locator("#estado[data-estado=listo], #estado[data-estado=rechazado]")
        # Leaving the status page (expired session, maintenance) ends the wait at once.
        left = self.page.locator("form#login").or_(
            self.page.locator("h1", has_text=MAINTENANCE_HEADING)
        )
        settled = done.or_(left).first
        status_url = self.page.url
        hint: asyncio.Future[dict[str, Any] | None] = asyncio.ensure_future(
            self._moved_on(status_url)
        )
        wait: asyncio.Future[None] | None = None
        # A wait begun on the old page notices a new one (the page's own reload, or the
        # runner's) only after Playwright's retry back-off, a fifth of a second: a page that
        # has loaded is looked at again at once instead.
        loaded = asyncio.Event()

        def on_load(_: object) -> None:
            loaded.set()

        self.page.on("domcontentloaded", on_load)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise Retryable(
                        "ProcessingTimeout", "El portal no terminó de procesar el trámite"
                    )
                window = min(self.settings.status_reload_seconds, remaining)
                loaded.clear()
                wait = asyncio.ensure_future(
                    settled.wait_for(state="attached", timeout=window * 1000)
                )
                reloaded = asyncio.ensure_future(loaded.wait())
                either: set[asyncio.Future[Any]] = {wait, hint, reloaded}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                reloaded.cancel()
                if not wait.done():
                    if hint.done():
                        answer = (
                            hint.result()
                            if not hint.cancelled() and hint.exception() is None
                            else None
                        )
                        hint = loop.create_future()  # one hint is enough
                        if answer is not None:
                            if answer["estado"] == "listo":
                                self._fetch_early(status_url, documents)
                            await self._reload()
                    await _cancelled(wait)
                    continue
                try:
                    await wait
                except PlaywrightTimeoutError:
                    # The page's own polling may have stopped (an error, a lost request).
                    await self._goto(self.page.url)
                    continue
                break
        finally:
            self.page.remove_listener("domcontentloaded", on_load)
            hint.cancel()
            if wait is not None:
                await _cancelled(wait)
        if not await done.count():
            await self._navigated(None)
            raise Retryable("PortalInconsistent", "El portal salió de la página de estado")
        status: dict[str, Any] = await self.page.evaluate(READ_STATUS)
        if status["estado"] == "rechazado":
            reason = status["motivo"] or "El portal rechazó el trámite"
            return StatusOutcome("rechazado", None, reason)
        if not status["folio"]:
            raise Retryable("PortalInconsistent", "El trámite está listo pero sin folio")
        return StatusOutcome("listo", status["folio"], "", dict(status["documentos"]))

    async def _reload(self) -> None:
        """Reloads the status page now: its own polling has not noticed yet. The page may
        reload itself meanwhile, which interrupts this navigation harmlessly."""
        with contextlib.suppress(PlaywrightError):
            await self._goto(self.page.url)

    def _fetch_early(self, status_url: str, documents: Sequence[str]) -> None:
        """Starts the documents' downloads from their URLs as PAGES.md gives them."""
        parts = urlsplit(status_url)
        if not parts.path.endswith("/estado"):
            return
        base = parts.path.removesuffix("/estado")
        for tipo in documents:
            path = f"{base}/documentos/{tipo}.pdf"
            url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
            self._early[tipo] = (url, asyncio.ensure_future(self._fetch(tipo, url)))

    async def discard_early(self) -> None:
        """Ends the early downloads nobody took (a failed attempt, a link elsewhere)."""
        early, self._early = self._early, {}
        for _, fetch in early.values():
            fetch.cancel()
        for _, fetch in early.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await fetch

    async def _moved_on(self, page_url: str) -> dict[str, Any] | None:
        """The portal's `estado.json` once it says the submission left `procesando`; None
        (and no more asking) on any answer that is not that JSON: the page's own polling and
        reload, and `_navigated`, deal with errors, limits and expired sessions."""
        parts = urlsplit(page_url)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path + ".json", "", ""))
        interval = FIRST_POLL_SECONDS
        while True:
            await asyncio.sleep(interval)
            interval = min(interval * POLL_GROWTH, MAX_POLL_SECONDS)
            try:
                response = await self.page.request.get(
                    url, max_redirects=0, timeout=self._timeout_ms
                )
                if response.status != 200:
                    return None
                answer = await response.json()
            except (PlaywrightError, ValueError):
                return None
            if not isinstance(answer, dict) or "estado" not in answer:
                return None
            if answer["estado"] != "procesando":
                return answer

    async def download(self, tipo: str, url: str) -> bytes:
        """One document's bytes, fetched with the page's session as its link would be (or
        was, early, if the link is where PAGES.md said)."""
        url_early, early = self._early.pop(tipo, ("", None))
        if early is not None and url_early == url:
            return await early
        if early is not None:
            early.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await early
        return await self._fetch(tipo, url)

    async def _fetch(self, tipo: str, url: str) -> bytes:
        timeout = self.settings.download_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                response = await self.page.request.get(url, max_redirects=0, timeout=timeout * 1000)
                status = response.status
                if status == 200:
                    return await response.body()
        except (TimeoutError, PlaywrightTimeoutError):
            raise Retryable(
                "DownloadTimeout", f"La descarga de {tipo} no terminó a tiempo"
            ) from None
        except PlaywrightError as error:
            raise Retryable(
                "DownloadFailed", f"La descarga de {tipo} se interrumpió: {_first_line(error)}"
            ) from None
        if status >= 500:
            raise Retryable("PortalUnavailable", f"HTTP {status} al descargar {tipo}")
        if status == 429:
            wait = retry_after(response.headers.get("retry-after"))
            raise Retryable(
                "RateLimited", f"HTTP 429 al descargar {tipo}", retry_after_seconds=wait
            )
        if 300 <= status < 400 or status == 401:
            raise Retryable("SessionExpired", "La sesión del portal expiró a mitad del trámite")
        raise Retryable("DownloadFailed", f"HTTP {status} al descargar {tipo}")


async def _cancelled(wait: asyncio.Future[None]) -> None:
    if not wait.done():
        wait.cancel()
    with contextlib.suppress(asyncio.CancelledError, PlaywrightError):
        await wait


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
