"""The API's Kubernetes client: what the outbox dispatcher writes and what /readyz looks at.

The configuration comes from the environment, as kubectl finds it: the in-cluster service account
when there is one, else the file named by `KUBECONFIG` (or ~/.kube/config). Loading it does not
touch the network, so a cluster that is down only shows when a call is made.
"""

from __future__ import annotations

import time
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_namespaced_resource

from permisos.resources import GROUP, VERSION

from .schemas import Check

PermitRequest = create_namespaced_resource(GROUP, VERSION, "PermitRequest", "permitrequests")
FIELD_MANAGER = "permisos-api"
# A name no PermitRequest can have (names are application ids): /readyz asks for it and expects 404.
PROBE_NAME = "readyz-probe"


def load_config() -> KubeConfig | None:
    """The cluster's configuration, or None when this process has none at all."""
    try:
        return KubeConfig.from_env()
    except (ConfigError, OSError):
        return None


def async_client(namespace: str, timeout_seconds: float) -> AsyncClient:
    """A client for the dispatcher; raises ConfigError when no configuration is found."""
    config = KubeConfig.from_env()
    return AsyncClient(
        config,
        namespace=namespace,
        timeout=httpx2.Timeout(timeout_seconds),
        field_manager=FIELD_MANAGER,
    )


class ReadinessProbe:
    """The Kubernetes API as /readyz sees it: reachable and answering for our namespace.

    Present only when the process has a cluster configuration, so a development API without a
    cluster (and the test suites that run one) stays ready on its database alone.
    """

    def __init__(self, namespace: str, timeout_seconds: float) -> None:
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds
        self._client: Client | None = None

    @staticmethod
    def configured() -> bool:
        return load_config() is not None

    def _get_client(self) -> Client:
        if self._client is None:
            self._client = Client(
                KubeConfig.from_env(),
                namespace=self.namespace,
                timeout=httpx2.Timeout(self.timeout_seconds),
                field_manager=FIELD_MANAGER,
            )
        return self._client

    def check(self) -> Check:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            self._get_client().get(PermitRequest, PROBE_NAME, namespace=self.namespace)
        except ApiError as error:
            if error.status.code == 404:  # the API answered, and knows the CRD
                return Check(status="ok", latency_ms=elapsed())
            return Check(status="failed", latency_ms=elapsed(), detail=f"HTTP {error.status.code}")
        except Exception as exc:  # unreachable, TLS, timeout: the kind is enough to go on
            return Check(status="failed", latency_ms=elapsed(), detail=type(exc).__name__)
        return Check(status="ok", latency_ms=elapsed())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def as_dict(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return result
