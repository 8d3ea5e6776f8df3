"""The operator's writes to the Kubernetes API, and Kopf's login, on `permisos.kube`.

One configuration for both: Kopf's watches and these writes authenticate from the same kubeconfig
or ServiceAccount token, loaded by the official client. Every status write carries the
resourceVersion the decision was made from, so a decision taken on a stale view fails with 409
Conflict instead of overwriting a newer state.
"""

from __future__ import annotations

from typing import Any

import kopf

from permisos.kube import JSON, MERGE_PATCH, Kube, KubeError
from permisos.resources import API_VERSION

Body = dict[str, Any]


class Conflict(Exception):
    """The object changed since the decision was made; decide again from the fresh object."""


class Gone(Exception):
    """The object no longer exists."""


def request_path(namespace: str, name: str = "", subresource: str = "") -> str:
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/permitrequests"
    return path + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")


def pool_path(namespace: str, name: str, subresource: str = "") -> str:
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/runnerpools/{name}"
    return path + (f"/{subresource}" if subresource else "")


def jobs_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")


class Writer:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def close(self) -> None:
        await self.kube.close()

    async def _patch(self, path: str, patch: Body) -> Body:
        try:
            return await self.kube.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except KubeError as error:
            if error.status == 409:
                raise Conflict(error.message) from error
            if error.status == 404:
                raise Gone(error.message) from error
            raise

    async def write_status(
        self, namespace: str, name: str, resource_version: str, old: Body, new: Body
    ) -> Body:
        """Replaces the status with `new`, if the object is still at `resource_version`."""
        status: Body = {k: None for k in old if k not in new}
        status.update(new)
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return await self._patch(request_path(namespace, name, "status"), patch)

    async def write_pool_status(self, namespace: str, name: str, status: Body) -> Body:
        return await self._patch(pool_path(namespace, name, "status"), {"status": status})

    async def create_job(self, manifest: Body) -> Body | None:
        """Creates the Job; one that already exists is the same attempt, so that is success."""
        try:
            return await self.kube.request(
                "POST", jobs_path(manifest["metadata"]["namespace"]), body=manifest
            )
        except KubeError as error:
            if error.status == 409:
                return None
            raise

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await self.kube.request(
                "DELETE", jobs_path(namespace, name), query={"propagationPolicy": "Background"}
            )
        except KubeError as error:
            if error.status != 404:
                raise

    async def is_current(self, namespace: str, name: str, resource_version: str) -> bool:
        """Whether the PermitRequest is still at `resource_version` (neither changed nor gone):
        a list by name, the verb Kopf's watch already needs."""
        found: JSON = await self.kube.request(
            "GET", request_path(namespace), query={"fieldSelector": f"metadata.name={name}"}
        )
        versions = [item["metadata"].get("resourceVersion") for item in found.get("items") or []]
        return versions == [resource_version]


async def connection_info(kube: Kube) -> kopf.ConnectionInfo:
    """What Kopf needs to log in, read from the official client's loaded configuration."""
    config = kube.configuration
    # The loader's refresh hook runs here: a rotated ServiceAccount token is read again.
    header = await config.get_api_key_with_prefix("BearerToken", alias="authorization")
    scheme, _, token = str(header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=str(config.host),
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or ("Bearer" if token else None),
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )
