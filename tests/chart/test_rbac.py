"""RBAC: the rendered Roles grant exactly what the code declares, and the code calls exactly that.

The declared rules live in `permisos_operator.rbac` and `permisos_api.rbac`. The rendered Roles
and ClusterRoles must equal them; then the real operator (a process, configured from the rendered
Deployment) and the real dispatcher and readiness probe run against the API emulator with every
request audited, as kube-apiserver's authorizer sees it. Each request must be allowed by the
rendered rules (as RBAC would decide), and each declared rule must have been used.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from permisos_api import rbac as api_rbac
from permisos_api.db import make_engine, utcnow
from permisos_api.dispatcher import Dispatcher, DispatcherMetrics
from permisos_api.kube import ReadinessProbe
from permisos_api.models import Outbox
from permisos_api.settings import ApiSettings
from permisos_operator import rbac as operator_rbac
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.kubeapi import AuditRecord, KubeApiServer
from tests.accounts import audited_grants, refused, service_account_kubeconfig
from tests.api.conftest import paid_application
from tests.cluster import (
    NS,
    ClusterKopfPeering,
    KopfPeering,
    Kubelet,
    OperatorProcess,
    PermitRequest,
    RunnerPool,
    as_dict,
    eventually,
    kubectl,
    permit_request,
    runner_pool,
)
from tests.databases import fresh_database

from .conftest import CHART, RELEASE, Rendered, clean, render

FULLNAME = f"{RELEASE}-permisos"
# One grant: (apiGroup, resource[/subresource], verb, resourceNames).
Grant = tuple[str, str, str, tuple[str, ...]]
# The emulator's audit is tested on the namespace the cluster helpers use.
AUDIT_VALUES: dict[str, Any] = {
    "portal": {"url": "https://portal.example.gob.mx"},
    "runnerPool": {
        "replicas": 1,
        "retryPolicy": {"maxAttempts": 3, "backoffSeconds": 1, "maxBackoffSeconds": 2},
    },
}


def grants_of(
    rules: Iterable[tuple[str, str, tuple[str, ...]]], names: tuple[str, ...] = ()
) -> set[Grant]:
    return {(group, resource, verb, names) for group, resource, verbs in rules for verb in verbs}


def rendered_grants(rules: list[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb, tuple(rule.get("resourceNames") or ()))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@dataclass
class Bound:
    """The rules bound to one ServiceAccount: per Role namespace, and cluster-wide."""

    namespaced: dict[str, set[Grant]]
    cluster: set[Grant]

    def allows(self, record: AuditRecord) -> bool:
        """RBAC's decision for one request (resourceNames restrict by the request's name)."""
        resource = (
            f"{record.resource}/{record.subresource}" if record.subresource else record.resource
        )
        grants = set(self.cluster)
        grants |= self.namespaced.get(record.namespace, set()) if record.namespace else set()
        return any(
            group == record.group
            and granted == resource
            and verb == record.verb
            and (not names or record.name in names)
            for group, granted, verb, names in grants
        )

    def all(self) -> set[Grant]:
        return self.cluster.union(*self.namespaced.values())


def bound_to(rendered: Rendered, account: str) -> Bound:
    namespaced: dict[str, set[Grant]] = {}
    cluster: set[Grant] = set()
    for binding in rendered.of_kind("RoleBinding", "ClusterRoleBinding"):
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]
        ):
            continue
        ref = binding["roleRef"]
        role = rendered.get(ref["kind"], ref["name"])
        grants = rendered_grants(role["rules"])
        if binding["kind"] == "RoleBinding":
            namespaced.setdefault(binding["metadata"]["namespace"], set()).update(grants)
        else:
            cluster |= grants
    return Bound(namespaced, cluster)


def observed(records: list[AuditRecord], user: str) -> set[Grant]:
    return {
        (
            r.group,
            f"{r.resource}/{r.subresource}" if r.subresource else r.resource,
            r.verb,
            (),
        )
        for r in records
        if r.user == user
    }


def unnamed(grants: set[Grant]) -> set[Grant]:
    return {(g, r, v, ()) for g, r, v, _ in grants}


# --- what is rendered equals what is declared ---------------------------------------------------


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_operator_roles_equal_the_declared_rules(chart: helm.Chart, scope: str) -> None:
    rendered = render(chart, {"operator": {"scope": scope}})
    declared = operator_rbac.grants(cluster_wide=scope == "cluster")
    peering = (FULLNAME,)
    bound = bound_to(rendered, f"{FULLNAME}-operator")
    own_peering = grants_of([declared.own_peering], peering)
    if scope == "cluster":
        assert bound.namespaced == {}
        assert bound.cluster == grants_of(declared.cluster) | own_peering
    else:
        assert bound.namespaced == {"permisos": grants_of(declared.namespaced) | own_peering}
        assert bound.cluster == grants_of(declared.cluster)


def test_api_role_equals_the_declared_rules_in_its_own_namespace(
    renders: dict[str, Rendered],
) -> None:
    for rendered in renders.values():
        bound = bound_to(rendered, f"{FULLNAME}-api")
        assert bound.cluster == set()
        assert bound.namespaced == {"permisos": grants_of(api_rbac.RULES)}
        api = rendered.get("Deployment", f"{FULLNAME}-api")
        env = {
            e["name"]: e.get("value")
            for e in api["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["PERMISOS_API_KUBERNETES_NAMESPACE"] == "permisos"


def test_no_role_uses_wildcards_or_escalating_verbs(
    chart: helm.Chart, renders: dict[str, Rendered]
) -> None:
    everything = [*renders.values(), render(chart, {"operator": {"scope": "cluster"}})]
    for rendered in everything:
        for role in rendered.of_kind("Role", "ClusterRole"):
            for rule in role["rules"]:
                assert "nonResourceURLs" not in rule
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {rule}"
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


# --- what the code calls equals what is granted ------------------------------------------------


@dataclass
class Cluster:
    server: KubeApiServer
    kube: AsyncClient
    tmp: Path

    def kubeconfig(self, user: str) -> Path:
        """A kubeconfig whose bearer token names `user` in the emulator's audit."""
        config = self.server.kubeconfig()
        config["users"][0]["user"] = {"token": user}
        path = self.tmp / f"{user}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    server = KubeApiServer(crd_paths=[CHART / "crds"], audit=True)
    await server.start()
    holder = Cluster(server, None, tmp_path)  # type: ignore[arg-type]
    holder.kube = AsyncClient(
        KubeConfig.from_file(str(holder.kubeconfig("tests"))), namespace=NS, field_manager="tests"
    )
    try:
        yield holder
    finally:
        await holder.kube.close()
        await server.stop()


