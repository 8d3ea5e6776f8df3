"""The executor's settings, its fixed node identity, the limits it copies from Kubernetes, and
the image map that stands in for container images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from permisos_sandbox.node.config import (  # noqa: F401  (the executor's names)
    DEFAULT_GRACE_SECONDS,
    FALLBACK_LOG_BYTES,
    FALLBACK_LOG_LINES,
    MAX_GRACE_SECONDS,
    MAX_MESSAGE_BYTES,
    NODE_IP,
    STOP_GRACE_SECONDS,
    base_env,
)
from permisos_sandbox.node.images import (  # noqa: F401  (the executor's names)
    DEFAULT_IMAGES,
    RUNNER_ARGV,
    image_candidates,
    lookup_image,
    parse_image_flag,
)

# Every pod the Job controller creates is bound to this node; the kubelet runs exactly those.
NODE_NAME = "permisos-local"

# The finalizer the Job controller puts on its pods so it counts each one before it goes
# (Job tracking with finalizers, GA in Kubernetes 1.26).
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"

# The Job controller's pod-recreation backoff after a failure (kube: 10 s, doubling, 6 min cap).
DEFAULT_BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 360.0

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
