"""One attempt of one PermitRequest: log in, look up, submit only if needed, download, store.

`run_attempt` takes a launched browser and opens its own context, so a caller (the benchmark)
can reuse one browser for many attempts; `launch_and_run` launches Chromium for one attempt, as
the pod (`permisos_runner.pod`) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, BrowserContext, Page, Playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from permisos.applicant import Applicant
from permisos.attempt_result import AttemptResult
from permisos.resources import ArtifactKind
from permisos_runner.documents import Document, check_pdf, load_reader
from permisos_runner.driver import launch
from permisos_runner.errors import AttemptFailed, Permanent, Retryable
from permisos_runner.pages import ApplicantStep, ConsultaPage, HomePage, LoginPage
from permisos_runner.settings import RunnerSettings
from permisos_runner.status import StatusPage
from permisos_runner.storage import Storage, evidence_prefix

log = logging.getLogger("permisos_runner")
T = TypeVar("T")

# The portal's document types and the artifact kinds of the contract.
DOCUMENTS: tuple[tuple[str, ArtifactKind], ...] = (
    ("permiso", "permit"),
    ("certificado", "certificate"),
    ("placa", "placard"),
)
MAX_MESSAGE_CHARS = 1000
# What a probe searches for: a reference no application has (application ids are UUIDs).
PROBE_REFERENCE = "sonda-de-disponibilidad"


class Timings:
    """Seconds per step, for the result and the logs."""

    def __init__(self, extra: dict[str, Any]) -> None:
        self.values: dict[str, float] = {}
        self._extra = extra

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        log.info("step %s", name, extra={**self._extra, "phase": name})
        started = time.monotonic()
        try:
            yield
        finally:
            self.values[name] = round(time.monotonic() - started, 3)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _failure(error: BaseException) -> AttemptFailed:
    """Classifies anything that ended an attempt early."""
    if isinstance(error, AttemptFailed):
        return error
    if isinstance(error, PlaywrightTimeoutError):
        return Retryable("PortalTimeout", _first_line(error))
    if isinstance(error, PlaywrightError):
        # Connection refused, reset, a crashed page: the portal or the browser, not the data.
        return Retryable("BrowserError", _first_line(error))
    return Retryable("RunnerError", f"{type(error).__name__}: {_first_line(error)}")


async def run_attempt(
    browser: Browser,
    settings: RunnerSettings,
    applicant: Applicant | None,
    *,
    storage: Storage | None = None,
) -> AttemptResult:
    """Runs one attempt in a fresh browser context and always returns its result."""
    extra = {
        "permitrequest": settings.permit_request or settings.probe_name,
        "attempt": settings.attempt,
    }
    storage = storage or Storage(settings)
    timings = Timings(extra)
    started = time.monotonic()
    context = await browser.new_context(locale="es-MX", timezone_id="America/Mexico_City")
    try:
        context.set_default_timeout(settings.portal_timeout_seconds * 1000)
        context.set_default_navigation_timeout(settings.portal_timeout_seconds * 1000)
        if settings.records_trace:
            await context.tracing.start(screenshots=True, snapshots=True)
        page = await context.new_page()
        try:
            if settings.mode == "probe":
                result = await _probe(page, settings, timings)
            else:
                result = await _flow(page, settings, applicant, storage, timings)
        except Exception as error:
            failure = _failure(error)
            if not isinstance(error, AttemptFailed):
                log.warning(
                    "attempt failed: %s", failure.message, extra={**extra, "reason": failure.reason}
                )
            evidence = await _evidence(context, page, settings, storage)
            result = AttemptResult(
                outcome=failure.outcome,
                reason=failure.reason,
                message=failure.message[:MAX_MESSAGE_CHARS],
                evidence=evidence,
                kind=settings.mode,
                retry_after_seconds=failure.retry_after_seconds,
            )
        else:
            if settings.records_trace:
                await context.tracing.stop()  # nothing to show for a success
    finally:
        await context.close()
    timings.values["total"] = round(time.monotonic() - started, 3)
    result.timings = timings.values
    summary = result.message or result.reason
    log.info("attempt %s: %s", result.outcome, summary, extra={**extra, "reason": result.reason})
    return result


async def _sign_in(page: Page, settings: RunnerSettings) -> HomePage:
    login = await LoginPage(page, settings).open()
    return await login.sign_in(
        settings.portal_username.get_secret_value(), settings.portal_password.get_secret_value()
    )


async def _probe(page: Page, settings: RunnerSettings, timings: Timings) -> AttemptResult:
    """The portal's health as an attempt would meet it, touching no application: sign in, then
    search the consulta page for a reference no application has."""
    with timings.step("login"):
        await _sign_in(page, settings)
    with timings.step("lookup"):
        await ConsultaPage(page, settings).find(PROBE_REFERENCE)
    return AttemptResult(
        outcome="succeeded",
        reason="PortalHealthy",
        message="El portal respondió: inicio de sesión y consulta",
        kind="probe",
    )


async def _flow(
    page: Page,
    settings: RunnerSettings,
    applicant: Applicant | None,
    storage: Storage,
    timings: Timings,
) -> AttemptResult:
    reference = settings.application_id
    if applicant is None or reference is None:  # the settings' validator makes this unreachable
        raise Permanent("InvalidConfiguration", "Un intento necesita solicitud y solicitante")
    with timings.step("login"):
        await _sign_in(page, settings)
    with timings.step("lookup"):
        # Asked first, so an attempt that crashed after submitting is never submitted again.
        earlier = await ConsultaPage(page, settings).find(reference)
    if earlier is not None:
        log.info("already submitted; resuming it")
        status = await StatusPage(page, settings).open(earlier)
    else:
        vehicle = settings.vehicle()
        if vehicle is None:
            raise Permanent("MissingVehicle", "La solicitud no trae los datos del vehículo")
        with timings.step("applicant"):
            step1 = await ApplicantStep(page, settings).open()
            step2 = await step1.submit(reference, applicant)
        with timings.step("vehicle"):
            review = await step2.submit(vehicle)
        with timings.step("confirm"):
            await review.confirm()
            status = await StatusPage(page, settings).ready()
    # What only the end needs (boto3's client, pypdf) loads in threads while the portal
    # processes: the CPU is idle then, where earlier it would slow the pages down.
    storage.connect()
    reader = asyncio.ensure_future(asyncio.to_thread(load_reader))
    try:
        with timings.step("processing"):
            outcome = await status.wait_until_done([tipo for tipo, _ in DOCUMENTS])
        if outcome.folio is None:
            raise Permanent("PortalRejected", outcome.reason)
        folio = outcome.folio
        with timings.step("download"):
            # The three at once, each checked as soon as it arrives.
            documents = await _together(
                _fetch_and_check(status, outcome.documents, tipo, kind, folio, settings)
                for tipo, kind in DOCUMENTS
            )
    finally:
        await status.discard_early()
        # A PDF reader that failed to load fails its check, where it is reported.
        with contextlib.suppress(Exception):
            await reader
    with timings.step("upload"):
        artifacts = await _together(
            storage.put_document(reference, folio, document) for document in documents
        )
    return AttemptResult(
        outcome="succeeded",
        reason="PermitIssued",
        message=f"Folio {folio}" + (" (resumed an earlier submission)" if earlier else ""),
        folio=folio,
        artifacts=artifacts,
    )


async def _fetch_and_check(
    status: StatusPage,
    links: dict[str, str],
    tipo: str,
    kind: ArtifactKind,
    folio: str,
    settings: RunnerSettings,
) -> Document:
    url = links.get(tipo)
    if url is None:
        raise Retryable(
            "PortalChanged", f"La página «Estado del trámite» ya no tiene a.documento[{tipo}]"
        )
    data = await status.download(tipo, url)
    return await asyncio.to_thread(check_pdf, kind, data, folio, settings.max_pdf_bytes)


async def _together(steps: Iterable[Awaitable[T]]) -> list[T]:
    """Runs the steps at once; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _evidence(
    context: BrowserContext, page: Page, settings: RunnerSettings, storage: Storage
) -> list[str]:
    """Best effort: screenshot, HTML and trace of the failed attempt, stored for the engineer.

    They may show personal data the form held, which is why they go to the same private bucket
    as the permits and never into a log.
    """
    prefix = evidence_prefix(settings)
    timeout = settings.evidence_timeout_seconds
    captured: list[tuple[str, bytes, str]] = []
    try:
        shot = await page.screenshot(full_page=True, timeout=timeout * 1000)
        captured.append(("screenshot.png", shot, "image/png"))
    except Exception as error:
        log.warning("no screenshot: %s", _first_line(error))
    try:
        html = await asyncio.wait_for(page.content(), timeout)
        captured.append(("page.html", html.encode(), "text/html; charset=utf-8"))
    except Exception as error:
        log.warning("no page HTML: %s", _first_line(error))
    if settings.records_trace:
        with tempfile.TemporaryDirectory(prefix="permisos-trace-") as tmp:
            trace = Path(tmp) / "trace.zip"
            try:
                await asyncio.wait_for(context.tracing.stop(path=trace), timeout)
                captured.append(("trace.zip", trace.read_bytes(), "application/zip"))
            except Exception as error:
                log.warning("no trace: %s", _first_line(error))
    stored = []
    for name, data, content_type in captured:
        try:
            await storage.put(prefix + name, data, content_type)
            stored.append(prefix + name)
        except AttemptFailed as error:
            log.warning("evidence not stored: %s", error.message)
    return stored


async def launch_and_run(
    playwright: Playwright,
    settings: RunnerSettings,
    applicant: Applicant | None,
    *,
    launched: Awaitable[Browser] | None = None,
    close: bool = True,
) -> AttemptResult:
    """Launches Chromium (or takes the launch the caller started) and runs one attempt; then
    closes the browser, unless the caller ends it another way (the pod kills it once the
    result is written: `pod.kill_browsers`)."""
    try:
        browser = await (launched or launch(playwright, settings.chromium_path))
    except PlaywrightError as error:
        return AttemptResult(
            outcome="retryable",
            reason="BrowserLaunchFailed",
            message=_first_line(error),
            kind=settings.mode,
        )
    try:
        return await run_attempt(browser, settings, applicant)
    finally:
        if close:
            await browser.close()
