"""A Kubernetes API emulator: discovery, CRUD, watch, CRDs, subresources, tables and GC."""

from .crds import kopf_crds
from .routes import AuditRecord
from .server import KubeApiServer

__all__ = ["AuditRecord", "KubeApiServer", "kopf_crds"]
