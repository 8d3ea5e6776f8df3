"""The whole platform on one machine (`make run`, `make up`), on the sandbox's stand-ins.

`Platform` starts every part, each as production runs it and each its own process (PostgreSQL,
the control plane's parts, the node agent, the API, the operator, the simulators and the S3
server), wires them together over loopback, and stops them all. `demo` drives it as
an applicant would, through the public HTTP API only.
"""

from .children import Child, PartFailed
from .stack import Platform, PlatformConfig

__all__ = ["Child", "PartFailed", "Platform", "PlatformConfig"]
