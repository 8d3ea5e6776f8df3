"""The chart installed for real: `helm install` on a control plane of this module, whose node
agent gives each pod a network namespace and an address (two operator replicas listen on the
same ports), with the values the platform uses on this machine. Everything comes up through the
real controllers and the node agent: the migration hook Job, then the API and the operator."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.kubernetes import ROOT
from tests.accounts import CHART_CRDS, install_crds, refused
from tests.cluster import eventually, helm, kubectl
from tests.databases import fresh_database
from tests.nodes import NodeAgentProcess

from .conftest import CHART

VALUES = ROOT / "sandbox" / "permisos_sandbox" / "platform" / "chart-values.yaml"
CIDR = "10.244.9.0/24"
GATEWAY = "10.244.9.1"
NAMESPACE = "permisos"
RELEASE = "permisos"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_database("permisos_release", migrate=False) as url:
        yield url


@pytest.fixture(scope="module")
def cluster(database: str) -> Iterator[ControlPlane]:
    port = make_url(database).port
    assert port is not None
    with ControlPlane(log=lambda line: None) as cp, tempfile.TemporaryDirectory() as directory:
        agent = NodeAgentProcess(
            cp, "permisos-local", Path(directory), pod_network=CIDR, host_ports=(port,)
        )
        agent.start()
        try:
            yield cp
        finally:
            agent.stop()


def secrets(database: str) -> dict[str, dict[str, str]]:
    """What `existingSecret` names, created before installing as on any cluster; the pods reach
    the database at the pod network's gateway."""
    url = make_url(database).set(host=GATEWAY).render_as_string(hide_password=False)
    return {
        "permisos-database": {"url": url},
        "permisos-stripe": {"secret-key": "sk_test_release", "webhook-secret": "whsec_release"},
        "permisos-signing": {"secret": uuid.uuid4().hex * 2},
        "permisos-portal-account": {"username": "operador", "password": "secreto"},
    }


@pytest.fixture(scope="module")
def installed(cluster: ControlPlane, database: str) -> str:
    """`helm install`'s output, once for the module."""
    return asyncio.run(install(cluster, database))


