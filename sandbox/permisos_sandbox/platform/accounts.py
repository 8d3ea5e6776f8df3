"""ServiceAccounts for the components when they run as processes outside the chart (the tests
of the operator and of the dispatcher).

Each is bound to the rules its code declares (`permisos_api.rbac`, `permisos_operator.rbac`: what
the chart's Roles grant, as tests/chart/test_rbac.py proves) and gets a TokenRequest token in a
kubeconfig of its own, the credentials a pod's projected token would carry. `make run` needs
none of this: the chart makes the accounts and the node agent projects their tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from permisos.kube import JSON, Kube
from permisos_api.rbac import RULES as API_RULES
from permisos_operator import rbac as operator_rbac
from permisos_operator.rbac import Rule

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC = f"/apis/{RBAC_GROUP}/v1"
API_ACCOUNT = "permisos-api"
OPERATOR_ACCOUNT = "permisos-operator"


@dataclass(frozen=True)
class AccountRules:
    """RBAC rules for a Role in the account's namespace and for a ClusterRole."""

    namespaced: tuple[JSON, ...] = ()
    cluster: tuple[JSON, ...] = ()


def rbac_rules(rules: Iterable[Rule], names: tuple[str, ...] = ()) -> tuple[JSON, ...]:
    """RBAC rules from the `(apiGroup, resource, verbs)` triples the components declare."""
    return tuple(
        {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
        | ({"resourceNames": list(names)} if names else {})
        for group, resource, verbs in rules
    )


def api_rules() -> AccountRules:
    return AccountRules(namespaced=rbac_rules(API_RULES))


def operator_rules(*, cluster_wide: bool, peering: str = OPERATOR_ACCOUNT) -> AccountRules:
    grants = operator_rbac.grants(cluster_wide)
    own = rbac_rules([grants.own_peering], (peering,))
    if cluster_wide:
        return AccountRules(cluster=rbac_rules(grants.cluster) + own)
    return AccountRules(
        namespaced=rbac_rules(grants.namespaced) + own, cluster=rbac_rules(grants.cluster)
    )


def cluster_role_name(account: str, namespace: str) -> str:
    """The ClusterRole (and its binding) made for `account` of `namespace`."""
    return f"{account}-{namespace}"


async def bind_account(kube: Kube, namespace: str, account: str, rules: AccountRules) -> None:
    """The ServiceAccount, and a Role and a ClusterRole with their bindings, where rules say."""
    subjects = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    ns = f"/api/v1/namespaces/{namespace}"
    await kube.request("POST", f"{ns}/serviceaccounts", body={"metadata": {"name": account}})
    if rules.namespaced:
        await _bind(
            kube, f"{RBAC}/namespaces/{namespace}", "Role", account, rules.namespaced, subjects
        )
    if rules.cluster:
        name = cluster_role_name(account, namespace)
        await _bind(kube, RBAC, "ClusterRole", name, rules.cluster, subjects)


async def _bind(
    kube: Kube, base: str, kind: str, name: str, rules: tuple[JSON, ...], subjects: list[JSON]
) -> None:
    plural = f"{kind.lower()}s"
    await kube.request(
        "POST", f"{base}/{plural}", body={"metadata": {"name": name}, "rules": list(rules)}
    )
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": name},
        "subjects": subjects,
    }
    await kube.request("POST", f"{base}/{kind.lower()}bindings", body=binding)


async def make_account(
    kube: Kube,
    server: str,
    ca_cert: Path,
    namespace: str,
    account: str,
    rules: AccountRules,
    path: Path,
    *,
    seconds: int = 3600,
) -> Path:
    """`bind_account`, then its token's kubeconfig at `path`."""
    await bind_account(kube, namespace, account, rules)
    return await token_kubeconfig(kube, server, ca_cert, namespace, account, path, seconds=seconds)


async def token_kubeconfig(
    kube: Kube,
    server: str,
    ca_cert: Path,
    namespace: str,
    account: str,
    path: Path,
    *,
    seconds: int = 3600,
) -> Path:
    """A kubeconfig at `path` that acts as the ServiceAccount, with a TokenRequest token valid
    for `seconds` (no refresh: a pod's kubelet would rotate it, this file does not)."""
    answer = await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    return write_kubeconfig(path, server, ca_cert, namespace, account, answer["status"]["token"])


def write_kubeconfig(
    path: Path, server: str, ca_cert: Path, namespace: str, account: str, token: str
) -> Path:
    user = f"system:serviceaccount:{namespace}:{account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_cert)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": user, "namespace": namespace}}
        ],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
