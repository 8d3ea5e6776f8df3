from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lightkube import AsyncClient

from tests.cluster import Kubelet, OperatorProcess, kube_api, kube_client


@pytest.fixture
async def kubeapi(tmp_path: Path) -> AsyncIterator[Path]:
    """A fresh API server with the project's CRDs; yields its kubeconfig."""
    async with kube_api(tmp_path) as kubeconfig:
        yield kubeconfig


@pytest.fixture
async def kube(kubeapi: Path) -> AsyncIterator[AsyncClient]:
    async with kube_client(kubeapi) as c:
        yield c


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
