"""Fixtures for the runner: the portal simulator, an S3 server (moto, over HTTP) and a way to
run `python -m permisos_runner` as the Job would, with environment variables and files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from permisos.applicant import Applicant
from permisos.attempt_result import AttemptResult
from permisos_sandbox.portal import PortalConfig, PortalSimulator
from permisos_sandbox.portal.validation import curp_check_digit
from permisos_sandbox.s3 import S3Server

BUCKET = "permisos-runner-test"
CURP17 = "GODE561231HDFRRN0"
APPLICANT = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "maternal_surname": "Díaz",
    "curp": CURP17 + str(curp_check_digit(CURP17)),
    "email": "juana.gomez@example.com",
    "phone": "5512345678",
}
VEHICLE = {
    "VEHICLE_PLATES": "JKL4821",
    "VEHICLE_MAKE": "nissan",  # matched by visible name, case-insensitively
    "VEHICLE_LINE": "Versa",
    "VEHICLE_MODEL_YEAR": "2022",
    "VEHICLE_SERVICE_TYPE": "particular",
}


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
async def portal() -> AsyncIterator[PortalSimulator]:
    sim = PortalSimulator(PortalConfig(processing_seconds=0.5), users={"operador": "secreto"})
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


def write_secret(directory: Path, values: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in values.items():
        (directory / key).write_text(value, encoding="utf-8")
    return directory


@dataclass
class Run:
    code: int
    raw: dict[str, Any]
    result: AttemptResult
    stderr: str


@dataclass
class RunnerCommand:
    """`python -m permisos_runner` with the environment the operator's Job manifest sets."""

    portal: PortalSimulator
    s3: S3Server
    tmp: Path
    application_id: str = field(default_factory=lambda: f"app-{uuid.uuid4().hex[:12]}")
    applicant: dict[str, str] = field(default_factory=lambda: dict(APPLICANT))
    # Settings over the Job's (None: left out, as a probe's Job leaves the request's out).
    settings: dict[str, str | None] = field(default_factory=dict)
    attempt: int = 1

    @property
    def termination_log(self) -> Path:
        return self.tmp / f"termination-log-{self.attempt}"

    def env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PERMISOS_", "AWS_")) and k != "HOME"
        }
        secret = write_secret(self.tmp / "applicant", self.applicant)
        values = {
            "PERMIT_REQUEST": self.application_id,
            "APPLICATION_ID": self.application_id,
            "ATTEMPT": str(self.attempt),
            "SECRET_DIR": str(secret),
            "TERMINATION_LOG": str(self.termination_log),
            "PORTAL_URL": self.portal.url,
            "PORTAL_TIMEOUT_SECONDS": "10",
            "PORTAL_USERNAME": "operador",
            "PORTAL_PASSWORD": "secreto",
            "S3_BUCKET": BUCKET,
            "S3_REGION": self.s3.region,
            "S3_ENDPOINT_URL": self.s3.endpoint_url,
            **VEHICLE,
            **self.settings,
        }
        return {
            **base,
            **self.s3.env(),
            "HOME": str(self.tmp),  # as in the image: nothing written outside a temp dir
            # The pod's /tmp is its own emptyDir: what a killed runner leaves goes with it.
            "TMPDIR": str(self.tmp),
            **{f"PERMISOS_RUNNER_{k}": v for k, v in values.items() if v is not None},
        }

    async def start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "permisos_runner",
            env=self.env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, timeout: float = 60) -> Run:
        process = await self.start()
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            await process.wait()
            raise
        text = self.termination_log.read_text(encoding="utf-8")
        assert len(text.encode()) < 4096
        return Run(
            code=process.returncode if process.returncode is not None else -1,
            raw=json.loads(text),
            result=AttemptResult.model_validate_json(text),
            stderr=stderr.decode(),
        )


@pytest.fixture
def runner(portal: PortalSimulator, s3: S3Server, tmp_path: Path) -> RunnerCommand:
    return RunnerCommand(portal, s3, tmp_path)


def assert_no_personal_data(text: str) -> None:
    applicant = Applicant.model_validate(APPLICANT)
    for value in applicant.secret_data().values():
        assert value not in text