async def test_the_audit_sees_requests_as_rbac_does(cluster: Cluster) -> None:
    """Each HTTP request becomes the verb kube-apiserver's authorizer would check."""
    kube = cluster.kube
    config = ConfigMap(metadata=ObjectMeta(name="c1", namespace=NS), data={"a": "1"})
    created = await kube.create(config)
    await kube.get(ConfigMap, "c1", namespace=NS)
    _ = [c async for c in kube.list(ConfigMap, namespace=NS)]
    async for _ in kube.watch(ConfigMap, namespace=NS, resource_version="0", server_timeout=5):
        break
    await kube.replace(created)
    await kube.patch(ConfigMap, "c1", {"data": {"b": "2"}}, namespace=NS)
    await kube.delete(ConfigMap, "c1", namespace=NS)
    await kube.deletecollection(ConfigMap, namespace=NS)
    await kube.create(runner_pool())
    await kube.patch(
        RunnerPool.Scale,
        "default",
        {"spec": {"replicas": 2}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    assert cluster.server.audit is not None
    seen = [
        (r.verb, r.group, r.resource, r.subresource, r.namespace, r.name)
        for r in cluster.server.audit
        if r.user == "tests"
    ]
    assert seen == [
        ("create", "", "configmaps", "", NS, ""),
        ("get", "", "configmaps", "", NS, "c1"),
        ("list", "", "configmaps", "", NS, ""),
        ("watch", "", "configmaps", "", NS, ""),
        ("update", "", "configmaps", "", NS, "c1"),
        ("patch", "", "configmaps", "", NS, "c1"),
        ("delete", "", "configmaps", "", NS, "c1"),
        ("deletecollection", "", "configmaps", "", NS, ""),
        ("create", "permisosdigitales.mx", "runnerpools", "", NS, ""),
        ("patch", "permisosdigitales.mx", "runnerpools", "scale", NS, "default"),
    ]


async def phase_of(kube: AsyncClient, name: str) -> str | None:
    body = as_dict(await kube.get(PermitRequest, name, namespace=NS))
    return (body.get("status") or {}).get("phase")


async def until_phase(kube: AsyncClient, name: str, phase: str) -> None:
    async def reached() -> bool:
        return await phase_of(kube, name) == phase

    await eventually(reached, timeout=30)


def operator_env(rendered: Rendered) -> dict[str, str]:
    """The rendered operator's settings, except where it listens and its database (no mirror)."""
    deployment = rendered.get("Deployment", f"{FULLNAME}-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    local = ("METRICS_", "LIVENESS_", "DATABASE_", "PEERING_LIFETIME")
    return {
        e["name"]: e["value"]
        for e in container["env"]
        if "value" in e and not e["name"].removeprefix("PERMISOS_OPERATOR_").startswith(local)
    }


async def drive_the_operator(kube: AsyncClient) -> None:
    """A success, a retried failure, a scale-up, a cancellation and a deletion."""
    kubelet = Kubelet(kube)
    await kube.create(permit_request("ok-1"))
    await kube.create(permit_request("retry-1"))
    await eventually(lambda: kubelet.job("ok-1-a1"), timeout=30)
    await until_phase(kube, "retry-1", "Queued")  # the pool runs one at a time
    await kube.patch(
        RunnerPool.Scale,
        "default",
        {"spec": {"replicas": 3}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await eventually(lambda: kubelet.job("retry-1-a1"))
    await kubelet.start("ok-1-a1")
    await kubelet.succeed("ok-1-a1")
    await kubelet.start("retry-1-a1")
    await kubelet.fail("retry-1-a1", "retryable", "PortalTimeout")
    await kube.create(permit_request("cancel-1"))
    await eventually(lambda: kubelet.job("cancel-1-a1"))
    await kubelet.start("cancel-1-a1")
    await kube.patch(
        PermitRequest,
        "cancel-1",
        {"spec": {"cancel": True}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await eventually(lambda: kubelet.job("retry-1-a2"))
    await kubelet.start("retry-1-a2")
    await kubelet.fail("retry-1-a2", "permanent", "PortalRejected")
    await until_phase(kube, "ok-1", "Succeeded")
    await until_phase(kube, "retry-1", "Failed")
    await until_phase(kube, "cancel-1", "Cancelled")

    async def cancelled_job_gone() -> bool:
        return await kubelet.job("cancel-1-a1") is None

    await eventually(cancelled_job_gone)
    await kube.delete(PermitRequest, "ok-1", namespace=NS)

    async def deleted() -> bool:
        names = [
            as_dict(p)["metadata"]["name"] async for p in kube.list(PermitRequest, namespace=NS)
        ]
        return "ok-1" not in names

    await eventually(deleted)


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
async def test_the_operator_calls_exactly_what_its_roles_grant(
    chart: helm.Chart, cluster: Cluster, scope: str
) -> None:
    rendered = render(chart, {**AUDIT_VALUES, "operator": {"scope": scope}}, namespace=NS)
    # What `helm install` would create before the operator starts.
    peering = clean(rendered.of_kind("KopfPeering", "ClusterKopfPeering")[0])
    await cluster.kube.create(
        (ClusterKopfPeering if scope == "cluster" else KopfPeering).from_dict(peering)
    )
    await cluster.kube.create(RunnerPool.from_dict(clean(rendered.get("RunnerPool", "default"))))
    env = operator_env(rendered)
    assert env["PERMISOS_OPERATOR_STANDALONE"] == "false"
    operator = OperatorProcess(
        cluster.kubeconfig("operator"),
        cluster.tmp / "operator.log",
        standalone=False,
        extra_env=env,
    )
    try:
        await drive_the_operator(cluster.kube)
        # The path the chart's liveness probe asks, answered by Kopf: the active replica says so.
        (container,) = rendered.get("Deployment", f"{FULLNAME}-operator")["spec"]["template"][
            "spec"
        ]["containers"]
        path = container["livenessProbe"]["httpGet"]["path"]
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{operator.health_port}{path}")
        assert health.status_code == 200
        assert health.json() == {"controller": True}
    finally:
        # SIGTERM: Kopf withdraws from the peering, a call of its own, which the emulator (on
        # this event loop) must be free to answer.
        await asyncio.to_thread(operator.stop)
    assert cluster.server.audit is not None
    records = [r for r in cluster.server.audit if r.user == "operator"]
    bound = bound_to(rendered, f"{FULLNAME}-operator")

    denied = sorted({r for r in records if not bound.allows(r)}, key=str)
    assert denied == [], "calls the rendered RBAC would refuse"
    assert unnamed(bound.all()) == observed(records, "operator"), "granted but never called"
    peering_writes = {r.name for r in records if r.group == "kopf.dev" and r.verb == "patch"}
    assert peering_writes == {FULLNAME}


@pytest.fixture(scope="module")
def database_url() -> Any:
    with fresh_database("permisos_test_rbac") as url:
        yield url


async def test_the_api_calls_exactly_what_its_role_grants(
    chart: helm.Chart,
    control_plane: ControlPlane,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """On the real kube-apiserver, as the chart's API ServiceAccount with a token bound to the
    chart's Role: a missing permission is a 403 that fails the dispatcher, and the audit log
    shows that every granted verb is used."""
    admin = control_plane.admin_kubeconfig
    ns = f"rbac-api-{uuid.uuid4().hex[:6]}"
    await kubectl(admin, "create", "namespace", ns)
    await kubectl(admin, "apply", "--server-side", "-f", str(CHART / "crds"))
    await kubectl(admin, "wait", "--for=condition=Established", "-f", str(CHART / "crds"))
    rendered = render(chart, {}, namespace=ns)
    account = f"{FULLNAME}-api"
    for kind, name in (
        ("ServiceAccount", account),
        ("Role", account),
        ("RoleBinding", account),
    ):
        manifest = tmp_path / f"{kind}.yaml"
        manifest.write_text(yaml.safe_dump(clean(rendered.get(kind, name))))
        await kubectl(admin, "apply", "-n", ns, "-f", str(manifest))
    kubeconfig = await service_account_kubeconfig(control_plane, ns, account, tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    settings = ApiSettings(
        database_url=database_url,
        kubernetes_namespace=ns,
        kubernetes_timeout_seconds=5.0,
        mail_outbox_dir=tmp_path / "mail",
    )
    engine = make_engine(settings)
    dispatcher = Dispatcher(settings, engine, DispatcherMetrics(CollectorRegistry()))
    try:
        application = paid_application(engine, outbox=True)
        assert await dispatcher.run_once() >= 1
        # Delivered again (a replica died before recording it): the Secret exists and is patched
        # (never read), the request exists and is read back for its uid.
        with engine.begin() as conn:
            conn.execute(
                update(Outbox)
                .where(Outbox.application_id == application)
                .values(dispatched_at=None, next_attempt_at=utcnow())
            )
        assert await dispatcher.run_once() >= 1
        probe = ReadinessProbe(ns, 5.0)
        try:
            check = await asyncio.to_thread(probe.check)
        finally:
            probe.close()
        assert check.status == "ok"
    finally:
        await dispatcher.close()
        engine.dispose()
    _, out, _ = await kubectl(admin, "get", "permitrequests", "-n", ns, "-o", "name")
    assert out.split() == [f"permitrequest.permisosdigitales.mx/{application}"]

    user = f"system:serviceaccount:{ns}:{account}"
    assert refused(control_plane, user) == [], "calls the rendered RBAC refuses"
    bound = bound_to(rendered, account)
    used = audited_grants(control_plane, user)
    assert {(g, r, v, ()) for g, r, v, _ in used} == bound.all(), "granted but never called"
    assert {namespace for *_, namespace in used} == {ns}
