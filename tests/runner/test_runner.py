"""The browser-runner end to end: real Chromium, the portal simulator over HTTP, S3 over HTTP.

Every run is `python -m permisos_runner` in a subprocess, configured exactly as the operator's
Job configures it, and judged by its exit code, its termination message and what it stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import signal
import time

import pytest
from pypdf import PdfReader

from permisos.attempt_result import AttemptResult
from permisos_sandbox.portal import PortalSimulator
from permisos_sandbox.s3 import S3Server
from tests.runner.conftest import (
    APPLICANT,
    BUCKET,
    CURP17,
    VEHICLE,
    Run,
    RunnerCommand,
    assert_no_personal_data,
)

KINDS = {"permit", "certificate", "placard"}
EVIDENCE = {"screenshot.png", "page.html", "trace.zip"}


def assert_documents(run: Run, runner: RunnerCommand, s3: S3Server) -> None:
    result = run.result
    assert result.folio
    assert {a.kind for a in result.artifacts} == KINDS
    client = s3.client()
    for artifact in result.artifacts:
        assert artifact.key == f"permits/{runner.application_id}/{artifact.kind}-{result.folio}.pdf"
        obj = client.get_object(Bucket=BUCKET, Key=artifact.key)
        body = obj["Body"].read()
        assert len(body) == artifact.bytes
        assert hashlib.sha256(body).hexdigest() == artifact.sha256
        assert obj["Metadata"]["sha256"] == artifact.sha256
        assert obj["ContentType"] == "application/pdf"
        assert obj["ServerSideEncryption"] == "AES256"
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
        assert result.folio in text


def assert_evidence(run: Run, runner: RunnerCommand, s3: S3Server) -> None:
    """A screenshot and the page's HTML always; a Playwright trace from the first retry on (the
    runner's default trace policy, `on-all-retries`)."""
    prefix = f"evidence/{runner.application_id}/{runner.attempt}/"
    expected = EVIDENCE if runner.attempt > 1 else EVIDENCE - {"trace.zip"}
    assert {key.removeprefix(prefix) for key in run.result.evidence} == expected
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    stored = {obj["Key"]: obj["Size"] for obj in listed.get("Contents", [])}
    assert set(stored) == set(run.result.evidence)
    assert all(size > 0 for size in stored.values())


