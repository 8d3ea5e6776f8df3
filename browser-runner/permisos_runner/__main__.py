"""`python -m permisos_runner`: one attempt of one PermitRequest, exit code 0/3/4.

A pod pays its start-up on every attempt, so the start overlaps what it can: Playwright's driver
(a Node process) starts, and Chromium as soon as it is up, while the runner's modules load in a
thread; once the result is written the browser is killed, not closed, and the process ends
without the interpreter's teardown.
`bench/runner_throughput.py` prints where a pod's start-up goes.
"""

import asyncio
import logging
import os
import sys
import tempfile
from types import ModuleType

from playwright.async_api import async_playwright

from permisos_runner.driver import chromium_path, launch, use_compile_cache


def _load_pod() -> ModuleType:
    import permisos_runner.pod

    return permisos_runner.pod


async def _pod() -> int:
    # Playwright's driver and Chromium keep their profile and artifacts under TMPDIR: one
    # directory of this process's own, which `pod.run` removes once it has killed the browser
    # (a killed browser's driver may exit before it has removed them).
    scratch = tempfile.mkdtemp(prefix="permisos-runner-")
    os.environ["TMPDIR"] = tempfile.tempdir = scratch
    use_compile_cache()
    # The runner uses no pydantic plugin; looking for them reads every installed package's
    # metadata on the first model.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    driver = asyncio.ensure_future(async_playwright().start())
    path = chromium_path()
    browser = asyncio.ensure_future(launch(driver, path))
    pod = await asyncio.to_thread(_load_pod)
    code: int = await pod.run(driver, scratch, browser=(path, browser))
    return code


exit_code = asyncio.run(_pod())
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(exit_code)
