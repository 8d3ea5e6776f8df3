"""The real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler of the pinned release (`build.py`), as processes of their own.

    with ControlPlane(directory) as cp:
        cp.admin_kubeconfig   # cluster-admin (a client certificate in system:masters)
        cp.kubeconfig_for("jane", groups=("dev",))  # any other user, RBAC decides

The apiserver serves TLS with a CA of its own (`pki.py`), authenticates client certificates and
ServiceAccount tokens, authorizes with Node and RBAC, and runs the admission plugins of a normal
cluster (PodSecurity and ValidatingAdmissionPolicy among them). An audit log (Metadata level,
requests of non-system users only) records who used which verb. There are no nodes: the node
agent (`permisos_sandbox.node`) registers one.
"""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from permisos_sandbox.ports import free_port

from .build import ensure_built
from .pki import KUBERNETES_SERVICE_IP, SERVICE_CLUSTER_IP_RANGE, KeyPair, Pki

HOST = "127.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Requests by the control plane's own parts and by nodes are left out of the audit log; what
# remains is what the platform's components (and tests) did.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "userGroups": ["system:nodes", "system:serviceaccounts:kube-system"]},
        {
            "level": "None",
            "users": [
                "system:apiserver",
                "system:kube-controller-manager",
                "system:kube-scheduler",
                "system:kube-proxy",
            ],
        },
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {"level": "Metadata"},
    ],
}


class ControlPlaneError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeCredentials:
    kubeconfig: Path
    serving: KeyPair
    client_ca: Path  # verifies the apiserver's client certificate when it asks for logs


