"""The node agent's settings and the kubelet limits it copies."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

NODE_IP = "127.0.0.1"

# kubelet: a termination message is cut at 4 KiB; FallbackToLogsOnError takes the last 80 lines
# of the log, at most 2 KiB.
MAX_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048

DEFAULT_GRACE_SECONDS = 30
# A pod may ask for hours of grace; on one machine nothing should wait that long.
MAX_GRACE_SECONDS = 30
# When the agent itself stops, each pod gets at most this much time after SIGTERM.
STOP_GRACE_SECONDS = 5

# kubelet's container restart back-off (10 s, doubling, 5 min cap; reset after 10 min of
# running) and its image pull back-off (the same curve).
BACKOFF_FIRST_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
BACKOFF_RESET_SECONDS = 600.0

# The node's Lease, as the kubelet keeps it: renewed every 10 s, valid 40 s. The node's status
# is written when it changes and at least once a minute.
LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0
STATUS_REPORT_SECONDS = 60.0

# Memory-backed storage for everything a pod is given or writes (Secret volumes, tokens,
# emptyDirs, its /tmp): applicants' data never reaches a disk.
DEFAULT_RUNTIME_ROOT = Path("/dev/shm")  # noqa: S108


def mount_namespaces_available() -> bool:
    """Real bind mounts (for `/var/run/secrets/...`, where the client libraries look) need a
    private mount namespace, which needs root here."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


@dataclass(frozen=True)
class NodeConfig:
    name: str
    images: Mapping[str, tuple[str, ...]]
    state_dir: Path  # container logs, kept after the pod ends (like /var/log/pods)
    runtime_root: Path = DEFAULT_RUNTIME_ROOT
    max_pods: int = 110
    extra_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    base_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(base_env()))
    mount_namespaces: bool = field(default_factory=mount_namespaces_available)
    # A CIDR: each pod gets a network namespace and an address from it (network.py); empty:
    # every pod shares the machine's network.
    pod_network: str = ""
    host_ports: tuple[int, ...] = ()  # with a pod network: loopback ports pods may reach

    @property
    def runtime_dir(self) -> Path:
        """This node's memory-backed directory; everything in it goes on every exit path."""
        return runtime_dir(self.runtime_root, self.name, self.state_dir)

    @property
    def pods_dir(self) -> Path:
        return self.runtime_dir / "pods"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


def runtime_dir(root: Path, name: str, state_dir: Path) -> Path:
    """Named after the node and its state directory: two agents on one machine (the tests
    start several) never share one, and an agent restarted on the same state directory finds
    what its crashed predecessor left there."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return root / f"permisos-node-{name}-{digest}"


def base_env() -> dict[str, str]:
    """What every container process inherits from the machine: PATH, with this virtual
    environment's bin first (an image's `python`, as the images' PATH puts their venv first),
    and the locale, so Python and Chromium decode text the same way they do here."""
    keep = ("PATH", "LANG", "LC_ALL")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        [venv_bin, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)]
    )
    return env


class NodeSettings(BaseSettings):
    """Environment settings of `python -m permisos_sandbox.node`, prefix `PERMISOS_NODE_`;
    command-line flags override them."""

    model_config = SettingsConfigDict(env_prefix="PERMISOS_NODE_")

    name: str = "permisos-local"
    kubeconfig: Path | None = None
    state_dir: Path | None = None
    runtime_root: Path = DEFAULT_RUNTIME_ROOT
    max_pods: int = Field(110, ge=1)
    images_file: Path | None = None
    # Extra environment of every container process (JSON object), e.g. a browser path.
    extra_env: dict[str, str] = Field(default_factory=dict)
    # The kubelet endpoint (logs): port 0 picks a free one; certificate and key for TLS, and
    # the CA that signs the apiserver's client certificate.
    port: int = Field(0, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    # A CIDR for pods' own network namespaces and addresses (root and iproute2); empty: pods
    # share the machine's network.
    pod_network: str = ""
    # With a pod network: ports of servers on this machine's loopback that pods reach at the
    # gateway's address (JSON list), e.g. PostgreSQL's.
    host_ports: list[int] = Field(default_factory=list)
