"""Session-wide pieces shared by every test folder: the PostgreSQL server (tests/databases.py)
and the real Kubernetes control plane, each started on first use and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from permisos_sandbox.cluster import ControlPlane
from tests.databases import stop_server


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler of the pinned release
    (`make test` builds them before pytest starts), shared by the whole session: tests isolate
    themselves by namespace."""
    with ControlPlane(log=lambda line: None) as cp:
        yield cp


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_server()
