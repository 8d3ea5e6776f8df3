"""`python -m permisos_operator.uninstall`: the chart's pre-delete hook.

`helm uninstall` deletes the operator, its RBAC and the release's custom objects in one sweep, so
an object the operator holds a finalizer on (Kopf's, on the objects it runs daemons for) would
stay Terminating forever: by the time the operator sees it deleted, it may no longer patch it. The
hook runs first: it deletes those objects while the operator still runs, waits for it to let them
go, and strips only the operator's finalizer from what is left when no operator answers (none
runs, or its replicas are scaled to 0): that finalizer guards nothing but the operator's own tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from permisos.kube import MERGE_PATCH, Kube, KubeError
from permisos.logs import configure as configure_logs

KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

log = logging.getLogger("permisos.operator.uninstall")


async def delete(kube: Kube, path: str) -> None:
    try:
        await kube.request("DELETE", path)
    except KubeError as error:
        if error.status != 404:
            raise


async def wait_gone(kube: Kube, paths: list[str], within: float) -> list[str]:
    """The paths still present after `within` seconds."""
    deadline = time.monotonic() + within
    left = list(paths)
    while True:
        left = [path for path in left if await kube.get(path) is not None]
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.5)


async def strip_finalizer(kube: Kube, path: str, finalizer: str) -> None:
    """Removes one finalizer, keeping the others; the resourceVersion makes a concurrent change
    fail (409) instead of being overwritten, and the next read tries again."""
    while body := await kube.get(path):
        finalizers = body["metadata"].get("finalizers") or []
        if finalizer not in finalizers:
            return
        patch = {
            "metadata": {
                "resourceVersion": body["metadata"]["resourceVersion"],
                "finalizers": [f for f in finalizers if f != finalizer],
            }
        }
        try:
            await kube.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
            return
        except KubeError as error:
            if error.status == 404:
                return
            if error.status != 409:
                raise


async def release(kube: Kube, paths: list[str], within: float, finalizer: str) -> list[str]:
    """Deletes each of `paths` in turn (a RunnerPool before the peering object, whose deletion
    pauses Kopf), waits for the operator to let it go, else strips `finalizer` from it; returns
    what still remains, held by someone else's finalizer."""
    left = []
    for path in paths:
        await delete(kube, path)
        if not await wait_gone(kube, [path], within):
            continue
        log.warning("no operator let %s go within %.0f s; removing its finalizer", path, within)
        await strip_finalizer(kube, path, finalizer)
        left += await wait_gone(kube, [path], 10.0)
    return left


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="API paths of the objects to release")
    parser.add_argument(
        "--within", type=float, default=60.0, help="seconds to wait for the operator"
    )
    parser.add_argument("--finalizer", default=KOPF_FINALIZER)
    args = parser.parse_args(argv)
    configure_logs("INFO", "json")
    kube = await Kube.from_environment()
    try:
        left = await release(kube, args.paths, args.within, args.finalizer)
    finally:
        await kube.close()
    for path in left:
        log.error("%s is still held by another finalizer; it was not deleted", path)
    if not left:
        log.info("released %d objects", len(args.paths))
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
