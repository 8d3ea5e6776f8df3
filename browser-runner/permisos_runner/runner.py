"""One attempt of one PermitRequest: log in, look up, submit only if needed, download, store.

`run_attempt` takes a launched browser and opens its own context, so a caller (the benchmark)
can reuse one browser for many attempts; `main` is the pod's entry point: it launches the
browser, runs one attempt, writes the result to the termination-message path and exits 0/3/4.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from pydantic import ValidationError

from permisos import logs
from permisos.applicant import Applicant
from permisos.attempt_result import AttemptResult
from permisos.redact import redact
from permisos.resources import ArtifactKind
from permisos_runner.documents import Document, check_pdf
from permisos_runner.errors import AttemptFailed, Permanent, Retryable
from permisos_runner.pages import HomePage, LoginPage, StatusPage, install_notice_handler
from permisos_runner.settings import RunnerSettings
from permisos_runner.storage import Storage, evidence_prefix

log = logging.getLogger("permisos_runner")

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
    context = await browser.new_context(
        accept_downloads=True, locale="es-MX", timezone_id="America/Mexico_City"
    )
    try:
        context.set_default_timeout(settings.portal_timeout_seconds * 1000)
        context.set_default_navigation_timeout(settings.portal_timeout_seconds * 1000)
        if settings.trace:
            await context.tracing.start(screenshots=True, snapshots=True)
        page = await context.new_page()
        await install_notice_handler(page)
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
            if settings.trace:
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
        home = await _sign_in(page, settings)
    with timings.step("lookup"):
        await (await home.consulta()).find(PROBE_REFERENCE)
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
        home = await _sign_in(page, settings)
    with timings.step("lookup"):
        # Asked first, so an attempt that crashed after submitting is never submitted again.
        earlier = await (await home.consulta()).find(reference)
    if earlier is not None:
        log.info("already submitted; resuming it")
        status = await StatusPage(page, settings).open(earlier)
    else:
        vehicle = settings.vehicle()
        if vehicle is None:
            raise Permanent("MissingVehicle", "La solicitud no trae los datos del vehículo")
        with timings.step("applicant"):
            step1 = await (await home.open()).new_application()
            step2 = await step1.submit(reference, applicant)
        with timings.step("vehicle"):
            review = await step2.submit(vehicle)
        with timings.step("confirm"):
            status = await review.confirm()
    with timings.step("processing"):
        outcome = await status.wait_until_done()
    if outcome.folio is None:
        raise Permanent("PortalRejected", outcome.reason)
    folio = outcome.folio
    documents: list[Document] = []
    with timings.step("download"), tempfile.TemporaryDirectory(prefix="permisos-") as tmp:
        for tipo, kind in DOCUMENTS:
            path = await status.download(tipo, Path(tmp))
            documents.append(check_pdf(kind, path.read_bytes(), folio, settings.max_pdf_bytes))
    with timings.step("upload"):
        artifacts = [
            await storage.put_document(reference, folio, document) for document in documents
        ]
    return AttemptResult(
        outcome="succeeded",
        reason="PermitIssued",
        message=f"Folio {folio}" + (" (resumed an earlier submission)" if earlier else ""),
        folio=folio,
        artifacts=artifacts,
    )


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
    if settings.trace:
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


def write_result(path: Path, result: AttemptResult) -> None:
    """The termination message; the exit code still tells the outcome if the path is broken."""
    try:
        path.write_text(result.to_message(), encoding="utf-8")
    except OSError as error:
        log.error("cannot write the termination message to %s: %s", path, error)


async def launch_and_run(settings: RunnerSettings, applicant: Applicant | None) -> AttemptResult:
    """Launches Chromium, runs one attempt, closes everything."""
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=settings.chromium_path, headless=True
            )
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
            await browser.close()


async def _run_until_terminated(
    settings: RunnerSettings, applicant: Applicant | None
) -> AttemptResult:
    """SIGTERM (the Job's deadline, a drained node) ends the attempt as retryable, reported."""
    task = asyncio.create_task(launch_and_run(settings, applicant))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return AttemptResult(
            outcome="retryable",
            reason="Terminated",
            message="El runner recibió SIGTERM",
            kind=settings.mode,
        )


class _Tag(logging.Filter):
    """Stamps every log line of this process with its PermitRequest and attempt."""

    def __init__(self, settings: RunnerSettings) -> None:
        super().__init__()
        self.permitrequest = settings.permit_request or settings.probe_name
        self.attempt = settings.attempt

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.setdefault("permitrequest", self.permitrequest)
        record.__dict__.setdefault("attempt", self.attempt)
        return True


def _tag_logs(settings: RunnerSettings) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Tag(settings))
    # botocore announces where it found credentials on every start; not worth a line.
    logging.getLogger("botocore").setLevel(logging.WARNING)


def main() -> int:
    try:
        settings = RunnerSettings()  # from the environment
    except ValidationError as error:
        logs.configure()
        # Which settings are wrong (or what is missing), never their values.
        fields = ", ".join(str(e["loc"][0]) if e["loc"] else e["msg"] for e in error.errors())
        log.error("invalid settings: %s", fields)
        result = AttemptResult(
            outcome="permanent", reason="InvalidConfiguration", message=f"Ajustes: {fields}"
        )
        termination = os.environ.get("PERMISOS_RUNNER_TERMINATION_LOG", "/dev/termination-log")
        write_result(Path(termination), result)
        return result.exit_code
    logs.configure(settings.log_level, settings.log_format)
    _tag_logs(settings)
    if settings.mode == "probe":  # no applicant: a probe touches no application
        result = asyncio.run(_run_until_terminated(settings, None))
        write_result(settings.termination_log, result)
        return result.exit_code
    try:
        applicant = Applicant.from_directory(settings.secret_dir)
    except (ValidationError, OSError) as error:
        # Which keys are wrong, never their values.
        keys = (
            ", ".join(str(e["loc"][0]) for e in error.errors() if e["loc"])
            if isinstance(error, ValidationError)
            else type(error).__name__
        )
        result = AttemptResult(
            outcome="permanent",
            reason="InvalidApplicant",
            message=redact(f"Datos del solicitante inválidos: {keys}"),
        )
    else:
        result = asyncio.run(_run_until_terminated(settings, applicant))
    write_result(settings.termination_log, result)
    return result.exit_code
