"""`make run`: the control loop on this machine, on the sandbox's stand-ins.

Starts the Kubernetes API emulator with the CRDs, creates the default RunnerPool and a sample
PermitRequest, and runs the operator against it until Ctrl-C. Nothing runs the Jobs yet (the local
Job executor comes with the one-command platform), so the sample request stops at Running with its
Job created: enough to watch admission, Events and metrics with kubectl.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.generic_resource import create_namespaced_resource

from permisos.resources import GROUP, VERSION
from permisos_sandbox.kubeapi import KubeApiServer

ROOT = Path(__file__).resolve().parents[2]
RunnerPool = create_namespaced_resource(GROUP, VERSION, "RunnerPool", "runnerpools")
PermitRequest = create_namespaced_resource(GROUP, VERSION, "PermitRequest", "permitrequests")


async def _seed(kubeconfig: Path) -> None:
    client = AsyncClient(KubeConfig.from_file(str(kubeconfig)), namespace="default")
    try:
        for obj in (
            RunnerPool.from_dict({"metadata": {"name": "default"}, "spec": {"replicas": 2}}),
            PermitRequest.from_dict(
                {
                    "metadata": {"name": "sample-0001"},
                    "spec": {
                        "applicationId": "sample-0001",
                        "secretName": "sample-0001-applicant",
                        "vehicle": {
                            "plates": "ABC1234",
                            "make": "Nissan",
                            "line": "Versa",
                            "modelYear": 2021,
                            "serviceType": "particular",
                        },
                    },
                }
            ),
        ):
            with contextlib.suppress(ApiError):
                await client.create(obj)
    finally:
        await client.close()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001, help="Kubernetes API emulator port")
    parser.add_argument("--metrics-port", type=int, default=8080)
    parser.add_argument("--state", type=Path, default=ROOT / "var", help="kubeconfig and logs")
    args = parser.parse_args(argv)
    args.state.mkdir(parents=True, exist_ok=True)
    kubeconfig = args.state / "kubeconfig"

    server = KubeApiServer(crd_paths=[ROOT / "crds"])
    await server.start(host="127.0.0.1", port=args.port)
    server.write_kubeconfig(kubeconfig)
    await _seed(kubeconfig)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PERMISOS_OPERATOR_STANDALONE": "true",
        "PERMISOS_OPERATOR_METRICS_HOST": "127.0.0.1",
        "PERMISOS_OPERATOR_METRICS_PORT": str(args.metrics_port),
        "PERMISOS_OPERATOR_LIVENESS_ENDPOINT": "http://127.0.0.1:8081/healthz",
    }
    log_path = args.state / "operator.log"
    with log_path.open("ab") as log:
        operator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "permisos_operator", env=env, stdout=log, stderr=log
        )
    print(
        f"Kubernetes API emulator: {server.url}\n"
        f"Operator metrics:        http://127.0.0.1:{args.metrics_port}/metrics\n"
        f"Operator log:            {log_path}\n\n"
        f"Try:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  kubectl get permitrequests,runnerpools\n"
        f"  kubectl describe permitrequest sample-0001\n"
        f"  kubectl scale runnerpool/default --replicas=4\n\n"
        f"Ctrl-C stops everything.",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = asyncio.create_task(operator.wait())
    try:
        await asyncio.wait(
            [exited, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
        )
    finally:
        if operator.returncode is None:
            operator.terminate()
            try:
                await asyncio.wait_for(exited, 15)
            except TimeoutError:
                operator.kill()
                await exited
        await server.stop()
    if operator.returncode not in (0, -signal.SIGTERM, None):
        print(f"the operator exited with {operator.returncode}; see {log_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
