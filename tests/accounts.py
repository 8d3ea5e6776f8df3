"""What tests set up on a control plane: the CRDs, the API's and the operator's ServiceAccounts
with their declared rules and their tokens' kubeconfigs (`permisos_sandbox.platform.accounts`,
as `make run` makes them), and what the audit log says an account did."""

from __future__ import annotations

from pathlib import Path

import yaml

from permisos.kube import Kube
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.accounts import (
    API_ACCOUNT,
    OPERATOR_ACCOUNT,
    AccountRules,
    api_rules,
    make_account,
    operator_rules,
    token_kubeconfig,
)
from permisos_sandbox.platform.kubernetes import CRDS, ROOT, apply_crds, load_crds

# The chart's CRDs: the project's and Kopf's peering kinds.
CHART_CRDS = ROOT / "charts" / "permisos" / "crds"


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
    """A kubeconfig with a one-hour token of an existing ServiceAccount."""
    kube = await Kube.from_kubeconfig(control_plane.admin_kubeconfig)
    try:
        return await token_kubeconfig(
            kube,
            control_plane.server,
            control_plane.ca_cert,
            namespace,
            account,
            directory / f"{namespace}-{account}.kubeconfig",
        )
    finally:
        await kube.close()


async def api_kubeconfig(
    control_plane: ControlPlane, kube: Kube, namespace: str, directory: Path
) -> Path:
    """The API's ServiceAccount in `namespace` with `permisos_api.rbac`'s rules (the chart's
    Role), and a kubeconfig with its token."""
    return await _account(control_plane, kube, namespace, API_ACCOUNT, api_rules(), directory)


async def operator_kubeconfig(
    control_plane: ControlPlane,
    kube: Kube,
    namespace: str,
    directory: Path,
    *,
    cluster_wide: bool,
    peering: str = OPERATOR_ACCOUNT,
) -> Path:
    """The operator's ServiceAccount in `namespace`, bound to what `permisos_operator.rbac`
    declares for its scope (the rules the chart renders) with its peering object's name, and
    a kubeconfig with its token."""
    rules = operator_rules(cluster_wide=cluster_wide, peering=peering)
    return await _account(control_plane, kube, namespace, OPERATOR_ACCOUNT, rules, directory)


async def _account(
    control_plane: ControlPlane,
    kube: Kube,
    namespace: str,
    account: str,
    rules: AccountRules,
    directory: Path,
) -> Path:
    path = directory / f"{namespace}-{account}.kubeconfig"
    cp = control_plane
    return await make_account(kube, cp.server, cp.ca_cert, namespace, account, rules, path)


def audited_grants(control_plane: ControlPlane, user: str) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource[/subresource], verb, namespace) of every request `user` made, as
    kube-apiserver's audit log recorded it."""
    out = set()
    for event in control_plane.audit_events():
        ref = event.get("objectRef")
        if (
            event["user"].get("username") != user
            or not ref
            or event.get("stage") != "ResponseComplete"
        ):
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.add((ref.get("apiGroup", ""), resource, event["verb"], ref.get("namespace", "")))
    return out


def refused(control_plane: ControlPlane, user: str) -> list[str]:
    """The requests of `user` that the authorizer refused (other 403s, such as admission's for
    a namespace being deleted, are not RBAC's)."""
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in control_plane.audit_events()
        if e["user"].get("username") == user
        and (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
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