class _Component:
    def __init__(self, name: str, command: list[str], log_path: Path) -> None:
        self.name = name
        self.command = command  # kept, so the part can start again as it was (`restart`)
        self.log_path = log_path
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop the parts in order
            )

    def respawn(self) -> None:
        if self.process.poll() is None:
            raise ControlPlaneError(f"{self.name} is still running")
        self.process = self._spawn()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
            raise ControlPlaneError(
                f"{self.name} exited with {self.process.returncode}:\n" + "\n".join(tail)
            )

    def stop(self, grace: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class ControlPlane:
    """Starts on `start()` (or `with`), stops everything and removes its files on `stop()`."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        controllers: str = "*",
        log: Callable[[str], object] = print,
    ):
        """`controllers` is kube-controller-manager's `--controllers` list: `*,-job-controller`
        leaves Jobs to a test that plays their controller, as envtest-based suites do."""
        self._given = directory
        self._controllers = controllers
        self._log = log
        self.directory = Path("/nonexistent")
        self.api_port = 0
        self.etcd_port = 0
        self._components: list[_Component] = []
        self.started_in: dict[str, float] = {}

    # --- what clients use ------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.api_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def ca_cert(self) -> Path:
        return self.pki.ca.cert

    @property
    def audit_log(self) -> Path:
        return self.directory / "logs" / "audit.log"

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig that authenticates as `user` (in `groups`) by client certificate."""
        safe = "".join(c if c.isalnum() or c in "-." else "_" for c in user)
        pair = self.pki.client(f"user-{safe}", user, groups)
        return self._write_kubeconfig(f"{safe}.kubeconfig", user, pair)

    def node_credentials(self, node: str) -> NodeCredentials:
        """What a node agent needs: a kubeconfig as `system:node:<node>` (group system:nodes,
        so the Node authorizer and NodeRestriction apply), and a serving certificate for its
        kubelet endpoint on loopback."""
        safe = "".join(c if c.isalnum() or c in "-." else "_" for c in node)
        user = f"system:node:{node}"
        kubeconfig = self._write_kubeconfig(
            f"node-{safe}.kubeconfig",
            user,
            self.pki.client(f"node-{safe}", user, ("system:nodes",)),
        )
        serving = self.pki.serving(f"node-{safe}-serving", (node,), (HOST,))
        return NodeCredentials(kubeconfig, serving, self.pki.ca.cert)

    def pids(self) -> dict[str, int]:
        """The process id of each running part, by name (for CPU and memory figures)."""
        return {c.name: c.process.pid for c in self._components if c.process.poll() is None}

    def kill_component(self, name: str) -> None:
        """SIGKILL one part, as a crash or an OOM kill would end it; its flags, ports, data and
        certificates stay for `start_component`."""
        self._component(name).kill()

    def stop_component(self, name: str, grace: float = 15.0) -> None:
        """SIGTERM one part (SIGKILL after `grace`), as an operator stops a static pod."""
        self._component(name).stop(grace)

    def start_component(self, name: str, timeout: float = 60.0) -> float:
        """Starts a stopped part again with the same command, so the same ports and data
        directory (etcd keeps every object), and waits until it serves; the seconds taken."""
        component = self._component(name)
        if component.process.poll() is not None:
            component.respawn()
        ready = {
            "etcd": self._etcd_healthy,
            "kube-apiserver": self.serving,
        }.get(name, lambda: True)
        began = time.monotonic()
        self._wait(f"{name} (again)", [component], ready, timeout)
        return time.monotonic() - began

    def serving(self) -> bool:
        """Whether kube-apiserver answers ready (which includes reaching etcd)."""
        return self._get("/readyz") == "ok"

    def _component(self, name: str) -> _Component:
        for component in self._components:
            if component.name == name:
                return component
        raise ControlPlaneError(f"no control plane part named {name!r}")

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit log so far, one dict per event."""
        if not self.audit_log.exists():
            return []
        text = self.audit_log.read_text()
        # kube-apiserver may be writing an event now; only lines it has ended are whole.
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # --- life ------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ControlPlane:
        begun = time.monotonic()
        binaries = ensure_built(log=self._log)
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            self.directory = Path(tempfile.mkdtemp(prefix="controlplane-", dir=self._given))
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="permisos-controlplane-"))
        (self.directory / "logs").mkdir()
        try:
            self.pki = Pki(self.directory / "pki")
            self._start_etcd(binaries, timeout)
            self._start_apiserver(binaries, timeout)
            self._start_controllers(binaries, timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in["total"] = time.monotonic() - begun
        return self

    def _run(self, name: str, command: list[str]) -> _Component:
        component = _Component(name, command, self.directory / "logs" / f"{name}.log")
        self._components.append(component)
        return component

    def _wait(
        self, what: str, components: list[_Component], ready: Callable[[], bool], timeout: float
    ) -> None:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            for component in components:
                component.check_alive()
            if ready():
                self.started_in[what] = time.monotonic() - started
                return
            time.sleep(0.1)  # polling servers coming up; there is no event to wait on
        raise ControlPlaneError(f"{what} not ready within {timeout:.0f} s")

    def _start_etcd(self, binaries: Path, timeout: float) -> None:
        self.etcd_port = free_port(HOST)
        peer_port = free_port(HOST)
        etcd = self._run(
            "etcd",
            [
                str(binaries / "etcd"),
                "--name=permisos",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls=http://{HOST}:{self.etcd_port}",
                f"--advertise-client-urls=http://{HOST}:{self.etcd_port}",
                f"--listen-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-cluster=permisos=http://{HOST}:{peer_port}",
                "--unsafe-no-fsync",  # a throw-away cluster: speed over crash safety
                "--log-level=warn",
            ],
        )

        self._wait("etcd", [etcd], self._etcd_healthy, timeout)

    def _etcd_healthy(self) -> bool:
        try:
            url = f"http://{HOST}:{self.etcd_port}/health"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(json.load(answer).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _start_apiserver(self, binaries: Path, timeout: float) -> None:
        self.api_port = free_port(HOST)
        pki = self.pki
        serving = pki.serving(
            "apiserver",
            ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"),
            (HOST, KUBERNETES_SERVICE_IP),
        )
        kubelet_client = pki.client("apiserver-kubelet-client", "kube-apiserver-kubelet-client")
        policy = self.directory / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        apiserver = self._run(
            "kube-apiserver",
            [
                str(binaries / "kube-apiserver"),
                f"--etcd-servers=http://{HOST}:{self.etcd_port}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                # The `kubernetes` Service's endpoint would be this loopback address, which the
                # reconciler refuses; pods on the local node reach 127.0.0.1 directly (the node
                # agent sets KUBERNETES_SERVICE_HOST), so the Service keeps no endpoints.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                # Node agents serve their kubelet endpoint (logs) with certificates of this CA,
                # on the node's InternalIP (loopback; there is no node DNS).
                f"--kubelet-certificate-authority={pki.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.service_account.cert}",
                f"--service-account-signing-key-file={pki.service_account.key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                # On top of the defaults (which include PodSecurity, ValidatingAdmissionPolicy,
                # ServiceAccount, ResourceQuota, …), what kubeadm adds.
                "--enable-admission-plugins=NodeRestriction",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._write_kubeconfig(
            "admin.kubeconfig",
            "kubernetes-admin",
            pki.client("admin", "kubernetes-admin", ("system:masters",)),
        )
        self._wait("kube-apiserver", [apiserver], lambda: self._get("/readyz") == "ok", timeout)

    def _start_controllers(self, binaries: Path, timeout: float) -> None:
        pki = self.pki
        cm_config = self._write_kubeconfig(
            "controller-manager.kubeconfig",
            "system:kube-controller-manager",
            pki.client("controller-manager", "system:kube-controller-manager"),
        )
        scheduler_config = self._write_kubeconfig(
            "scheduler.kubeconfig",
            "system:kube-scheduler",
            pki.client("scheduler", "system:kube-scheduler"),
        )
        manager = self._run(
            "kube-controller-manager",
            [
                str(binaries / "kube-controller-manager"),
                f"--kubeconfig={cm_config}",
                f"--authentication-kubeconfig={cm_config}",
                f"--authorization-kubeconfig={cm_config}",
                f"--bind-address={HOST}",
                "--secure-port=0",
                f"--controllers={self._controllers}",
                "--use-service-account-credentials=true",
                f"--root-ca-file={pki.ca.cert}",
                f"--service-account-private-key-file={pki.service_account.key}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        scheduler = self._run(
            "kube-scheduler",
            [
                str(binaries / "kube-scheduler"),
                f"--kubeconfig={scheduler_config}",
                f"--authentication-kubeconfig={scheduler_config}",
                f"--authorization-kubeconfig={scheduler_config}",
                f"--bind-address={HOST}",
                "--secure-port=0",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        # The ServiceAccount controller has made the default account and the root CA publisher
        # its ConfigMap: the controllers run with their own credentials.
        self._wait(
            "kube-controller-manager",
            [manager, scheduler],
            lambda: bool(
                self._get("/api/v1/namespaces/default/serviceaccounts/default")
                and self._get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
            ),
            timeout,
        )

    def _get(self, path: str) -> str | None:
        """GET as cluster-admin; the body, or None when the apiserver does not answer 200."""
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        admin = self.directory / "pki" / "admin"
        context.load_cert_chain(f"{admin}.crt", f"{admin}.key")
        try:
            with urllib.request.urlopen(  # noqa: S310
                f"{self.server}{path}", timeout=5, context=context
            ) as answer:
                return str(answer.read().decode())
        except (OSError, urllib.error.HTTPError):
            return None

    def _write_kubeconfig(self, filename: str, user: str, pair: KeyPair) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "permisos-local",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                }
            ],
            "contexts": [
                {"name": "permisos-local", "context": {"cluster": "permisos-local", "user": user}}
            ],
            "current-context": "permisos-local",
        }
        path = self.directory / filename
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """The parts in reverse order of start, then the directory (certificates, etcd)."""
        while self._components:
            self._components.pop().stop()
        if self.directory.name.startswith(("controlplane-", "permisos-controlplane-")):
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
