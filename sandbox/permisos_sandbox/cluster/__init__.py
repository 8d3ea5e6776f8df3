"""The real Kubernetes control plane of one pinned release, built from source (`build.py`) and
run on loopback (`controlplane.py`, with its PKI in `pki.py`); `python -m
permisos_sandbox.cluster` runs it until Ctrl-C."""

from .controlplane import ControlPlane, ControlPlaneError, NodeCredentials

__all__ = ["ControlPlane", "ControlPlaneError", "NodeCredentials"]
