"""Runner benchmark: time per permit against the portal simulator, beside a bare Playwright floor.

    .venv/bin/python bench/runner_throughput.py [--permits 5] [--latency-ms 50]

Prints figures; asserts nothing about them. The portal simulator (fixed latency, fixed processing
time) and an S3 server (moto) run as their own processes; the browser work runs here.

1. floor      a bare Playwright script doing the same clicks and downloads on the same simulator
              (login, consulta, three steps, confirm, wait, three downloads) and nothing else:
              no checks, no S3, no trace. One browser, a fresh context per permit.
2. runner     `permisos_runner.run_attempt` with one browser reused, a fresh context per permit
              (what a long-lived runner would do), including PDF checks and S3 uploads.
3. runner/new `permisos_runner.launch_and_run`: a new browser per permit (what a Job does).

For each: wall time per permit (mean, p50), permits per minute, and the browser's peak PSS
(Chromium's processes, sampled every 50 ms). The runner's own per-step timings are averaged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from playwright.async_api import Browser, async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from permisos.applicant import Applicant  # noqa: E402
from permisos_runner.runner import launch_and_run, run_attempt  # noqa: E402
from permisos_runner.settings import RunnerSettings  # noqa: E402
from permisos_sandbox.portal.validation import curp_check_digit  # noqa: E402
from permisos_sandbox.s3 import S3Server  # noqa: E402

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
BUCKET = "permisos-bench"
CURP17 = "GODE561231HDFRRN0"
APPLICANT = Applicant(
    first_name="Juana",
    last_name="Gómez",
    maternal_surname="Díaz",
    curp=CURP17 + str(curp_check_digit(CURP17)),
    email="juana.gomez@example.com",
    phone="5512345678",
)


def plates(i: int, run: str) -> str:
    """Unique plates per permit (a finished permit makes its plates 'active' on the portal):
    a letter per row, two characters of the run, the permit's number."""
    return f"{run[0]}{run[-2:]}{i:04d}".upper()


class PssSampler:
    """Peak proportional set size of the Chromium processes under this process."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if "chrom" in child.name():
                        total += child.memory_full_info().pss
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def floor_permit(browser: Browser, portal: str, reference: str, plate: str) -> None:
    """The same clicks and downloads as the runner, with nothing else."""
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
        for name, value in (
            ("referencia", reference),
            ("nombre", APPLICANT.first_name),
            ("primer_apellido", APPLICANT.last_name),
            ("segundo_apellido", APPLICANT.maternal_surname),
            ("curp", APPLICANT.curp),
            ("correo", APPLICANT.email),
            ("telefono", APPLICANT.phone),
        ):
            await page.fill(f"form#solicitante [name={name}]", value)
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


def secret_dir() -> Path:
    """The applicant Secret as the runner sees it mounted: one file per key."""
    directory = Path(tempfile.mkdtemp(prefix="permisos-bench-"))
    for key, value in APPLICANT.secret_data().items():
        (directory / key).write_text(value)
    return directory


def settings_for(
    portal: str, s3: S3Server, reference: str, plate: str, tmp: Path
) -> RunnerSettings:
    return RunnerSettings(
        permit_request=reference,
        application_id=reference,
        attempt=1,
        secret_dir=tmp,
        termination_log=tmp / "termination-log",
        portal_url=portal,
        portal_username="operador",  # type: ignore[arg-type]
        portal_password="secreto",  # type: ignore[arg-type]
        vehicle_plates=plate,
        vehicle_make="Nissan",
        vehicle_line="Versa",
        vehicle_model_year=2022,
        vehicle_service_type="particular",
        s3_bucket=BUCKET,
        s3_endpoint_url=s3.endpoint_url,
        trace=False,
    )


async def measure(
    label: str, permits: int, one: Callable[[int], Awaitable[None]]
) -> dict[str, Any]:
    times: list[float] = []
    with PssSampler() as pss:
        started = time.monotonic()
        for i in range(permits):
            t0 = time.monotonic()
            await one(i)
            times.append(time.monotonic() - t0)
        elapsed = time.monotonic() - started
    return {
        "label": label,
        "permits": permits,
        "mean_s": statistics.mean(times),
        "p50_s": statistics.median(times),
        "permits_per_minute": permits * 60 / elapsed,
        "browser_peak_pss_mib": pss.peak / 2**20,
    }


@contextlib.contextmanager
def portal_process(latency_ms: int, processing: float) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "permisos_sandbox.portal",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--processing-seconds",
            str(processing),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("portal listening on "):
            raise RuntimeError(f"portal did not start: {line!r}")
        yield line.removeprefix("portal listening on ")
    finally:
        proc.terminate()
        proc.wait(10)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--permits", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--processing-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:3]
    tmp = await asyncio.to_thread(secret_dir)

    with S3Server() as s3, portal_process(args.latency_ms, args.processing_seconds) as portal:
        s3.client().create_bucket(Bucket=BUCKET)
        os.environ.update(s3.env())
        step_times: dict[str, list[float]] = {}

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            await floor_permit(browser, portal, f"warm-{run}", plates(9999, "W" + run))

            async def floor(i: int) -> None:
                await floor_permit(browser, portal, f"floor-{run}-{i}", plates(i, "F" + run))

            async def reused(i: int) -> None:
                ref = f"reuse-{run}-{i}"
                settings = settings_for(portal, s3, ref, plates(i, "R" + run), tmp)
                result = await run_attempt(browser, settings, APPLICANT)
                if result.outcome != "succeeded":
                    raise RuntimeError(f"runner failed: {result.reason} {result.message}")
                for step, seconds in result.timings.items():
                    step_times.setdefault(step, []).append(seconds)

            figures = [await measure("floor (bare Playwright)", args.permits, floor)]
            figures.append(await measure("runner, reused browser", args.permits, reused))
            await browser.close()

        async def fresh(i: int) -> None:
            ref = f"fresh-{run}-{i}"
            settings = settings_for(portal, s3, ref, plates(i, "N" + run), tmp)
            result = await launch_and_run(settings, APPLICANT)
            if result.outcome != "succeeded":
                raise RuntimeError(f"runner failed: {result.reason} {result.message}")

        figures.append(await measure("runner, new browser each", args.permits, fresh))

    floor_mean = figures[0]["mean_s"]
    print(
        f"Runner against the portal simulator: {args.permits} permits per row, portal latency "
        f"{args.latency_ms} ms per response, processing {args.processing_seconds} s"
    )
    print(f"{'':28}{'mean s':>9}{'p50 s':>9}{'/floor':>8}{'permits/min':>13}{'peak PSS MiB':>14}")
    for row in figures:
        print(
            f"{row['label']:28}{row['mean_s']:9.2f}{row['p50_s']:9.2f}"
            f"{row['mean_s'] / floor_mean:8.2f}{row['permits_per_minute']:13.1f}"
            f"{row['browser_peak_pss_mib']:14.1f}"
        )
    print("\nRunner time per portal step (mean s, reused browser):")
    for step, values in step_times.items():
        print(f"  {step:24}{statistics.mean(values):8.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runner_throughput.json").write_text(
        json.dumps(
            {
                "config": vars(args),
                "rows": figures,
                "steps": {k: statistics.mean(v) for k, v in step_times.items()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