async def install(cluster: ControlPlane, database: str) -> str:
    admin = cluster.admin_kubeconfig
    await install_crds(admin, CHART_CRDS)
    await kubectl(admin, "create", "namespace", NAMESPACE)
    for name, data in secrets(database).items():
        literals = [f"--from-literal={key}={value}" for key, value in data.items()]
        await kubectl(admin, "create", "secret", "generic", name, "-n", NAMESPACE, *literals)
    _, out, _ = await helm(
        admin,
        *("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES)),
        *("--set", f"portal.url=http://{GATEWAY}:8090"),
    )
    return out


async def deployments(admin: Path) -> dict[str, str]:
    _, out, _ = await kubectl(admin, "get", "deploy", "-n", NAMESPACE, "-o", "json")
    return {
        d["metadata"]["name"]: f"{d['status'].get('readyReplicas', 0)}/{d['spec']['replicas']}"
        for d in json.loads(out)["items"]
    }


async def test_the_release_comes_up_through_the_hook_and_the_controllers(
    cluster: ControlPlane, installed: str, database: str
) -> None:
    admin = cluster.admin_kubeconfig
    assert f'is installed as "{RELEASE}"' in installed or "STATUS: deployed" in installed

    # The pre-install hook migrated the database before anything else started.
    with psycopg.connect(
        make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    ) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()

    async def ready() -> dict[str, str] | None:
        found = await deployments(admin)
        wanted = {f"{RELEASE}-api": "1/1", f"{RELEASE}-operator": "2/2"}
        return found if found == wanted else None

    await eventually(ready, timeout=90)
    _, out, _ = await kubectl(admin, "get", "pods", "-n", NAMESPACE, "-o", "json")
    pods: list[dict[str, Any]] = json.loads(out)["items"]
    addresses = {p["status"].get("podIP") for p in pods if p["status"]["phase"] == "Running"}
    assert len(addresses) == 3  # the API and two operators, each at its own address
    _, status, _ = await helm(admin, "status", RELEASE, "-n", NAMESPACE, "-o", "json")
    assert json.loads(status)["info"]["status"] == "deployed"


async def test_one_operator_replica_is_active_through_kopf_peering(
    cluster: ControlPlane, installed: str
) -> None:
    """Each replica's liveness endpoint (what the chart's probe asks, at the pod's address)
    says whether it is the active one: exactly one is."""
    admin = cluster.admin_kubeconfig

    async def roles() -> list[bool] | None:
        _, out, _ = await kubectl(
            admin,
            *("get", "pods", "-n", NAMESPACE, "-o", "json"),
            "-l",
            "app.kubernetes.io/component=operator",
        )
        addresses = [p["status"].get("podIP") for p in json.loads(out)["items"]]
        found = []
        async with httpx.AsyncClient(timeout=5) as http:
            for address in addresses:
                try:
                    answer = await http.get(f"http://{address}:8081/healthz")
                except httpx.HTTPError:
                    return None
                found.append(bool(answer.json().get("controller")))
        return found if len(found) == 2 and sorted(found) == [False, True] else None

    await eventually(roles, timeout=60)


async def test_a_cronjob_run_by_hand_succeeds(cluster: ControlPlane, installed: str) -> None:
    """As `kubectl create job --from=cronjob/...` does: the cleanup of abandoned applications,
    with the CronJob's ServiceAccount, Secrets and database."""
    admin = cluster.admin_kubeconfig
    cronjob = f"cronjob/{RELEASE}-cleanup"
    await kubectl(admin, "create", "job", "cleanup-now", f"--from={cronjob}", "-n", NAMESPACE)

    async def finished() -> str | None:
        _, out, _ = await kubectl(admin, "get", "job", "cleanup-now", "-n", NAMESPACE, "-o", "json")
        conditions = json.loads(out).get("status", {}).get("conditions") or []
        done = [c["type"] for c in conditions if c["type"] in ("Complete", "Failed")]
        return done[0] if done and conditions else None

    outcome = await eventually(finished, timeout=90)
    _, log, _ = await kubectl(admin, "logs", "job/cleanup-now", "-n", NAMESPACE)
    assert outcome == "Complete", log


# What the release makes in its namespace, and cluster-wide, to be found by its instance label.
NAMESPACED = (
    "pods",
    "jobs.batch",
    "cronjobs.batch",
    "deployments.apps",
    "replicasets.apps",
    "services",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "networkpolicies.networking.k8s.io",
    "poddisruptionbudgets.policy",
    "runnerpools.permisosdigitales.mx",
    "kopfpeerings.kopf.dev",
)
CLUSTER = (
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
)


async def of_the_release(admin: Path, kinds: tuple[str, ...], *scope: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={RELEASE}"
    _, out, _ = await kubectl(admin, "get", ",".join(kinds), *scope, "-l", selector, "-o", "name")
    return out.split()


async def test_helm_uninstall_finishes_and_leaves_nothing_of_the_release(
    cluster: ControlPlane, installed: str, database: str
) -> None:
    """Last in this module. The pre-delete hook has the running operator let go of the
    RunnerPool and the peering object (Kopf's finalizer on the latter), so `helm uninstall
    --wait --cascade foreground` returns once everything is gone: no pod, Job, Secret or any
    other object of the release, hooks included. What it did not make stays: the Secrets its
    values name, the CRDs."""
    admin = cluster.admin_kubeconfig
    assert await of_the_release(admin, ("runnerpools.permisosdigitales.mx",), "-n", NAMESPACE)
    await helm(
        admin,
        *("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--cascade", "foreground"),
        *("--timeout", "150s"),
        timeout=200,
    )
    assert await of_the_release(admin, NAMESPACED, "-n", NAMESPACE) == []
    assert await of_the_release(admin, CLUSTER) == []
    _, pods, _ = await kubectl(admin, "get", "pods", "-n", NAMESPACE, "-o", "name")
    assert pods.split() == []
    _, left, _ = await kubectl(admin, "get", "secrets", "-n", NAMESPACE, "-o", "name")
    assert sorted(left.split()) == sorted(f"secret/{name}" for name in secrets(database))
    _, crds, _ = await kubectl(admin, "get", "crds", "-o", "name")
    assert "customresourcedefinition.apiextensions.k8s.io/runnerpools.permisosdigitales.mx" in crds
    code, _, err = await helm(admin, "status", RELEASE, "-n", NAMESPACE, check=False)
    assert code != 0 and "not found" in err
    # The hook acted as its own ServiceAccount, within its Role, and deleted both objects.
    user = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-uninstall"
    assert refused(cluster, user) == []
    deleted = {
        event["objectRef"]["resource"]
        for event in cluster.audit_events()
        if event["user"].get("username") == user and event["verb"] == "delete"
    }
    assert deleted == {"runnerpools", "kopfpeerings"}
