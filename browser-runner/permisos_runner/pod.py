"""The pod's life: settings from the environment, the applicant from the mounted Secret, one
attempt (or probe), the result in the termination-message path, exit code 0/3/4.

`python -m permisos_runner` starts Playwright's driver before it imports this module and hands
it over (see `__main__`), so the driver's start overlaps the imports. Once the result is written
the browser is killed rather than closed: nothing is left to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Awaitable
from pathlib import Path

from playwright.async_api import Browser, Playwright
from pydantic import ValidationError

from permisos import logs
from permisos.applicant import Applicant
from permisos.attempt_result import AttemptResult
from permisos.redact import redact
from permisos_runner.runner import launch_and_run
from permisos_runner.settings import RunnerSettings

log = logging.getLogger("permisos_runner")


def kill_browsers() -> bool:
    """SIGKILLs the browsers Playwright's driver (this process's child) launched: each leads a
    process group of its own, with its renderers and helpers. The driver exits when this process
    does (its stdin closes); their files are in the scratch directory `run` removes. False
    without `/proc`."""
    procs: dict[int, tuple[int, int]] = {}  # pid -> (parent, process group)
    try:
        entries = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return False
    for name in entries:
        try:
            stat = Path("/proc", name, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()  # after the command's name, which may hold ")"
        procs[int(name)] = (int(fields[1]), int(fields[2]))
    drivers = {pid for pid, (parent, _) in procs.items() if parent == os.getpid()}
    for pid, (parent, group) in procs.items():
        if parent in drivers and group == pid:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
    return True


def write_result(path: Path, result: AttemptResult) -> None:
    """The termination message; the exit code still tells the outcome if the path is broken."""
    try:
        path.write_text(result.to_message(), encoding="utf-8")
    except OSError as error:
        log.error("cannot write the termination message to %s: %s", path, error)


def _terminated(settings: RunnerSettings) -> AttemptResult:
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


def _settings() -> RunnerSettings | AttemptResult:
    """The settings, or the result that reports why they are wrong."""
    try:
        return RunnerSettings()  # from the environment
    except ValidationError as error:
        logs.configure()
        # Which settings are wrong (or what is missing), never their values.
        fields = ", ".join(str(e["loc"][0]) if e["loc"] else e["msg"] for e in error.errors())
        log.error("invalid settings: %s", fields)
        return AttemptResult(
            outcome="permanent", reason="InvalidConfiguration", message=f"Ajustes: {fields}"
        )


def _applicant(settings: RunnerSettings) -> Applicant | AttemptResult:
    """The applicant's data from the Secret's files, or the result that reports which are bad."""
    try:
        return Applicant.from_directory(settings.secret_dir)
    except (ValidationError, OSError) as error:
        # Which keys are wrong, never their values.
        keys = (
            ", ".join(str(e["loc"][0]) for e in error.errors() if e["loc"])
            if isinstance(error, ValidationError)
            else type(error).__name__
        )
        return AttemptResult(
            outcome="permanent",
            reason="InvalidApplicant",
            message=redact(f"Datos del solicitante inválidos: {keys}"),
        )


async def run(
    driver: Awaitable[Playwright],
    scratch: str | None = None,
    *,
    browser: tuple[str, asyncio.Future[Browser]] | None = None,
) -> int:
    """One pod: returns its exit code. `driver` is Playwright's, starting; `scratch` the
    temporary directory it and the browser use, removed at the end; `browser` Chromium's path
    and its launch, started early (used if the settings name the same path).

    SIGTERM (the Job's deadline, a drained node) is handled from the start, even while the
    driver starts: the runner is PID 1, which ignores a signal it has no handler for. It ends
    the attempt as retryable `Terminated`, reported.
    """
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        playwright = await driver
    except asyncio.CancelledError:
        task.uncancel()
        playwright = None
    try:
        settings = _settings()
        if isinstance(settings, AttemptResult):
            termination = os.environ.get("PERMISOS_RUNNER_TERMINATION_LOG", "/dev/termination-log")
            write_result(Path(termination), settings)
            return settings.exit_code
        logs.configure(settings.log_level, settings.log_format)
        _tag_logs(settings)
        # A probe touches no application, so it has no applicant.
        applicant = None if settings.mode == "probe" else _applicant(settings)
        if isinstance(applicant, AttemptResult):
            result = applicant
        elif playwright is None:
            result = _terminated(settings)
        else:
            try:
                early = browser[1] if browser and browser[0] == settings.chromium_path else None
                result = await launch_and_run(
                    playwright, settings, applicant, launched=early, close=False
                )
            except asyncio.CancelledError:
                task.uncancel()
                result = _terminated(settings)
        write_result(settings.termination_log, result)
        return result.exit_code
    finally:
        if browser is not None:
            # A launch still under way (the settings were refused) ends before the kill.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await browser[1]
        # The result is written (or cannot be): a graceful close would only delay the end.
        if playwright is not None and not kill_browsers():
            with contextlib.suppress(Exception):
                await playwright.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
