from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lightkube import AsyncClient

from permisos_sandbox.kubeapi import KubeApiServer
from tests.cluster import CRDS, Kubelet, OperatorProcess, client


@pytest.fixture
async def kubeapi(tmp_path: Path) -> AsyncIterator[Path]:
    """A fresh API server with the project's CRDs; yields its kubeconfig."""
    server = KubeApiServer(crd_paths=[CRDS])
    await server.start(host="127.0.0.1", port=0)
    kubeconfig = tmp_path / "kubeconfig"
    server.write_kubeconfig(kubeconfig)
    try:
        yield kubeconfig
    finally:
        await server.stop()


@pytest.fixture
async def kube(kubeapi: Path) -> AsyncIterator[AsyncClient]:
    c = client(kubeapi)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def kubelet(kube: AsyncClient) -> Kubelet:
    return Kubelet(kube)


@pytest.fixture
def operators(kubeapi: Path, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Started operator processes; each is stopped after the test."""
    started: list[OperatorProcess] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def start_operator(kubeapi: Path, tmp_path: Path, operators: list[OperatorProcess]):  # type: ignore[no-untyped-def]
    def start(name: str = "operator", **kwargs: object) -> OperatorProcess:
        proc = OperatorProcess(kubeapi, tmp_path / f"{name}.log", **kwargs)  # type: ignore[arg-type]
        operators.append(proc)
        return proc

    return start
