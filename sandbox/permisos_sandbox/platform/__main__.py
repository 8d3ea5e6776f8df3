"""`make run` / `make up`: the whole platform on this machine, and the demo of one permit.

Without --up: starts everything, runs the demo (register, apply, pay at OXXO, follow the permit,
download its PDFs), stops everything and exits 0, or 1 saying what failed. With --up: the same,
then leaves everything running and prints how to use it until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import fields
from pathlib import Path

from . import release
from .applicant import DemoError
from .children import PartFailed
from .demo import run_demo
from .stack import Platform, PlatformConfig


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = PlatformConfig()
    parser = argparse.ArgumentParser(
        prog="python -m permisos_sandbox.platform", description=__doc__
    )
    parser.add_argument("--up", action="store_true", help="stay up after the demo")
    parser.add_argument("--no-demo", action="store_true", help="with --up: skip the demo")
    parser.add_argument("--state-dir", type=Path, default=defaults.state_dir)
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL URL; empty: a PostgreSQL server of the platform's own, started afresh",
    )
    parser.add_argument("--runners", type=int, default=defaults.runners, help="RunnerPool size")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds the demo may take")
    for f in fields(PlatformConfig):
        if f.name.endswith("_port"):
            flag = "--" + f.name.replace("_", "-")
            parser.add_argument(flag, type=int, default=getattr(defaults, f.name))
    return parser.parse_args(argv)


def usage(p: Platform) -> str:
    ns = p.config.namespace
    return f"""
The platform is up: the Helm release `permisos` on the local Kubernetes control plane (the real
kube-apiserver), its pods run by the node agent at addresses of {p.config.pod_network}.
  API (interactive docs)     {p.api_url}/docs   (the Service permisos-api, forwarded)
  Portal simulator           {p.portal_url}/login   (user operador, password secreto)
  Payments simulator         {p.payments_url}
  S3 (moto)                  {p.s3_url}
  PostgreSQL                 {p.database_url}  (also in {p.database_url_file})
  Mail (SMTP catcher)        {p.outbox}
  Logs                       {p.logs} (this machine's servers), kubectl logs (the pods')

kubectl and helm work against it:
  export KUBECONFIG={p.kubeconfig}
  helm status permisos -n {ns}
  kubectl get deploy,pods,cronjobs -n {ns} -o wide
  kubectl logs deploy/permisos-operator -n {ns}
  kubectl get permitrequests,runnerpools,jobs -n {ns}
  kubectl describe permitrequest <name> -n {ns}
  kubectl scale runnerpool/default --replicas=4 -n {ns}
  helm upgrade permisos charts/permisos -n {ns} --reuse-values --set api.logLevel=DEBUG
  helm uninstall permisos -n {ns} --wait --cascade foreground
  (helm is the one built with the control plane: {release.helm_binary()};
   kubectl is the virtual environment's: {Path(sys.executable).with_name("kubectl")})

Ctrl-C stops everything."""


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    config = PlatformConfig(
        state_dir=args.state_dir,
        database_url=args.database_url,
        runners=args.runners,
        **{k: v for k, v in vars(args).items() if k.endswith("_port")},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    platform = Platform(config)
    try:
        print(f"Starting the platform (logs in {config.state_dir / 'logs'})", flush=True)
        await _until(asyncio.create_task(platform.start()), stop, None)
        print("All parts are up.", flush=True)
        if not (args.up and args.no_demo):
            demo = asyncio.create_task(
                run_demo(platform, config.state_dir / "permits", within=args.timeout)
            )
            await _until(demo, stop, platform)
        if args.up:
            print(usage(platform), flush=True)
            await _until(asyncio.create_task(stop.wait()), stop, platform)
        return 0
    except (PartFailed, DemoError) as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        return 130
    except Exception as error:  # anything else still ends in one clear line, and a cleanup
        print(f"\nFAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        print("Stopping every part...", flush=True)
        await platform.stop()


async def _until(
    work: asyncio.Task[object], stop: asyncio.Event, platform: Platform | None
) -> None:
    """Waits for `work`; Ctrl-C cancels it, and a part that dies on its own fails it."""
    while not work.done():
        if stop.is_set():
            work.cancel()
            raise asyncio.CancelledError
        if platform is not None:
            platform.check_alive()
        await asyncio.wait([work], timeout=0.5)
    work.result()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
