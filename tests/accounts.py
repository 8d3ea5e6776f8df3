"""What tests set up on the session's control plane: the CRDs, and the credentials of a
ServiceAccount as a pod would hold them (a TokenRequest token, `kubectl create token`, in a
kubeconfig of its own), and what the audit log says that account did."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from permisos.kube import JSON, Kube
from permisos_api.rbac import RULES as API_RULES
from permisos_operator import rbac as operator_rbac
from permisos_operator.rbac import Rule
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.kubernetes import CRDS, ROOT, apply_crds, load_crds
from tests.cluster import kubectl

# The chart's CRDs: the project's and Kopf's peering kinds.
CHART_CRDS = ROOT / "charts" / "permisos" / "crds"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC = f"/apis/{RBAC_GROUP}/v1"


async def install_crds(admin_kubeconfig: Path, directory: Path = CRDS) -> None:
    """The project's CRDs, as the platform installs them: applied, Established and served."""
    kube = await Kube.from_kubeconfig(admin_kubeconfig)
    try:
        await apply_crds(kube, load_crds(directory))
    finally:
        await kube.close()


async def service_account_kubeconfig(
    control_plane: ControlPlane, namespace: str, account: str, directory: Path
) -> Path:
    _, token, _ = await kubectl(
        control_plane.admin_kubeconfig,
        *("create", "token", account, "-n", namespace, "--duration=1h"),
    )
    user = f"system:serviceaccount:{namespace}:{account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority": str(control_plane.ca_cert),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token.strip()}}],
        "contexts": [
            {
                "name": "local",
                "context": {"cluster": "local", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "local",
    }
    path = directory / f"{namespace}-{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def audited_grants(control_plane: ControlPlane, user: str) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource[/subresource], verb, namespace) of every request `user` made, as
    kube-apiserver's audit log recorded it."""
    out = set()
    for event in control_plane.audit_events():
        ref = event.get("objectRef")
        if event["user"]["username"] != user or not ref or event.get("stage") != "ResponseComplete":
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.add((ref.get("apiGroup", ""), resource, event["verb"], ref.get("namespace", "")))
    return out


def refused(control_plane: ControlPlane, user: str) -> list[str]:
    """The requests of `user` that RBAC answered 403."""
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in control_plane.audit_events()
        if e["user"]["username"] == user and (e.get("responseStatus") or {}).get("code") == 403
    ]


def through(kubeconfig: Path, port: int) -> Path:
    """A copy of `kubeconfig` that reaches the apiserver through a proxy on loopback `port`
    (the server's certificate names 127.0.0.1, whatever the port)."""
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = kubeconfig.with_name(f"{kubeconfig.stem}-via-{port}.kubeconfig")
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def api_account(namespace: str, account: str = "permisos-api") -> list[JSON]:
    """The API's ServiceAccount, Role (`permisos_api.rbac.RULES`, what the chart grants) and
    RoleBinding in `namespace`, as manifests."""
    meta = {"name": account, "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": rbac_rules(API_RULES),
        },
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]


def rbac_rules(rules: Iterable[Rule], names: tuple[str, ...] = ()) -> list[JSON]:
    """RBAC rules from the `(apiGroup, resource, verbs)` triples the components declare."""
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
        | ({"resourceNames": list(names)} if names else {})
        for group, resource, verbs in rules
    ]


def operator_cluster_role(namespace: str) -> str:
    """The ClusterRole (and its binding) made for the operator of `namespace`."""
    return f"permisos-operator-{namespace}"


async def operator_kubeconfig(
    control_plane: ControlPlane,
    kube: Kube,
    namespace: str,
    directory: Path,
    *,
    cluster_wide: bool,
    peering: str = "permisos-operator",
) -> Path:
    """The operator's ServiceAccount in `namespace`, bound to what `permisos_operator.rbac`
    declares for its scope (the rules the chart renders), and a kubeconfig with its token."""
    account = "permisos-operator"
    grants = operator_rbac.grants(cluster_wide)
    own = rbac_rules([grants.own_peering], (peering,))
    cluster_name = operator_cluster_role(namespace)
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    namespaced: list[tuple[str, str, JSON]] = [
        ("/api/v1", "serviceaccounts", {"metadata": {"name": account}}),
    ]
    if not cluster_wide:
        namespaced += [
            (
                RBAC,
                "roles",
                {"metadata": {"name": account}, "rules": rbac_rules(grants.namespaced) + own},
            ),
            (
                RBAC,
                "rolebindings",
                {
                    "metadata": {"name": account},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": account},
                    "subjects": subject,
                },
            ),
        ]
    for api, resource, body in namespaced:
        await kube.request("POST", f"{api}/namespaces/{namespace}/{resource}", body=body)
    cluster_rules = rbac_rules(grants.cluster) + (own if cluster_wide else [])
    await kube.request(
        "POST",
        f"{RBAC}/clusterroles",
        body={"metadata": {"name": cluster_name}, "rules": cluster_rules},
    )
    await kube.request(
        "POST",
        f"{RBAC}/clusterrolebindings",
        body={
            "metadata": {"name": cluster_name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_name},
            "subjects": subject,
        },
    )
    return await service_account_kubeconfig(control_plane, namespace, account, directory)
