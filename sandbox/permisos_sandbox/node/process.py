"""A container as a local process: its own process group (so the whole tree can be signalled,
as a container's cgroup is), a log file for stdout and stderr, and the termination message."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from permisos.kube import now

from .config import FALLBACK_LOG_BYTES, FALLBACK_LOG_LINES, MAX_MESSAGE_BYTES
from .files import ContainerPlan
from .network import entering


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a child asks to be SIGKILLed when its agent dies, so even a crashed agent
    leaves no container running."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)

    return arm


_PREEXEC = _parent_death_signal()


def _mount_prelude(binds: list[tuple[Path, str, bool]]) -> list[str]:
    """The command that gives a container its own mount namespace with the bind mounts it asks
    for, then runs it. A small tmpfs over /run/secrets keeps the mount points off the host's
    disk; the namespace, and every mount in it, is gone when the container's last process is."""
    steps = ["set -e", "mount -t tmpfs -o mode=0755,size=1m permisos-secrets /run/secrets"]
    for source, target, read_only in binds:
        real = "/run/" + target.removeprefix("/var/run/").removeprefix("/run/")
        steps.append(f"mkdir -p {shlex.quote(real)}")
        steps.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(real)}")
        if read_only:
            steps.append(f"mount -o remount,bind,ro {shlex.quote(real)}")
    steps.append('exec "$@"')
    script = "\n".join(steps)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"]


def exit_code(returncode: int) -> int:
    """A shell's and a container runtime's view of a process killed by a signal: 128 + n."""
    return 128 - returncode if returncode < 0 else returncode


class StartError(Exception):
    """The command could not be executed (kube: reason StartError, exit code 128)."""


class ContainerProcess:
    def __init__(self, plan: ContainerPlan) -> None:
        self.plan = plan
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        plan = self.plan
        # Each start of a container begins with an empty termination message.
        os.truncate(plan.termination_file, 0)
        argv = plan.argv
        if plan.binds:
            # The shell of the prelude would report a missing program only as exit code 127.
            if not argv or not shutil.which(argv[0], path=plan.env.get("PATH")):
                program = argv[0] if argv else ""
                raise StartError(
                    f'failed to start container process: exec: "{program}": '
                    "executable file not found in $PATH"
                )
            argv = [*_mount_prelude(plan.binds), *argv]
        if plan.netns is not None:
            argv = [*entering(plan.netns), *argv]
        log_fd = os.open(plan.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                env=plan.env,
                cwd=plan.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_PREEXEC,
            )
        except (OSError, ValueError) as error:
            cause = (
                f'exec: "{plan.argv[0] if plan.argv else ""}": executable file not found in $PATH'
                if isinstance(error, FileNotFoundError)
                else str(error)
            )
            raise StartError(f"failed to start container process: {cause}") from error
        finally:
            os.close(log_fd)
        self.started_at = now()

    async def wait(self) -> int:
        """Waits for the process, then kills whatever it left in its group; the exit code."""
        assert self.proc is not None
        returncode = await self.proc.wait()
        self.finished_at = now()
        self.returncode = exit_code(returncode)
        self._signal_group(signal.SIGKILL)
        return self.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM to the group, SIGKILL after `grace` seconds if the process still runs."""
        if self.proc is None or self.proc.returncode is not None:
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        except TimeoutError:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), 5)
        self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def termination_message(self, failed: bool) -> str:
        """The file's first 4 KiB; with FallbackToLogsOnError, the log's tail when the file is
        empty and the container failed."""
        message = _read_head(self.plan.termination_file, MAX_MESSAGE_BYTES)
        if not message and failed and self.plan.termination_policy == "FallbackToLogsOnError":
            message = log_tail(self.plan.log_file)
        return message


def _read_head(path: os.PathLike[str] | str, limit: int) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: os.PathLike[str] | str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - FALLBACK_LOG_BYTES * 4))
            data = handle.read()
    except OSError:
        return ""
    lines = data.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
    return b"".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace")
