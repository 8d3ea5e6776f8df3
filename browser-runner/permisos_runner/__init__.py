"""The browser-runner: one pod, one attempt of one PermitRequest against the government portal."""

from permisos_runner.runner import launch_and_run, main, run_attempt
from permisos_runner.settings import RunnerSettings

__all__ = ["RunnerSettings", "launch_and_run", "main", "run_attempt"]
