"""A node agent (`python -m permisos_sandbox.node`) as its own process on the session's control
plane, the way a kubelet runs beside a cluster: started, waited on until its Node is Ready and
schedulable, stopped with SIGTERM or killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.node.config import DEFAULT_RUNTIME_ROOT, runtime_dir
from tests.cluster import KUBECTL


class NodeAgentProcess:
    def __init__(
        self,
        control_plane: ControlPlane,
        name: str,
        directory: Path,
        pod_network: str = "",
        host_ports: tuple[int, ...] = (),
    ) -> None:
        self.control_plane = control_plane
        self.pod_network = pod_network
        self.host_ports = host_ports
        self.name = name
        self.directory = directory
        self.state_dir = directory / "state"
        self.log_path = directory / "agent.log"
        self.credentials = control_plane.node_credentials(name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def runtime_dir(self) -> Path:
        return runtime_dir(DEFAULT_RUNTIME_ROOT, self.name, self.state_dir)

    def start(self, timeout: float = 60.0) -> NodeAgentProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        creds = self.credentials
        command = [
            sys.executable,
            "-m",
            "permisos_sandbox.node",
            f"--name={self.name}",
            f"--kubeconfig={creds.kubeconfig}",
            f"--tls-cert={creds.serving.cert}",
            f"--tls-key={creds.serving.key}",
            f"--client-ca={creds.client_ca}",
            f"--state-dir={self.state_dir}",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PERMISOS_NODE_LOG_FORMAT": "text",
                    "PERMISOS_NODE_POD_NETWORK": self.pod_network,
                    "PERMISOS_NODE_HOST_PORTS": json.dumps(list(self.host_ports)),
                },
            )
        self.wait_ready(timeout)
        return self

    def node(self) -> dict[str, Any] | None:
        found = subprocess.run(
            [
                str(KUBECTL),
                "--kubeconfig",
                str(self.control_plane.admin_kubeconfig),
                "get",
                "node",
                self.name,
                "-o",
                "json",
                "--ignore-not-found",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return json.loads(found) if found.strip() else None

    def wait_ready(self, timeout: float) -> None:
        """Until the Node is Ready and carries no taint (the node lifecycle controller takes
        off `not-ready` once it sees the Ready condition), so the scheduler binds pods to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"node agent exited:\n{self.log_path.read_text()[-3000:]}")
            node = self.node()
            if node is not None:
                conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
                if conditions.get("Ready") == "True" and not node["spec"].get("taints"):
                    return
            time.sleep(0.2)  # the agent registers within a second; nothing to wait on but this
        raise AssertionError(f"node {self.name} not Ready within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: an agent crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C or systemd would stop it; its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        return int(self.process.returncode or 0)