async def wait_for_submission(portal: PortalSimulator, reference: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while portal.submissions(reference) == 0:
        assert time.monotonic() < deadline, "the runner never submitted"
        await asyncio.sleep(0.02)


async def test_happy_path(runner: RunnerCommand, portal: PortalSimulator, s3: S3Server) -> None:
    portal.config.modal_rate = 1.0  # the notice covers every page and must be dismissed
    run = await runner.run()

    assert run.code == 0, run.stderr
    assert run.result.outcome == "succeeded"
    assert run.result.reason == "PermitIssued"
    assert run.result.evidence == []
    # The contract's keys, and nothing the operator would choke on.
    assert {"outcome", "reason", "folio", "artifacts", "timings"} <= set(run.raw)
    assert AttemptResult.model_validate(run.raw).to_message()
    assert {"login", "lookup", "applicant", "vehicle", "download", "upload"} <= set(
        run.result.timings
    )
    assert_documents(run, runner, s3)
    assert portal.submissions(runner.application_id) == 1
    assert_no_personal_data(run.stderr)


async def test_crash_after_submit_never_submits_twice(
    runner: RunnerCommand, portal: PortalSimulator, s3: S3Server
) -> None:
    portal.config.processing_seconds = 2
    process = await runner.start()
    await wait_for_submission(portal, runner.application_id)
    process.send_signal(signal.SIGKILL)  # the pod dies between submitting and downloading
    await process.wait()
    assert not runner.termination_log.exists()

    runner.attempt = 2
    run = await runner.run()

    assert run.code == 0, run.stderr
    assert "resumed" in run.result.message
    assert portal.submissions(runner.application_id) == 1
    assert_documents(run, runner, s3)


@pytest.mark.parametrize(
    ("fault", "settings", "reason"),
    [
        ({"maintenance": True}, {}, "PortalMaintenance"),
        ({"error_rate": 1.0, "error_status": 500}, {}, "PortalUnavailable"),
        ({"download": "abort"}, {}, "DownloadFailed"),
        (
            {"download": "slow", "download_delay_seconds": 20},
            {"DOWNLOAD_TIMEOUT_SECONDS": "1"},
            "DownloadTimeout",
        ),
    ],
    ids=["maintenance", "http-500", "aborted-download", "slow-download"],
)
async def test_faults_are_retryable(
    runner: RunnerCommand,
    portal: PortalSimulator,
    s3: S3Server,
    fault: dict[str, object],
    settings: dict[str, str],
    reason: str,
) -> None:
    for name, value in fault.items():
        setattr(portal.config, name, value)
    runner.settings.update(settings)
    runner.attempt = 2  # a retry, which records a trace
    run = await runner.run()

    assert run.code == 3, run.stderr
    assert run.result.outcome == "retryable"
    assert run.result.reason == reason, run.result.message
    assert_evidence(run, runner, s3)
    assert_no_personal_data(run.stderr + run.result.message)


async def test_storage_errors_are_retryable(runner: RunnerCommand) -> None:
    runner.settings["S3_BUCKET"] = "no-such-bucket"  # S3 answers NoSuchBucket
    run = await runner.run()

    assert run.code == 3, run.stderr
    assert (run.result.outcome, run.result.reason) == ("retryable", "StorageUnavailable")
    assert run.result.evidence == []  # best effort: nowhere to put it either


async def test_session_expiring_mid_flow_is_retryable(
    runner: RunnerCommand, portal: PortalSimulator, s3: S3Server
) -> None:
    portal.config.processing_seconds = 30
    process = await runner.start()
    await wait_for_submission(portal, runner.application_id)
    portal.config.expire_sessions_now = True  # while the runner waits on the status page
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = runner.termination_log.read_text()
    result = AttemptResult.model_validate_json(text)

    assert process.returncode == 3, stderr.decode()
    assert result.outcome == "retryable"
    assert result.reason == "SessionExpired"
    assert_evidence(Run(3, {}, result, ""), runner, s3)


async def test_sigterm_reports_a_retryable_result(
    runner: RunnerCommand, portal: PortalSimulator
) -> None:
    # The Job's deadline or a drained node: SIGTERM, then SIGKILL after the grace period.
    portal.config.processing_seconds = 30
    process = await runner.start()
    await wait_for_submission(portal, runner.application_id)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 15)
    result = AttemptResult.model_validate_json(runner.termination_log.read_text())

    assert process.returncode == 3
    assert (result.outcome, result.reason) == ("retryable", "Terminated")


@pytest.mark.parametrize(
    ("change", "message", "submissions"),
    [
        ({"curp": CURP17 + str((int(APPLICANT["curp"][-1]) + 1) % 10)}, "La CURP no es válida", 0),
        ({"VEHICLE_PLATES": "AAA0001"}, "Las placas ya cuentan con un permiso vigente", 0),
    ],
    ids=["bad-curp-check-digit", "plates-with-active-permit"],
)
async def test_validation_errors_are_permanent(
    runner: RunnerCommand,
    portal: PortalSimulator,
    s3: S3Server,
    change: dict[str, str],
    message: str,
    submissions: int,
) -> None:
    for key, value in change.items():
        if key in runner.applicant:
            runner.applicant[key] = value
        else:
            runner.settings[key] = value
    run = await runner.run()

    assert run.code == 4, run.stderr
    assert run.result.outcome == "permanent"
    assert run.result.reason == "PortalRejected"
    assert run.result.message == message
    assert portal.submissions(runner.application_id) == submissions
    assert_evidence(run, runner, s3)
    assert_no_personal_data(run.stderr)


