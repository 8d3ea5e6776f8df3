"""A Service of the cluster on a loopback port of this machine, as `kubectl port-forward svc/…`
or a load balancer gives: each connection goes to one ready endpoint of the Service, read from
its EndpointSlices (which the real endpoint-slice controller keeps from the pods' readiness),
so a rolling upgrade moves new connections to the new pods. The node agent routes no Service
but `kubernetes`; the machine reaches pods at their addresses on the pod network."""

from __future__ import annotations

import asyncio
import logging
import random

from permisos.kube import Kube
from permisos_sandbox.relay import relay

log = logging.getLogger("permisos.platform")

SLICES = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


class ServiceForward:
    def __init__(
        self, kube: Kube, namespace: str, service: str, port_name: str, host: str, port: int
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.port_name = port_name
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._last: list[tuple[str, int]] = []

    async def start(self) -> ServiceForward:
        self._server = await asyncio.start_server(self._connect, self.host, self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def endpoints(self) -> list[tuple[str, int]]:
        """The ready endpoints' addresses and the Service port's target port."""
        found = await self.kube.get(
            SLICES.format(namespace=self.namespace),
            labelSelector=f"kubernetes.io/service-name={self.service}",
        )
        ready = []
        for endpoint_slice in (found or {}).get("items") or []:
            ports = [
                p["port"]
                for p in endpoint_slice.get("ports") or []
                if p.get("name", "") == self.port_name and p.get("port")
            ]
            for endpoint in endpoint_slice.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") and ports:
                    ready += [(address, ports[0]) for address in endpoint["addresses"]]
        return ready

    async def _current(self) -> list[tuple[str, int]]:
        """The ready endpoints; while the apiserver does not answer, the last ones it gave, as
        kube-proxy's rules and a load balancer's targets outlive a control plane outage."""
        try:
            # Briefly: an apiserver without its etcd holds requests until its own timeout.
            self._last = await asyncio.wait_for(self.endpoints(), 2.0)
        except Exception as error:  # the apiserver down or restarting: keep serving
            log.info(
                "service %s: endpoints not read (%s); using the last known", self.service, error
            )
        return self._last

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A moment without a ready endpoint (a pod starting, a roll) is waited out briefly, as a
        # load balancer's connection draining would.
        for _ in range(100):
            endpoints = await self._current()
            if endpoints:
                await relay(reader, writer, random.choice(endpoints))  # noqa: S311 (balancing)
                return
            await asyncio.sleep(0.1)
        log.warning("service %s has no ready endpoint: connection closed", self.service)
        writer.close()
