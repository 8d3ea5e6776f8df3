"""A Kubernetes API emulator: discovery, CRUD, watch, CRDs, subresources, tables and GC."""

from .crds import kopf_crds
from .server import KubeApiServer

__all__ = ["KubeApiServer", "kopf_crds"]
