"""`python -m permisos_runner`: one attempt of one PermitRequest, exit code 0/3/4.

A pod pays its start-up on every attempt, so the start overlaps what it can: Playwright's driver
(a Node process) starts while the runner's modules load in a thread, and once the result is
written the browser is killed, not closed, and the process ends without the interpreter's
teardown.
`bench/runner_throughput.py` prints where a pod's start-up goes.
"""

import asyncio
import logging
import os
import sys
import tempfile
from types import ModuleType

from playwright.async_api import async_playwright

from permisos_runner.driver import use_compile_cache


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
    driver = asyncio.ensure_future(async_playwright().start())
    pod = await asyncio.to_thread(_load_pod)
    code: int = await pod.run(driver, scratch)
    return code


exit_code = asyncio.run(_pod())
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(exit_code)
