"""The executor's settings, its fixed node identity, the limits it copies from Kubernetes, and
the image map that stands in for container images."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Every pod the Job controller creates is bound to this node; the kubelet runs exactly those.
NODE_NAME = "permisos-local"
NODE_IP = "127.0.0.1"

# The finalizer the Job controller puts on its pods so it counts each one before it goes
# (Job tracking with finalizers, GA in Kubernetes 1.26).
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"

# kubelet: a termination message is cut at 4 KiB; FallbackToLogsOnError takes the last 80 lines
# of the log, at most 2 KiB.
MAX_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048

DEFAULT_GRACE_SECONDS = 30
# A pod may ask for hours of grace; on one machine nothing should wait that long.
MAX_GRACE_SECONDS = 30
# When the executor itself stops, each pod gets at most this much time after SIGTERM.
STOP_GRACE_SECONDS = 5

# The Job controller's pod-recreation backoff after a failure (kube: 10 s, doubling, 6 min cap).
DEFAULT_BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 360.0

# The images the platform runs, as local commands (the runner's image is built from
# browser-runner/Dockerfile; the RunnerPool default is permisos/browser-runner).
RUNNER_ARGV = (sys.executable, "-m", "permisos_runner")
DEFAULT_IMAGES: Mapping[str, Sequence[str]] = MappingProxyType(
    {"permisos/browser-runner": RUNNER_ARGV, "permisos-browser-runner": RUNNER_ARGV}
)
NO_IMAGES: Mapping[str, Sequence[str]] = MappingProxyType({})
NO_ENV: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ExecutorConfig:
    """Everything the executor's parts need to know, fixed at construction."""

    kubeconfig: Path
    namespace: str | None
    max_pods: int
    images: Mapping[str, tuple[str, ...]]
    workdir: Path
    extra_env: Mapping[str, str]
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    node_name: str = NODE_NAME
    base_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(base_env()))

    @property
    def pods_dir(self) -> Path:
        """Per-pod private directories (Secret volumes, emptyDirs, termination messages)."""
        return self.workdir / "pods"

    @property
    def logs_dir(self) -> Path:
        """Per-pod container logs, kept after the pod ends (like /var/log/pods)."""
        return self.workdir / "logs"


def base_env() -> dict[str, str]:
    """What every container process inherits from the machine: PATH only (and the locale, so
    Python and Chromium decode text the same way they do here)."""
    keep = ("PATH", "LANG", "LC_ALL")
    return {k: os.environ[k] for k in keep if k in os.environ}


def image_candidates(image: str) -> list[str]:
    """Keys an image is looked up by, most specific first: the reference as written, the
    repository without tag or digest, the repository without its registry, and its last path
    segment. `ghcr.io/acme/permisos-browser-runner:1.2` matches `permisos-browser-runner`."""
    ref = image.strip()
    repo = ref.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    without_registry = "/".join(parts)
    out: list[str] = []
    for key in (ref, repo, without_registry, parts[-1]):
        if key and key not in out:
            out.append(key)
    return out


def lookup_image(images: Mapping[str, tuple[str, ...]], image: str) -> tuple[str, ...] | None:
    for key in image_candidates(image):
        if key in images:
            return images[key]
    return None


def parse_image_flag(text: str) -> tuple[str, tuple[str, ...]]:
    """`NAME=ARGV` as given on the command line; ARGV is split like a shell would."""
    name, sep, argv = text.partition("=")
    words = shlex.split(argv)
    if not sep or not name.strip() or not words:
        raise ValueError(f"expected NAME=ARGV, got {text!r}")
    return name.strip(), tuple(words)


class ExecutorSettings(BaseSettings):
    """Environment settings of `python -m permisos_sandbox.executor`, prefix
    `PERMISOS_EXECUTOR_`; command-line flags override them."""

    model_config = SettingsConfigDict(env_prefix="PERMISOS_EXECUTOR_")

    kubeconfig: Path | None = None
    namespace: str | None = None
    max_pods: int | None = Field(None, ge=1)
    workdir: Path | None = None
    # Extra environment of every container process (JSON object), e.g. a browser path.
    extra_env: dict[str, str] = Field(default_factory=dict)
    backoff_seconds: float = Field(DEFAULT_BACKOFF_SECONDS, ge=0)
    log_level: str = "INFO"
    log_format: str = "json"
