"""Build the pinned control plane binaries (sandbox/controlplane) once per set of pins.

The binaries go to a cache outside the repository, in a directory named after the go.sum hash:
a change of pins builds into a new directory, and an unchanged one is never rebuilt.

    python -m permisos_sandbox.cluster build    # prints the bin directory
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2] / "controlplane"
CACHE_ENV = "PERMISOS_CONTROLPLANE_CACHE"

# The tags of Kubernetes' own release build (hack/lib/golang.sh): no test-only code, and no
# gRPC tracing through x/net.
KUBE_TAGS = "selinux,notest,grpcnotrace"
# No symbol table or DWARF, as the upstream releases of all three projects are built.
STRIP = "-s -w"
# go.sum is taken as complete: a build fails rather than edit the repository.
READONLY = ("-mod=readonly",)


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    tags: str = ""


BINARIES = (
    Binary("etcd", "go.etcd.io/etcd/server/v3"),
    Binary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", KUBE_TAGS),
    Binary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", KUBE_TAGS),
    Binary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", KUBE_TAGS),
    Binary("helm", "helm.sh/helm/v4/cmd/helm"),
)


def bin_dir() -> Path:
    """Where the binaries of the current pins live (whether or not they are built yet)."""
    key = hashlib.sha256((MODULE_DIR / "go.sum").read_bytes()).hexdigest()[:16]
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "permisos" / "controlplane"
    return Path(root) / key / "bin"


def ensure_built(*, log: Callable[[str], object] = print) -> Path:
    """Return the bin directory, building whichever binary is missing from it first."""
    target = bin_dir()
    if all((target / b.name).is_file() for b in BINARIES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    # One builder at a time: a second process waits, then finds the binaries there.
    with (target.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [b for b in BINARIES if not (target / b.name).is_file()]
        if missing:
            go = shutil.which("go") or "/usr/local/go/bin/go"
            if not Path(go).is_file():
                raise RuntimeError("building the control plane needs Go, and go is not on PATH")
            started = time.monotonic()
            ldflags = _ldflags(go)
            for binary in missing:
                _build(go, binary, ldflags[binary.name], target, log)
            log(f"control plane built in {time.monotonic() - started:.0f} s: {target}")
    return target


def _go_env() -> dict[str, str]:
    # Static binaries, and this module alone, whatever go.work lies above it.
    return {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off"}


def _ldflags(go: str) -> dict[str, str]:
    """-ldflags per binary, the versions read from the module graph so they follow the pins."""
    template = '{{.Path}} {{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}'
    listing = subprocess.run(
        [go, "list", *READONLY, "-m", "-f", template, "k8s.io/kubernetes", "helm.sh/helm/v4"],
        cwd=MODULE_DIR,
        env=_go_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    modules = {
        path: (version, date) for path, version, date in map(str.split, listing.splitlines())
    }
    kube_version, kube_date = modules["k8s.io/kubernetes"]
    major, minor = kube_version.lstrip("v").split(".")[:2]
    # As hack/lib/version.sh stamps a release, into both copies of the version variables (the
    # servers report component-base's, clients client-go's). The module zip has no git metadata:
    # the commit stays empty, the tree state is "archive" (built from the release's source) and
    # the build date is the release's, which keeps the binaries reproducible.
    stamp = {
        "gitVersion": kube_version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "",
        "gitTreeState": "archive",
        "buildDate": kube_date,
    }
    kube = " ".join(
        f"-X '{package}.{key}={value}'"
        for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
        for key, value in stamp.items()
    )
    helm = f"-X helm.sh/helm/v4/internal/version.version={modules['helm.sh/helm/v4'][0]}"
    flags = {"helm": f"{STRIP} {helm}", "etcd": STRIP}
    return {b.name: flags.get(b.name, f"{STRIP} {kube}") for b in BINARIES}


def _build(
    go: str, binary: Binary, ldflags: str, target: Path, log: Callable[[str], object]
) -> None:
    log(f"building {binary.name} (once per set of pins; minutes on a cold Go cache)…")
    started = time.monotonic()
    # A temporary name in the same directory, renamed when complete: an interrupted build never
    # leaves a binary that looks finished.
    partial = target / f".{binary.name}.{os.getpid()}.partial"
    command = [go, "build", *READONLY, "-trimpath", "-o", str(partial), "-ldflags", ldflags]
    if binary.tags:
        command += ["-tags", binary.tags]
    try:
        subprocess.run([*command, binary.package], cwd=MODULE_DIR, env=_go_env(), check=True)
        partial.replace(target / binary.name)
    finally:
        partial.unlink(missing_ok=True)
    log(f"… {binary.name} done in {time.monotonic() - started:.0f} s")
