"""Pod networking for the node agent: a network namespace per pod, as a CNI bridge plugin gives.

Without it every pod shares the machine's network: one address (127.0.0.1), so two pods of one
Deployment cannot listen on the same port. With a pod network (a CIDR, root and iproute2), the
agent makes a bridge holding the CIDR's first address (the pods' gateway), and for each pod a
namespace `pms-<uid>` with a veth pair (`eth0` inside, on the bridge outside), the next free
address, loopback and a default route through the gateway. The pod's containers share that
namespace, as a pod's containers do. The host reaches pods at their addresses; pods reach the
API at the `kubernetes` Service's address (10.96.0.1:443, which the apiserver's certificate
names): the agent holds it on the bridge and forwards it to the apiserver, the part of
kube-proxy this machine needs. Other Services are not routed. Servers of the machine that listen
on loopback only (PostgreSQL, S3, the simulators) are reached at the gateway's address on the
ports the node is given (`host_ports`), relayed to 127.0.0.1, as Docker's host gateway does.

Interfaces and namespaces carry a prefix derived from the node's state directory, so a restarted
agent finds (and removes) what a crashed one left, and two agents never touch each other's.

While no bridge holds the CIDR (a crashed agent's was swept, the new one's not made yet), an
`unreachable` route of the lowest preference keeps pods' addresses off the default route: this
machine's default route ends at an egress filter that answers any connection (HTTP 403 or 404),
where a real cluster's dead pod address fails to connect. The route outlives a crash on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import subprocess
from asyncio import StreamReader, StreamWriter
from collections.abc import Awaitable, Callable
from pathlib import Path

from permisos_sandbox.relay import relay

log = logging.getLogger("permisos.node")

NETNS_DIR = Path("/run/netns")


class NetworkError(RuntimeError):
    """An `ip` command failed; the message is its error."""


def entering(netns: Path) -> tuple[str, ...]:
    """The words that run a command inside the network namespace at `netns`."""
    return ("nsenter", f"--net={netns}", "--")


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class PodNetwork:
    def __init__(
        self,
        cidr: str,
        state_dir: Path,
        api: tuple[str, int],
        service_ip: str,
        host_ports: tuple[int, ...] = (),
    ) -> None:
        self.network = ipaddress.ip_network(cidr)
        hosts = self.network.hosts()
        self.gateway = str(next(hosts))
        self._free = [str(h) for h in hosts]
        digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()
        self.prefix = f"pm{digest[:5]}"  # interface names have at most 15 characters
        self.bridge = f"{self.prefix}br"
        # A bridge without an address of its own takes its lowest port's, so the gateway's MAC
        # would change whenever a pod comes or goes, and the other pods' ARP caches would send
        # to a MAC nobody holds for up to half a minute. A fixed, locally administered one.
        self.bridge_mac = ":".join(["02", *(digest[i : i + 2] for i in range(6, 16, 2))])
        self.service_ip = service_ip
        self._api = api
        self._pods: dict[str, str] = {}  # pod uid -> address
        self.host_ports = host_ports
        self._servers: list[asyncio.Server] = []

    # --- the node's side -------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._sweep)
        try:
            await asyncio.to_thread(self._make_bridge)
            # One agent per machine can hold the Service address (another agent with a pod
            # network, on any state directory, already does: "address already in use").
            self._servers.append(
                await asyncio.start_server(self._to(self._api), self.service_ip, 443)
            )
            for port in self.host_ports:
                to_host = self._to(("127.0.0.1", port))
                self._servers.append(await asyncio.start_server(to_host, self.gateway, port))
        except BaseException:
            await self._close_servers()
            await asyncio.to_thread(self._sweep)
            raise

    def _make_bridge(self) -> None:
        _ip(*self._unreachable("replace"))
        _ip("link", "add", "name", self.bridge, "address", self.bridge_mac, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("addr", "add", f"{self.service_ip}/32", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _sweep(self) -> None:
        """What an earlier agent on this state directory left: its namespaces and bridge."""
        for name in self._namespaces():
            _ip("netns", "delete", name, check=False)
        _ip("link", "delete", self.bridge, check=False)

    def _namespaces(self) -> list[str]:
        if not NETNS_DIR.is_dir():
            return []
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{self.prefix}-"))

    def _unreachable(self, verb: str) -> tuple[str, ...]:
        # The highest metric: the bridge's own route (metric 0) wins while the bridge exists.
        return ("route", verb, "unreachable", str(self.network), "metric", "4294967295")

    async def stop(self) -> None:
        await self._close_servers()
        await asyncio.to_thread(self._sweep)
        await asyncio.to_thread(_ip, *self._unreachable("delete"), check=False)
        self._pods.clear()

    async def _close_servers(self) -> None:
        for server in self._servers:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()

    @staticmethod
    def _to(upstream: tuple[str, int]) -> Callable[[StreamReader, StreamWriter], Awaitable[None]]:
        """A connection handler relaying to `upstream`."""

        async def connection(reader: StreamReader, writer: StreamWriter) -> None:
            await relay(reader, writer, upstream)

        return connection

    # --- a pod's side ----------------------------------------------------------------------

    def namespace(self, uid: str) -> str:
        return f"{self.prefix}-{uid.replace('-', '')[:10]}"

    def path(self, uid: str) -> Path:
        """The pod's network namespace as a file (what `nsenter --net=` takes)."""
        return NETNS_DIR / self.namespace(uid)

    async def attach(self, uid: str) -> str:
        """The pod's namespace and address (the same on a second call)."""
        if uid in self._pods:
            return self._pods[uid]
        if not self._free:
            raise NetworkError(f"no address left in {self.network}")
        address = self._free.pop(0)
        try:
            await asyncio.to_thread(self._make_namespace, uid, address)
        except NetworkError:
            self._free.insert(0, address)
            await asyncio.to_thread(_ip, "netns", "delete", self.namespace(uid), check=False)
            raise
        self._pods[uid] = address
        return address

    def _make_namespace(self, uid: str, address: str) -> None:
        ns = self.namespace(uid)
        outside = f"{self.prefix}{uid.replace('-', '')[:8]}"
        _ip("netns", "add", ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", outside, "master", self.bridge, "up")
        inside = ("netns", "exec", ns, "ip")
        # No IPv6 link-local address: the kernel would add it a second or so after the link is up
        # (after duplicate address detection), and Chromium fails the navigation it is making at
        # that moment with ERR_NETWORK_CHANGED. The pod's network is settled before it starts.
        _ip(*inside, "link", "set", "eth0", "addrgenmode", "none")
        _ip(*inside, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "route", "add", "default", "via", self.gateway)

    async def detach(self, uid: str) -> None:
        """The pod's namespace goes (its veth pair with it); its address is free again."""
        address = self._pods.pop(uid, None)
        await asyncio.to_thread(_ip, "netns", "delete", self.namespace(uid), check=False)
        if address is not None:
            self._free.insert(0, address)
