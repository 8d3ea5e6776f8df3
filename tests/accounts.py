"""What tests set up on the session's control plane: the CRDs, and the credentials of a
ServiceAccount as a pod would hold them (a TokenRequest token, `kubectl create token`, in a
kubeconfig of its own), and what the audit log says that account did."""

from __future__ import annotations

from pathlib import Path

import yaml

from permisos.kube import Kube
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.kubernetes import apply_crds, load_crds
from tests.cluster import kubectl


async def install_crds(admin_kubeconfig: Path) -> None:
    """The project's CRDs, as the platform installs them: applied, Established and served."""
    kube = await Kube.from_kubeconfig(admin_kubeconfig)
    try:
        await apply_crds(kube, load_crds())
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
