"""Prometheus's scrape targets, found as the chart's ServiceMonitors find them: every endpoint of
the API Service's port `http` and of the operator metrics Service's port `metrics`, read from
the EndpointSlices (ready or not, as Prometheus's Kubernetes discovery lists them). Debian's
Prometheus is built without Kubernetes discovery, so this loop does its part and writes the
targets to the files Prometheus's file discovery watches; while the kube-apiserver is down the
last targets stay, as they do in Prometheus."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from permisos.kube import JSON
from permisos_sandbox.platform import Platform
from permisos_sandbox.platform.release import RELEASE

SLICES = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class Job:
    name: str  # the job label the rules name
    service: str
    port: str  # the Service port the ServiceMonitor names

    def file(self, folder: Path) -> Path:
        return folder / f"{self.name}.json"


JOBS = (
    Job("permisos-api", f"{RELEASE}-api", "http"),
    Job("permisos-operator", f"{RELEASE}-operator-metrics", "metrics"),
)


def scrape_configs(folder: Path) -> list[dict[str, Any]]:
    return [
        {
            "job_name": job.name,
            "file_sd_configs": [{"files": [str(job.file(folder))], "refresh_interval": "2s"}],
        }
        for job in JOBS
    ]


def targets(slices: list[JSON], port_name: str, namespace: str) -> list[dict[str, Any]]:
    """One target group per endpoint, labelled as the Prometheus Operator labels them."""
    found = []
    for endpoint_slice in slices:
        ports = [p["port"] for p in endpoint_slice.get("ports") or [] if p.get("name") == port_name]
        for endpoint in endpoint_slice.get("endpoints") or []:
            pod = (endpoint.get("targetRef") or {}).get("name", "")
            for address in endpoint.get("addresses") or []:
                found += [
                    {
                        "targets": [f"{address}:{port}"],
                        "labels": {"namespace": namespace, "pod": pod},
                    }
                    for port in ports
                ]
    return sorted(found, key=lambda group: group["targets"])


class TargetWriter:
    def __init__(self, platform: Platform, folder: Path) -> None:
        self.platform = platform
        self.folder = folder
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> TargetWriter:
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        await self.write_once()
        self._task = asyncio.create_task(self._loop())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def write_once(self) -> None:
        namespace = self.platform.config.namespace
        for job in JOBS:
            listed = await self.platform.kube.get(
                SLICES.format(namespace=namespace),
                labelSelector=f"kubernetes.io/service-name={job.service}",
            )
            groups = targets((listed or {}).get("items") or [], job.port, namespace)
            await asyncio.to_thread(_replace, job.file(self.folder), json.dumps(groups))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(EVERY_SECONDS)
            try:
                await self.write_once()
            except Exception:  # noqa: S112 (the apiserver down: the last targets stay)
                continue


def _replace(path: Path, text: str) -> None:
    """Atomically, so Prometheus never reads half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)
