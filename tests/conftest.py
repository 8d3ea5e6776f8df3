"""Session-wide pieces shared by every test folder: the PostgreSQL server (tests/databases.py)
and the real Kubernetes control plane, each started on first use and stopped at the end."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from permisos_sandbox.cluster import ControlPlane
from tests.accounts import CHART_CRDS, install_crds
from tests.databases import stop_server
from tests.nodes import NodeAgentProcess


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler of the pinned release
    (`make test` builds them before pytest starts), shared by the whole session: tests isolate
    themselves by namespace."""
    with ControlPlane(log=lambda line: None) as cp:
        yield cp


@pytest.fixture(scope="session")
def operator_control_plane() -> Iterator[ControlPlane]:
    """A second control plane for the operator's tests, whose Job controller is off: the tests
    play it (tests/job_controller.py). The chart's CRDs, Kopf's peering kinds included, are
    installed."""
    with ControlPlane(controllers="*,-job-controller", log=lambda line: None) as cp:
        asyncio.run(install_crds(cp.admin_kubeconfig, CHART_CRDS))
        yield cp


@pytest.fixture(scope="session")
def node(control_plane: ControlPlane) -> Iterator[NodeAgentProcess]:
    """The node agent of the session's control plane, Ready: the scheduler binds pods to it
    and it runs them as local processes."""
    with tempfile.TemporaryDirectory(prefix="permisos-node-") as directory:
        agent = NodeAgentProcess(control_plane, "permisos-local", Path(directory)).start()
        try:
            yield agent
        finally:
            agent.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_server()
