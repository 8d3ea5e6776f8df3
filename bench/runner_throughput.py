"""Runner benchmark: time per permit against the portal simulator, beside a bare Playwright floor.

    .venv/bin/python bench/runner_throughput.py [--permits 5] [--latency-ms 50]

Prints figures; asserts nothing about them. The portal simulator (fixed latency, fixed processing
time) and an S3 server (moto) run as their own processes.

1. floor       `bench/floor_permit.py`: a bare Playwright script doing the same clicks and
               downloads on the same simulator (login, consulta, three steps, confirm, wait,
               three downloads) and nothing else: no checks, no S3, no trace. One browser, a
               fresh context per permit. Every ratio is against this row.
2. runner      `permisos_runner.run_attempt` with one browser reused, a fresh context per permit,
               including PDF checks and S3 uploads.
3. floor/pod   the floor script as a process of its own per permit: Python, Playwright's driver,
               Chromium, one permit, exit. The least a fresh pod can cost.
4. runner/pod  `python -m permisos_runner` per permit, configured by the environment and the
               applicant's files as the operator's Job configures it: what a Job's pod does.

For each: wall time per permit (mean, p50), permits per minute, and the browser's peak PSS
(Chromium's processes, sampled every 50 ms). Then where a pod's start-up goes (Python, imports,
Playwright's driver, Chromium) and the runner's own per-step timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
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
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from floor_permit import floor_permit  # noqa: E402  # the bench folder is not a package

from permisos.applicant import Applicant  # noqa: E402
from permisos.attempt_result import AttemptResult  # noqa: E402
from permisos_runner.driver import use_compile_cache  # noqa: E402
from permisos_runner.runner import run_attempt  # noqa: E402
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
        trace="off",
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


def pod_env(portal: str, s3: S3Server, reference: str, plate: str, tmp: Path) -> dict[str, str]:
    """What the operator's Job gives a runner pod (`permisos_operator.jobs`); the rest of the
    settings keep the runner's defaults, as in a Job (the trace is recorded)."""
    settings = {
        "PERMIT_REQUEST": reference,
        "APPLICATION_ID": reference,
        "ATTEMPT": "1",
        "SECRET_DIR": str(tmp),
        "TERMINATION_LOG": str(tmp / f"termination-{reference}"),
        "PORTAL_URL": portal,
        "PORTAL_USERNAME": "operador",
        "PORTAL_PASSWORD": "secreto",
        "VEHICLE_PLATES": plate,
        "VEHICLE_MAKE": "Nissan",
        "VEHICLE_LINE": "Versa",
        "VEHICLE_MODEL_YEAR": "2022",
        "VEHICLE_SERVICE_TYPE": "particular",
        "S3_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "CHROMIUM_PATH": CHROMIUM,
    }
    return {**os.environ, **{f"PERMISOS_RUNNER_{k}": v for k, v in settings.items()}}


async def run_process(*argv: str, env: dict[str, str] | None = None) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        command = shlex.join(argv)[:120]
        raise RuntimeError(f"{command} exited {proc.returncode}: {err.decode()[-2000:]}")
    return proc.returncode


async def process_seconds(code: str, times: int = 3) -> float:
    """Median wall time of a fresh `python -c code`."""
    spent = []
    for _ in range(times):
        started = time.monotonic()
        await run_process(sys.executable, "-c", code)
        spent.append(time.monotonic() - started)
    return statistics.median(spent)


def runner_compile_cache() -> str:
    """Node's compile cache as the runner uses it (`permisos_runner.driver`), beside the driver:
    filled at image build, and by the first runner pod of a writable install."""
    previous = os.environ.pop("NODE_COMPILE_CACHE", None)
    try:
        use_compile_cache()
        return os.environ["NODE_COMPILE_CACHE"]
    finally:
        os.environ.pop("NODE_COMPILE_CACHE", None)
        if previous is not None:
            os.environ["NODE_COMPILE_CACHE"] = previous


