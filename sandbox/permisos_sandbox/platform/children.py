"""One part of the platform as its own process: its log file, its readiness, its stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


class PartFailed(RuntimeError):
    """A part did not start or stopped by itself; the message says which and shows its log."""


class Child:
    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Its own process group, so that stopping it also stops whatever it started.
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def failure(self, why: str) -> PartFailed:
        return PartFailed(f"{self.name} {why}; the last lines of {self.log_path}:\n{self.tail()}")

    async def ready(self, url: str, within: float = 60.0) -> None:
        """Waits until `url` answers below 500; fails early if the process exits."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if not self.alive():
                    code = self.proc.returncode if self.proc else None
                    raise self.failure(f"exited with code {code} while starting")
                try:
                    if (await http.get(url)).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise self.failure(f"did not answer {url} within {within:.0f}s")
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the process alone, as a crash ends it: what it started is left to its own
        means (the node agent's containers die with it through their parent-death signal)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass


async def run_to_end(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
    """A one-shot step (a migration): fails with its log when it exits non-zero."""
    child = Child(name, argv, env, log).start()
    assert child.proc is not None
    code = await asyncio.to_thread(child.proc.wait)
    if code != 0:
        raise child.failure(f"exited with code {code}")
