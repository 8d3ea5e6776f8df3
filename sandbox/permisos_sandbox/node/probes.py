"""Container probes as the kubelet runs them: httpGet, tcpSocket and exec, with its defaults
(period 10 s, timeout 1 s, success 1, failure 3). Every container shares the node's address, so
a probe's host is loopback unless it names one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from permisos.kube import JSON

from .config import NODE_IP


@dataclass(frozen=True)
class Probe:
    kind: str  # readiness | liveness | startup
    spec: JSON
    ports: Mapping[str, int]  # the container's named ports
    host: str = NODE_IP  # the pod's address, where a probe goes unless it names a host
    enter: tuple[str, ...] = ()  # what runs an exec probe inside the pod's network namespace

    @property
    def initial_delay(self) -> float:
        return float(self.spec.get("initialDelaySeconds") or 0)

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds") or 1)

    @property
    def success_threshold(self) -> int:
        return int(self.spec.get("successThreshold") or 1)

    @property
    def failure_threshold(self) -> int:
        return int(self.spec.get("failureThreshold") or 3)

    def _port(self, action: JSON) -> int:
        port = action.get("port")
        if isinstance(port, int):
            return port
        if str(port).isdigit():
            return int(str(port))
        if str(port) in self.ports:
            return self.ports[str(port)]
        raise ValueError(f"port {port!r} is not a number and no container port has that name")

    async def check(self, env: Mapping[str, str]) -> tuple[bool, str]:
        """One run: success, and the kubelet's words for a failure."""
        try:
            return await asyncio.wait_for(self._check(env), self.timeout)
        except TimeoutError:
            return False, f"{self.title} probe failed: timeout after {self.timeout:g}s"
        except (OSError, ValueError, aiohttp.ClientError) as error:
            return False, f"{self.title} probe failed: {error}"

    @property
    def title(self) -> str:
        return self.kind.capitalize()

    async def _check(self, env: Mapping[str, str]) -> tuple[bool, str]:
        if "httpGet" in self.spec:
            action = self.spec["httpGet"] or {}
            scheme = str(action.get("scheme") or "HTTP").lower()
            host = str(action.get("host") or self.host)
            path = str(action.get("path") or "/")
            url = f"{scheme}://{host}:{self._port(action)}{path}"
            headers = {str(h["name"]): str(h["value"]) for h in action.get("httpHeaders") or []}
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, headers=headers, ssl=False, allow_redirects=False) as answer,
            ):
                if 200 <= answer.status < 400:
                    return True, ""
                return (
                    False,
                    f"{self.title} probe failed: HTTP probe failed with statuscode: "
                    f"{answer.status}",
                )
        if "tcpSocket" in self.spec:
            action = self.spec["tcpSocket"] or {}
            host = str(action.get("host") or self.host)
            _, writer = await asyncio.open_connection(host, self._port(action))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, ""
        if "exec" in self.spec:
            command = [str(w) for w in (self.spec["exec"] or {}).get("command") or []]
            process = await asyncio.create_subprocess_exec(
                *self.enter,
                *command,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await process.communicate()
            finally:
                if process.returncode is None:
                    process.kill()
            if process.returncode == 0:
                return True, ""
            text = output.decode(errors="replace").strip()[:256]
            return False, f"{self.title} probe failed: {text}"
        raise ValueError("the probe has no httpGet, tcpSocket or exec action")


def probes_of(
    container: JSON, host: str = NODE_IP, enter: tuple[str, ...] = ()
) -> dict[str, Probe]:
    ports = {
        str(p["name"]): int(p["containerPort"])
        for p in container.get("ports") or []
        if p.get("name") and p.get("containerPort")
    }
    out: dict[str, Probe] = {}
    for kind in ("startup", "readiness", "liveness"):
        spec = container.get(f"{kind}Probe")
        if spec:
            out[kind] = Probe(kind, spec, ports, host, enter)
    return out