async def driver_seconds_with(env: dict[str, str], times: int = 3) -> float:
    """Median seconds to start Playwright's driver with these environment variables."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        spent = []
        for _ in range(times):
            started = time.monotonic()
            playwright = await async_playwright().start()
            spent.append(time.monotonic() - started)
            await playwright.stop()
        return statistics.median(spent)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def driver_and_browser_seconds(times: int = 3) -> tuple[float, float, float]:
    """Median seconds to start Playwright's driver, to launch Chromium, and to close both."""
    driver, launch, close = [], [], []
    for _ in range(times):
        t0 = time.monotonic()
        playwright = await async_playwright().start()
        t1 = time.monotonic()
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        t2 = time.monotonic()
        await browser.close()
        await playwright.stop()
        t3 = time.monotonic()
        driver.append(t1 - t0)
        launch.append(t2 - t1)
        close.append(t3 - t2)
    return statistics.median(driver), statistics.median(launch), statistics.median(close)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--permits", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--processing-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:3]
    tmp = await asyncio.to_thread(secret_dir)
    person = json.dumps(APPLICANT.secret_data())

    with S3Server() as s3, portal_process(args.latency_ms, args.processing_seconds) as portal:
        s3.client().create_bucket(Bucket=BUCKET)
        os.environ.update(s3.env())
        step_times: dict[str, list[float]] = {}
        applicant = APPLICANT.secret_data()

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            await floor_permit(browser, portal, f"warm-{run}", plates(9999, "W" + run), applicant)

            async def floor(i: int) -> None:
                ref, plate = f"floor-{run}-{i}", plates(i, "F" + run)
                await floor_permit(browser, portal, ref, plate, applicant)

            async def reused(i: int) -> None:
                ref = f"reuse-{run}-{i}"
                settings = settings_for(portal, s3, ref, plates(i, "R" + run), tmp)
                result = await run_attempt(browser, settings, APPLICANT)
                if result.outcome != "succeeded":
                    raise RuntimeError(f"runner failed: {result.reason} {result.message}")
                for step, seconds in result.timings.items():
                    step_times.setdefault(step, []).append(seconds)

            figures = [await measure("floor (bare Playwright)", args.permits, floor)]
            figures.append(await measure("runner, one browser", args.permits, reused))
            await browser.close()

        async def bare_pod(i: int) -> None:
            ref, plate = f"bare-{run}-{i}", plates(i, "B" + run)
            script = str(ROOT / "bench" / "floor_permit.py")
            await run_process(sys.executable, script, portal, ref, plate, person)

        async def runner_pod(i: int) -> None:
            ref = f"pod-{run}-{i}"
            env = pod_env(portal, s3, ref, plates(i, "P" + run), tmp)
            await run_process(sys.executable, "-m", "permisos_runner", env=env)
            result = AttemptResult.model_validate_json((tmp / f"termination-{ref}").read_text())
            if result.outcome != "succeeded":
                raise RuntimeError(f"runner pod failed: {result.reason} {result.message}")

        figures.append(await measure("floor, a process each", args.permits, bare_pod))
        figures.append(await measure("runner, a process each (pod)", args.permits, runner_pod))

    startup = {
        "python": await process_seconds("pass"),
        "import playwright": await process_seconds("import playwright.async_api"),
        "import the runner": await process_seconds("import permisos_runner.pod"),
    }
    driver, launch, close = await driver_and_browser_seconds()
    cached = await driver_seconds_with({"NODE_COMPILE_CACHE": runner_compile_cache()})
    startup.update(
        {
            "playwright driver": driver,
            "  with the runner's cache": cached,
            "chromium launch": launch,
            "close both": close,
        }
    )

    floor_mean = figures[0]["mean_s"]
    print(
        f"Runner against the portal simulator: {args.permits} permits per row, portal latency "
        f"{args.latency_ms} ms per response, processing {args.processing_seconds} s"
    )
    print(f"{'':30}{'mean s':>9}{'p50 s':>9}{'/floor':>8}{'permits/min':>13}{'peak PSS MiB':>14}")
    for row in figures:
        print(
            f"{row['label']:30}{row['mean_s']:9.2f}{row['p50_s']:9.2f}"
            f"{row['mean_s'] / floor_mean:8.2f}{row['permits_per_minute']:13.1f}"
            f"{row['browser_peak_pss_mib']:14.1f}"
        )
    pod_ratio = figures[3]["mean_s"] / figures[2]["mean_s"]
    pod_over_floor = figures[3]["mean_s"] / floor_mean
    print(f"\nA runner pod against the floor: {pod_over_floor:.2f}x (the goal: 1.15x at most)")
    print(f"A runner pod against the bare floor as a process: {pod_ratio:.2f}x")
    print(
        "\nWhere a pod's start-up goes (median s, each alone; imports include Python's start; "
        "a pod also kills Chromium instead of closing both):"
    )
    for part, seconds in startup.items():
        print(f"  {part:24}{seconds:8.2f}")
    print("\nRunner time per portal step (mean s, one browser):")
    for step, values in step_times.items():
        print(f"  {step:24}{statistics.mean(values):8.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runner_throughput.json").write_text(
        json.dumps(
            {
                "config": vars(args),
                "rows": figures,
                "pod_over_floor": pod_over_floor,
                "pod_over_bare_pod": pod_ratio,
                "startup": startup,
                "steps": {k: statistics.mean(v) for k, v in step_times.items()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
