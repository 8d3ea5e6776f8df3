"""`python -m permisos_sandbox.cluster [up] [--dir DIR]`: the local control plane until Ctrl-C.
`python -m permisos_sandbox.cluster build`: only build the binaries; prints their directory.

`up` builds the binaries first if they are missing, prints the admin kubeconfig and the start-up
times, and on Ctrl-C (or SIGTERM) stops every part and removes its files.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .build import ensure_built
from .controlplane import ControlPlane


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m permisos_sandbox.cluster")
    parser.add_argument("command", nargs="?", choices=("up", "build"), default="up")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where its files go (default: a temporary dir)"
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        # Progress on stderr, the directory on stdout: BIN="$(python -m … build)".
        print(ensure_built(log=_progress))
        return 0
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with ControlPlane(args.dir, log=_progress) as cp:
        times = ", ".join(f"{part} {seconds:.1f} s" for part, seconds in cp.started_in.items())
        print(f"control plane up ({times})", flush=True)
        print(f"export KUBECONFIG={cp.admin_kubeconfig}", flush=True)
        done.wait()
        print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
