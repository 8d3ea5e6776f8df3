"""RBAC: the rendered Roles grant exactly what the code declares, and the code calls exactly that.

The declared rules live in `permisos_operator.rbac` and `permisos_api.rbac`. The rendered Roles
and ClusterRoles must equal them; then the real operator (a process, configured from the
rendered Deployment) and the API's real dispatcher, mirror and readiness probe run on the real
kube-apiserver as the chart's ServiceAccounts bound to the rendered roles: RBAC refuses none of
their requests, and the audit log shows that each declared rule was used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update

from permisos.kube import Kube, fmt_time, now
from permisos_api import rbac as api_rbac
from permisos_api.backoffice import cluster as cluster_view
from permisos_api.db import make_engine, utcnow
from permisos_api.dispatcher import Dispatcher, DispatcherMetrics
from permisos_api.kube import ApiKube, ReadinessProbe
from permisos_api.mirror import Mirror, MirrorMetrics
from permisos_api.models import Application, Outbox
from permisos_api.settings import ApiSettings
from permisos_operator import rbac as operator_rbac
from permisos_sandbox.cluster import ControlPlane
from tests.accounts import audited_grants, refused, service_account_kubeconfig
from tests.api.conftest import paid_application
from tests.cluster import OperatorProcess, eventually, kubectl
from tests.databases import fresh_database
from tests.job_controller import JobController
from tests.namespaces import Namespace, forget_cluster_peering, new_namespace, permit_request

from .conftest import CHART, RELEASE, Rendered, clean, render

FULLNAME = f"{RELEASE}-permisos"
# One grant: (apiGroup, resource[/subresource], verb, resourceNames).
Grant = tuple[str, str, str, tuple[str, ...]]
# The operator's work in the audited test: one runner at a time, quick retries.
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


async def apply_rendered(kubeconfig: Path, manifests: list[dict[str, Any]], tmp: Path) -> None:
    for number, manifest in enumerate(manifests):
        path = tmp / f"manifest-{number}.yaml"
        path.write_text(yaml.safe_dump(clean(manifest)))
        await kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(path))


def rbac_of(rendered: Rendered, account: str) -> list[dict[str, Any]]:
    """The ServiceAccount, its bindings and the roles they bind, as rendered."""
    objects = [rendered.get("ServiceAccount", account)]
    for binding in rendered.of_kind("RoleBinding", "ClusterRoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            ref = binding["roleRef"]
            objects += [rendered.get(ref["kind"], ref["name"]), binding]
    return objects


async def until_phase(ns: Namespace, name: str, phase: str) -> None:
    async def reached() -> bool:
        request = await ns.get("permitrequests", name) or {}
        return bool((request.get("status") or {}).get("phase") == phase)

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


async def drive_the_operator(ns: Namespace) -> None:
    """A success, a retried failure, a scale-up, a cancellation and a deletion."""
    jobs = JobController(ns)
    await ns.create("permitrequests", permit_request("ok-1"))
    await ns.create("permitrequests", permit_request("retry-1"))
    await eventually(lambda: jobs.job("ok-1-a1"), timeout=30)
    await until_phase(ns, "retry-1", "Queued")  # the pool runs one at a time
    await ns.patch("runnerpools", "default", {"spec": {"replicas": 3}}, "scale")
    await eventually(lambda: jobs.job("retry-1-a1"))
    await jobs.start("ok-1-a1")
    await jobs.succeed("ok-1-a1")
    await jobs.start("retry-1-a1")
    await jobs.fail("retry-1-a1", "retryable", "PortalTimeout")
    await ns.create("permitrequests", permit_request("cancel-1"))
    await eventually(lambda: jobs.job("cancel-1-a1"))
    await jobs.start("cancel-1-a1")
    await ns.patch("permitrequests", "cancel-1", {"spec": {"cancel": True}})
    await eventually(lambda: jobs.job("retry-1-a2"))
    await jobs.start("retry-1-a2")
    await jobs.fail("retry-1-a2", "permanent", "PortalRejected")
    await until_phase(ns, "ok-1", "Succeeded")
    await until_phase(ns, "retry-1", "Failed")
    await until_phase(ns, "cancel-1", "Cancelled")

    async def cancelled_job_gone() -> bool:
        return await jobs.job("cancel-1-a1") is None

    await eventually(cancelled_job_gone)
    await ns.delete("permitrequests", "ok-1")

    async def deleted() -> bool:
        return await ns.get("permitrequests", "ok-1") is None

    await eventually(deleted)


@pytest.fixture
async def ns(operator_control_plane: ControlPlane) -> AsyncIterator[Namespace]:
    kube = await Kube.from_kubeconfig(operator_control_plane.admin_kubeconfig)
    namespace = await new_namespace(kube, "rbac-op")
    try:
        yield namespace
    finally:
        await namespace.discard()
        await kube.close()


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
async def test_the_operator_calls_exactly_what_its_roles_grant(
    chart: helm.Chart,
    operator_control_plane: ControlPlane,
    ns: Namespace,
    tmp_path: Path,
    scope: str,
) -> None:
    """On the real kube-apiserver (its Job controller played by the test), as the chart's
    operator ServiceAccount bound to the rendered roles: nothing is refused (403) and the audit
    log shows every granted verb used."""
    control_plane = operator_control_plane
    admin = control_plane.admin_kubeconfig
    rendered = render(chart, {**AUDIT_VALUES, "operator": {"scope": scope}}, namespace=ns.name)
    account = f"{FULLNAME}-operator"
    # What `helm install` would create before the operator starts.
    peering = rendered.of_kind("KopfPeering", "ClusterKopfPeering")
    pool = rendered.get("RunnerPool", "default")
    runner = rendered.get("ServiceAccount", pool["spec"]["serviceAccountName"])
    await apply_rendered(admin, [*rbac_of(rendered, account), *peering, runner, pool], tmp_path)
    env = operator_env(rendered)
    assert env["PERMISOS_OPERATOR_STANDALONE"] == "false"
    kubeconfig = await service_account_kubeconfig(control_plane, ns.name, account, tmp_path)
    operator = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", standalone=False, extra_env=env
    )
    try:
        await drive_the_operator(ns)
        # The path the chart's liveness probe asks, answered by Kopf: the active replica says so.
        (container,) = rendered.get("Deployment", account)["spec"]["template"]["spec"]["containers"]
        path = container["livenessProbe"]["httpGet"]["path"]
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{operator.health_port}{path}")
        assert health.status_code == 200
        assert health.json() == {"controller": True}
    finally:
        # SIGTERM: Kopf withdraws from the peering, a call of its own, audited too.
        await asyncio.to_thread(operator.stop)
        if scope == "cluster":  # not the namespace's: it would outlive the test
            await forget_cluster_peering(ns.kube, FULLNAME)

    user = f"system:serviceaccount:{ns.name}:{account}"
    assert refused(control_plane, user) == [], "calls the rendered RBAC refuses"
    used = audited_grants(control_plane, user)
    bound = bound_to(rendered, account)
    assert {(g, r, v, ()) for g, r, v, _ in used} == unnamed(bound.all()), "granted, not called"
    peering_writes = {
        e["objectRef"].get("name")
        for e in control_plane.audit_events()
        if e["user"].get("username") == user
        and e["verb"] == "patch"
        and (e.get("objectRef") or {}).get("apiGroup") == "kopf.dev"
    }
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
    chart's Role: a missing permission is a 403 that fails the dispatcher or the mirror, and the
    audit log shows that every granted verb is used."""
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
        mirror_retry_seconds=0.5,
    )
    engine = make_engine(settings)
    dispatcher = Dispatcher(settings, engine, DispatcherMetrics(CollectorRegistry()))
    # The mirror, as the API's lifespan runs it: it lists and watches the requests.
    registry = CollectorRegistry()
    mirror = asyncio.create_task(Mirror(settings, engine, MirrorMetrics(registry)).run_forever())

    async def watching() -> bool:
        return registry.get_sample_value("permisos_mirror_watching") == 1

    try:
        await eventually(watching)
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
        assert (await ReadinessProbe(ns, 5.0).check()).status == "ok"
        # The admin console reads the request and lists the RunnerPools.
        console = ApiKube(5.0)
        try:
            shown = await cluster_view.permit_request(console, ns, str(application))
            assert shown is not None and shown.name == str(application)
            assert await cluster_view.runner_pools(console, ns) == []
        finally:
            await console.reset()
        # The operator (played here) ends the request, then it is deleted: the mirror records
        # the outcome, then patches its finalizer away.
        request = ("permitrequest", str(application), "-n", ns)
        moment = fmt_time(now())
        ready = {"type": "Ready", "status": "False", "reason": "PortalRejected"}
        failed = {
            "phase": "Failed",
            "attempts": 1,
            "completedAt": moment,
            "conditions": [{**ready, "lastTransitionTime": moment}],
        }
        status = json.dumps({"status": failed})
        await kubectl(
            admin, "patch", *request, "--subresource=status", "--type=merge", "-p", status
        )
        await kubectl(admin, "delete", *request, "--wait=false")
        await kubectl(admin, "wait", "--for=delete", *request, "--timeout=30s")
        with engine.connect() as conn:
            found = conn.execute(select(Application.status).where(Application.id == application))
            assert found.scalar_one() == "permit_failed"
        assert not mirror.done(), "the mirror stopped"
    finally:
        mirror.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mirror
        await dispatcher.close()
        engine.dispose()
    _, out, _ = await kubectl(admin, "get", "permitrequests", "-n", ns, "-o", "name")
    assert out.split() == []

    user = f"system:serviceaccount:{ns}:{account}"
    assert refused(control_plane, user) == [], "calls the rendered RBAC refuses"
    bound = bound_to(rendered, account)
    used = audited_grants(control_plane, user)
    assert {(g, r, v, ()) for g, r, v, _ in used} == bound.all(), "granted but never called"
    assert {namespace for *_, namespace in used} == {ns}
