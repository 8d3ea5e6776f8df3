"""The Kubernetes API on plain JSON dicts, over the official client's asyncio transport.

`kubernetes.aio` loads kubeconfigs and in-cluster credentials, refreshes tokens, does TLS and
authentication; its generated per-kind methods are not needed for code that already speaks the
API's JSON, so this module sends requests by path (`/api/v1/namespaces/ns/pods/name`) and hands
back the decoded bodies. Failures raise `KubeError` with the API's Status.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(Exception):
    """An answer other than 2xx: `status` is the HTTP code, `reason` the Status's reason."""

    def __init__(self, status: int, body: bytes | str) -> None:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        try:
            document = json.loads(text)
        except ValueError:
            document = {}
        self.status = status
        self.reason = str(document.get("reason") or "") if isinstance(document, dict) else ""
        message = document.get("message") if isinstance(document, dict) else None
        self.message = str(message or text[:500])
        super().__init__(f"{status} {self.reason}: {self.message}")


def fmt_time(moment: datetime) -> str:
    """RFC 3339 at second precision, as Kubernetes writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Kube:
    """One authenticated connection pool to one API server."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        self.configuration = configuration
        self.api = k8s.ApiClient(configuration)

    @classmethod
    async def from_kubeconfig(
        cls, path: Path | str | None = None, *, connections: int | None = None
    ) -> Kube:
        """From a kubeconfig file; without one, those `KUBECONFIG` names (or ~/.kube/config).
        `connections` caps the connections (and requests in flight) to the API server."""
        configuration = k8s.Configuration(connection_pool_maxsize=connections)
        # Read now: the client's own default is `KUBECONFIG` as it was when it was imported.
        default = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        # The client's configuration loaders and close() carry no annotations.
        await k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(path) if path else default,
            client_configuration=configuration,
            persist_config=False,
        )
        return cls(configuration)

    @classmethod
    async def from_environment(cls, *, connections: int | None = None) -> Kube:
        """As kubectl finds its cluster: the pod's ServiceAccount inside a cluster, else the
        kubeconfig."""
        configuration = k8s.Configuration(connection_pool_maxsize=connections)
        try:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except k8s_config.ConfigException:  # not in a pod: no service host, or no token
            return await cls.from_kubeconfig(connections=connections)
        return cls(configuration)

    async def close(self) -> None:
        await self.api.close()  # type: ignore[no-untyped-call]

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str | None,
        request_timeout: float | None,
        preload: bool,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        request = await self.api.param_serialize(
            method,
            path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return await self.api.call_api(
            *request, _request_timeout=request_timeout, _preload_content=preload
        )

    async def _answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str | None,
        request_timeout: float | None,
    ) -> bytes:
        answer = await self._send(method, path, query, body, content_type, request_timeout, True)
        data = bytes(await answer.read())
        if not 200 <= answer.status < 300:
            raise KubeError(answer.status, data)
        return data

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = 30.0,
    ) -> JSON:
        data = await self._answer(method, path, query, body, content_type, request_timeout)
        return json.loads(data) if data else {}

    async def get(self, path: str, **query: Any) -> JSON | None:
        """The object, or None when the API says 404."""
        try:
            return await self.request("GET", path, query=query)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int = 300, **query: Any
    ) -> AsyncGenerator[tuple[str, JSON], None]:
        """(type, object) events of one watch request, with bookmarks, until the server ends it.
        A 410 Gone arrives as an ERROR event whose object is the Status."""
        answer = await self._send(
            "GET",
            path,
            {
                **query,
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_seconds,
            },
            None,
            None,
            None,
            False,
        )
        response = answer.response
        try:
            if not 200 <= response.status < 300:
                raise KubeError(response.status, await response.read())
            async for line in response.content:
                if line.strip():
                    event = json.loads(line)
                    yield str(event.get("type")), event.get("object") or {}
        finally:
            response.release()


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
