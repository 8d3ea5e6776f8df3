"""The operator's tests: a namespace each on the operator's control plane (the real
kube-apiserver, its Job controller played by the test), operators started as processes with
their own ServiceAccount's token and the rules `permisos_operator.rbac` declares."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from permisos.kube import Kube
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.accounts import OPERATOR_ACCOUNT
from tests.accounts import operator_kubeconfig, refused
from tests.cluster import OperatorProcess
from tests.job_controller import JobController
from tests.namespaces import Namespace, new_namespace

StartOperator = Callable[..., Awaitable[OperatorProcess]]


@pytest.fixture
async def kube(operator_control_plane: ControlPlane) -> AsyncIterator[Kube]:
    kube = await Kube.from_kubeconfig(operator_control_plane.admin_kubeconfig)
    try:
        yield kube
    finally:
        await kube.close()


@pytest.fixture
async def ns(kube: Kube) -> AsyncIterator[Namespace]:
    namespace = await new_namespace(kube, "op")
    try:
        yield namespace
    finally:
        await namespace.discard()


@pytest.fixture
def jobs(ns: Namespace) -> JobController:
    return JobController(ns)


@pytest.fixture
def operators(
    operator_control_plane: ControlPlane, ns: Namespace
) -> Iterator[list[OperatorProcess]]:
    """Started operator processes; each is killed after the test, before its namespace goes.
    Whatever the test did, RBAC refused none of their requests."""
    started: list[OperatorProcess] = []
    yield started
    for proc in started:
        proc.kill()
    user = f"system:serviceaccount:{ns.name}:{OPERATOR_ACCOUNT}"
    assert refused(operator_control_plane, user) == []


@pytest.fixture
def start_operator(
    operator_control_plane: ControlPlane,
    ns: Namespace,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> StartOperator:
    """Starts `python -m permisos_operator` watching the test's namespace (or, with
    `cluster_wide`, every namespace) as the operator's ServiceAccount, peering through the
    peering object named `peering`."""
    credentials: dict[bool, Path] = {}

    async def start(
        name: str = "operator",
        *,
        cluster_wide: bool = False,
        peering: str = OPERATOR_ACCOUNT,
        extra_env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> OperatorProcess:
        if cluster_wide not in credentials:
            credentials[cluster_wide] = await operator_kubeconfig(
                operator_control_plane,
                ns.kube,
                ns.name,
                tmp_path,
                cluster_wide=cluster_wide,
                peering=peering,
            )
        scope = {"PERMISOS_OPERATOR_PEERING_NAME": peering}
        if not cluster_wide:
            scope["PERMISOS_OPERATOR_NAMESPACES"] = json.dumps([ns.name])
        proc = OperatorProcess(
            credentials[cluster_wide],
            tmp_path / f"{name}.log",
            extra_env={**scope, **(extra_env or {})},
            **kwargs,
        )
        operators.append(proc)
        return proc

    return start
