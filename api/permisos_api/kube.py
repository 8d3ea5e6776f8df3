"""The API's Kubernetes client: what the outbox dispatcher writes, what the mirror watches and
what /readyz looks at, through the project's client (`permisos.kube`, the official `kubernetes`
package).

The configuration comes from the environment, as kubectl finds it: the in-cluster service account
when there is one, else the files `KUBECONFIG` names (or ~/.kube/config). Nothing is read or
contacted until a call is made, so a cluster that is down only shows then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from permisos.kube import JSON, Kube, KubeError
from permisos.resources import API_VERSION

from .schemas import Check

# Who wrote a field, in each object's managedFields.
FIELD_MANAGER = "permisos-api"
# Held by the API's mirror: a PermitRequest goes only once its final state is in the database.
FINALIZER = "permisosdigitales.mx/record-outcome"
# A name no PermitRequest can have (names are application ids): /readyz asks for it and expects 404.
PROBE_NAME = "readyz-probe"
# Where the kubelet mounts a pod's ServiceAccount token.
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def configured() -> bool:
    """Whether this process has a cluster configuration at all (nothing is read or contacted)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        return True
    paths = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return any(Path(p).expanduser().is_file() for p in paths.split(os.pathsep) if p)


def permit_requests(namespace: str, name: str = "") -> str:
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/permitrequests"
    return f"{path}/{name}" if name else path


def runner_pools(namespace: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{namespace}/runnerpools"


def secrets(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{path}/{name}" if name else path


class ApiKube:
    """One connection, made on first use; every call has the API's timeout and writes name the
    API as their field manager. `reset()` after a transport failure: the next call connects
    afresh (new credentials and connections, once the API server is back)."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self._client: Kube | None = None
        # Calls at once (the admin console's pages) make one client, not one each.
        self._connecting = asyncio.Lock()

    async def client(self) -> Kube:
        async with self._connecting:
            if self._client is None:
                self._client = await Kube.from_environment()
            return self._client

    async def reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Closing a broken connection may fail too; it is dropped either way.
            with contextlib.suppress(Exception):
                await client.close()

    async def create(self, path: str, body: JSON) -> JSON:
        kube = await self.client()
        return await kube.request(
            "POST",
            path,
            body=body,
            query={"fieldManager": FIELD_MANAGER},
            request_timeout=self.timeout_seconds,
        )

    async def read(self, path: str) -> JSON | None:
        """The object, or None when the API says 404."""
        try:
            return await (await self.client()).request(
                "GET", path, request_timeout=self.timeout_seconds
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def patch(self, path: str, body: Any, content_type: str) -> JSON:
        kube = await self.client()
        return await kube.request(
            "PATCH",
            path,
            body=body,
            content_type=content_type,
            query={"fieldManager": FIELD_MANAGER},
            request_timeout=self.timeout_seconds,
        )


class ReadinessProbe:
    """The Kubernetes API as /readyz sees it: reachable and answering for our namespace.

    Present only when the process has a cluster configuration, so a development API without a
    cluster (and the test suites that run one) stays ready on its database alone. Each check
    connects afresh (a probe every few seconds is cheap), so nothing outlives it.
    """

    def __init__(self, namespace: str, timeout_seconds: float) -> None:
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds

    async def check(self) -> Check:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        kube = ApiKube(self.timeout_seconds)
        try:
            await kube.read(permit_requests(self.namespace, PROBE_NAME))
        except KubeError as error:
            return Check(status="failed", latency_ms=elapsed(), detail=f"HTTP {error.status}")
        except Exception as exc:  # unreachable, TLS, timeout: the kind is enough to go on
            return Check(status="failed", latency_ms=elapsed(), detail=type(exc).__name__)
        finally:
            await kube.reset()
        # 404 (read gives None): the API answered, and knows the CRD.
        return Check(status="ok", latency_ms=elapsed())