async def test_portal_rejection_is_permanent_and_redacted(
    runner: RunnerCommand, portal: PortalSimulator, s3: S3Server
) -> None:
    # The portal's reason quotes the CURP: it must not reach the result.
    portal.config.reject_next = f"La CURP {APPLICANT['curp']} tiene un impedimento vigente"
    run = await runner.run()

    assert run.code == 4, run.stderr
    assert run.result.outcome == "permanent"
    assert run.result.reason == "PortalRejected"
    assert run.result.message == "La CURP [redacted] tiene un impedimento vigente"
    assert portal.submissions(runner.application_id) == 1
    assert_evidence(run, runner, s3)
    assert_no_personal_data(run.stderr)


async def test_unreadable_secret_is_permanent(runner: RunnerCommand) -> None:
    runner.applicant = {"first_name": "Juana"}  # curp and email missing
    run = await runner.run()

    assert run.code == 4
    assert run.result.reason == "InvalidApplicant"
    assert "curp" in run.result.message


async def test_the_portals_own_wait_comes_back_with_maintenance_and_rate_limits(
    runner: RunnerCommand, portal: PortalSimulator, s3: S3Server
) -> None:
    """Retry-After reaches the operator, so the pool stays away as long as the portal asks."""
    portal.config.maintenance = True
    run = await runner.run()
    assert run.code == 3
    assert (run.result.reason, run.result.retry_after_seconds) == ("PortalMaintenance", 60)

    portal.config.maintenance = False
    portal.config.rate_limit_per_minute = 2  # the login page and its form, then 429
    runner.attempt = 2
    run = await runner.run()
    assert run.code == 3, run.stderr
    assert run.result.reason == "RateLimited", run.result.message
    assert run.result.retry_after_seconds is not None and 50 <= run.result.retry_after_seconds <= 60
    assert run.raw["retry_after_seconds"] == run.result.retry_after_seconds
    assert portal.submissions(runner.application_id) == 0
    assert_evidence(run, runner, s3)


@pytest.mark.parametrize("change", ["login", "consulta", "solicitante", "vehiculo", "confirmar"])
async def test_a_page_the_runner_cannot_read_is_portal_changed_at_once(
    runner: RunnerCommand, portal: PortalSimulator, s3: S3Server, change: str
) -> None:
    portal.config.changed = [change]  # type: ignore[list-item]
    runner.settings["PORTAL_TIMEOUT_SECONDS"] = "30"
    started = time.monotonic()
    run = await runner.run()
    took = time.monotonic() - started
    assert run.code == 3, run.stderr
    assert run.result.reason == "PortalChanged", run.result.message
    assert run.result.message.startswith("La página «")
    # Told by the page itself, not by waiting out the 30 s a missing element would cost.
    assert took < 25
    assert portal.submissions(runner.application_id) == 0
    assert_evidence(run, runner, s3)
    assert_no_personal_data(run.stderr + run.result.message)


async def test_a_probe_signs_in_and_searches_without_any_application(
    runner: RunnerCommand, portal: PortalSimulator, s3: S3Server
) -> None:
    # A probe's Job: no request, no application, no applicant Secret, no vehicle.
    runner.settings.update(
        {
            "MODE": "probe",
            "PROBE_NAME": "default-probe-7",
            "PERMIT_REQUEST": None,
            "APPLICATION_ID": None,
            "SECRET_DIR": str(runner.tmp / "no-secret-here"),
            **dict.fromkeys(VEHICLE),
        }
    )
    run = await runner.run()
    assert run.code == 0, run.stderr
    assert (run.result.kind, run.result.outcome, run.result.reason) == (
        "probe",
        "succeeded",
        "PortalHealthy",
    )
    assert run.result.folio is None and run.result.artifacts == []
    assert portal.submissions("sonda-de-disponibilidad") == 0

    portal.config.changed = ["consulta"]
    run = await runner.run()
    assert run.code == 3
    assert (run.result.kind, run.result.reason) == ("probe", "PortalChanged")
    prefix = "evidence/probes/default-probe-7/"
    assert run.result.evidence and all(key.startswith(prefix) for key in run.result.evidence)

    runner.settings["PROBE_NAME"] = None  # a probe must say whose it is
    run = await runner.run()
    assert (run.code, run.result.reason) == (4, "InvalidConfiguration")
    assert "PROBE_NAME" in run.result.message
