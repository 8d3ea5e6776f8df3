"""Faults of the cluster's side: processes killed, pods deleted, the node agent and the control
plane's parts crashed and started again. Each returns what it did (pods and process ids, never
personal data) once the part it hit is back, and undoes itself in `finally`."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

from permisos.kube import JSON, KubeError
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform import Platform

from .recovery import (
    Log,
    Skipped,
    component,
    container_pid,
    operator_leader,
    pods,
    release_ready,
    requests_in_flight,
    running,
    serving,
    undo,
    wait_for,
)

RUNNERS = "app.kubernetes.io/name=permisos-browser-runner,permisosdigitales.mx/permitrequest"
BACK_WITHIN = 180.0  # seconds a killed part has to come back before the run says so
IN_FLIGHT_WAIT = 20.0  # seconds an API kill waits for a request in flight on its target


def _restarts(pod: JSON) -> int:
    return sum(
        int(s.get("restartCount") or 0) for s in pod["status"].get("containerStatuses") or []
    )


def _ready(pod: JSON) -> bool:
    conditions = pod["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class ClusterFaults:
    def __init__(self, platform: Platform, log: Log) -> None:
        self.platform = platform
        self.log = log
        # When each kind last hit, after finding its target (which may take a while).
        self.hit_at: dict[str, float] = {}

    @property
    def control_plane(self) -> ControlPlane:
        kubernetes = self.platform.kubernetes
        assert kubernetes is not None and kubernetes.control_plane is not None
        return kubernetes.control_plane

    async def _release_ready(self) -> None:
        await release_ready(self.platform, BACK_WITHIN)

    async def _delete_pod(self, meta: JSON, grace: int | None = None) -> None:
        """As `kubectl delete pod` (with `--grace-period` if given), of this very pod (its uid)."""
        options: JSON = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        options["preconditions"] = {"uid": meta["uid"]}
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        await self.platform.kube.request("DELETE", path, body=options)

    async def operator_leader_kill(self, rng: random.Random, hold: float) -> str:
        """SIGKILL of the active replica's process while a standby runs, then its pod deleted
        at once (grace 0), as Chaos Mesh's pod-kill: the ReplicaSet's fresh pod is the next
        standby. A container killed in place every 10-20 s would be restarted with a kubelet's
        crash back-off (CrashLoopBackOff) and soon leave no standby to take over. Back when
        another process leads (the standby, as Kopf's peering picks)."""
        leader = await wait_for(lambda: operator_leader(self.platform), 10)
        pid = container_pid(leader, b"permisos_operator") if leader else None
        if leader is None or pid is None:
            raise Skipped("no active operator replica found")
        name = leader["metadata"]["name"]

        async def standby() -> JSON | None:
            others = [
                p
                for p in await pods(self.platform, component("operator"))
                if p["metadata"]["name"] != name and running(p)
            ]
            live = [p for p in others if container_pid(p, b"permisos_operator") is not None]
            return live[0] if live else None

        if await wait_for(standby, 10) is None:
            raise Skipped("no standby operator replica running")
        began = time.monotonic()
        self.hit_at["operator-leader-kill"] = time.time()
        os.kill(pid, signal.SIGKILL)
        deleted = "pod deleted"
        try:
            await self._delete_pod(leader["metadata"], grace=0)
        except KubeError as error:  # the apiserver away (its own fault): restarted in place
            deleted = f"pod left ({error})"[:80]

        async def successor() -> JSON | None:
            found = await operator_leader(self.platform)
            return found if found and container_pid(found, b"permisos_operator") != pid else None

        after = await wait_for(successor, BACK_WITHIN)
        if after is None:
            return f"{name} (pid {pid}) killed, {deleted}; none active in {BACK_WITHIN:.0f} s"
        took = time.monotonic() - began
        now = after["metadata"]["name"]
        return f"{name} (pid {pid}) killed, {deleted}; {now} active after {took:.1f} s"

    async def runner_pod_delete(self, rng: random.Random, hold: float) -> str:
        """A running browser-runner pod of a PermitRequest deleted through the API, as
        `kubectl delete pod` (its grace period, then SIGKILL); the operator sees the attempt end."""

        async def attempts() -> list[JSON] | None:
            found = [p for p in await pods(self.platform, RUNNERS) if running(p)]
            return found or None

        candidates = await wait_for(attempts, max(hold, 5.0))
        if not candidates:
            raise Skipped("no runner pod was running")
        pod = rng.choice(sorted(candidates, key=lambda p: p["metadata"]["name"]))
        meta = pod["metadata"]
        self.hit_at["runner-pod-delete"] = time.time()
        await self._delete_pod(meta)
        return f"pod {meta['name']} deleted"

    async def node_agent_restart(self, rng: random.Random, hold: float) -> str:
        """The node agent SIGKILLed (its containers die with it) and started again on its state
        directory; back when the release's Deployments are ready again."""
        kubernetes = self.platform.kubernetes
        assert kubernetes is not None and kubernetes.node is not None
        node = kubernetes.node
        began = time.monotonic()
        try:
            # To its end even if cancelled meanwhile: a half-done restart is a dead node.
            registered = await undo(kubernetes.restart_node())
        finally:
            if not node.alive():  # the restart itself failed
                await undo(asyncio.to_thread(node.start))
        await self._release_ready()
        took = time.monotonic() - began
        return f"node agent killed; Node Ready in {registered:.1f} s, release ready in {took:.1f} s"

    async def _crash(self, part: str, hold: float) -> float:
        """SIGKILL of a control plane part, `hold` seconds down, then started again with the
        same flags, ports and data; the seconds its start took."""
        cp = self.control_plane
        try:
            # To its end even if cancelled meanwhile, so that the start below comes after it.
            await undo(asyncio.to_thread(cp.kill_component, part))
            await asyncio.sleep(hold)
        finally:
            back = await undo(asyncio.to_thread(cp.start_component, part, 120.0))
        return back

    async def apiserver_down(self, rng: random.Random, hold: float) -> str:
        """kube-apiserver SIGKILLed for `hold` seconds, then started with the same flags."""
        back = await self._crash("kube-apiserver", hold)
        began = time.monotonic()
        await self._release_ready()
        took = time.monotonic() - began
        return f"kube-apiserver down {hold:.0f} s; ready in {back:.1f} s, release in {took:.1f} s"

    async def etcd_restart(self, rng: random.Random, hold: float) -> str:
        """etcd SIGKILLed and started again (after `hold`, 0 by default) on its data directory;
        kube-apiserver reconnects by itself."""
        back = await self._crash("etcd", hold)
        began = time.monotonic()
        if await wait_for(lambda: serving(self.control_plane), BACK_WITHIN) is None:
            return (
                f"etcd restarted in {back:.1f} s; kube-apiserver not ready in {BACK_WITHIN:.0f} s"
            )
        await self._release_ready()
        took = time.monotonic() - began
        return f"etcd restarted in {back:.1f} s; release ready in {took:.1f} s"

    async def api_replica_kill(self, rng: random.Random, hold: float) -> str:
        """SIGKILL of one ready API container's process mid-request: once its /metrics shows a
        request in flight (or after IN_FLIGHT_WAIT without one); back when that pod's
        restarted container is ready again."""

        async def ready() -> list[tuple[JSON, int]] | None:
            found = [p for p in await pods(self.platform, component("api")) if _ready(p)]
            pids = [(p, container_pid(p, b"permisos_api")) for p in found if running(p)]
            return [(p, pid) for p, pid in pids if pid is not None] or None

        targets = await wait_for(ready, 10)
        if not targets:
            raise Skipped("no ready API replica found")
        pod, pid = rng.choice(sorted(targets, key=lambda t: t[0]["metadata"]["name"]))
        name, uid, restarts = pod["metadata"]["name"], pod["metadata"]["uid"], _restarts(pod)

        async def busy() -> int | None:
            return await requests_in_flight(pod) or None

        in_flight = await wait_for(busy, IN_FLIGHT_WAIT, every=0.05)
        began = time.monotonic()
        self.hit_at["api-replica-kill"] = time.time()
        os.kill(pid, signal.SIGKILL)
        killed = f"{name} (pid {pid}) killed with {in_flight or 'no'} request(s) in flight"

        async def back() -> JSON | None:
            for found in await pods(self.platform, component("api")):
                same = found["metadata"]["uid"] == uid
                if same and _restarts(found) > restarts and _ready(found):
                    return found
            return None

        if await wait_for(back, BACK_WITHIN) is None:
            return f"{killed}; not ready again within {BACK_WITHIN:.0f} s"
        return f"{killed}; ready again after {time.monotonic() - began:.1f} s"
