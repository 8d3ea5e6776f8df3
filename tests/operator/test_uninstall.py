"""The chart's pre-delete hook (`permisos_operator.uninstall`) on the real kube-apiserver, with no
operator running: what only the operator's finalizer holds is let go after the wait, what another
finalizer holds is reported and left alone. The hook run by Helm with a live operator is in
tests/chart/test_release.py."""

from __future__ import annotations

import time

from permisos_operator.uninstall import KOPF_FINALIZER, release
from tests.namespaces import Namespace, runner_pool

OTHER = "example.com/keep-me"


async def test_without_an_operator_only_its_own_finalizer_is_removed(ns: Namespace) -> None:
    await ns.create(
        "runnerpools",
        {**runner_pool("alone"), "metadata": {"name": "alone", "finalizers": [KOPF_FINALIZER]}},
    )
    await ns.create(
        "runnerpools",
        {
            **runner_pool("shared"),
            "metadata": {"name": "shared", "finalizers": [KOPF_FINALIZER, OTHER]},
        },
    )
    await ns.create(
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "plain"}},
    )
    paths = [
        ns.path("runnerpools", "alone"),
        ns.path("runnerpools", "shared"),
        ns.path("kopfpeerings", "plain"),
        ns.path("runnerpools", "never-made"),
    ]
    started = time.monotonic()
    left = await release(ns.kube, paths, within=1.0, finalizer=KOPF_FINALIZER)
    assert left == [ns.path("runnerpools", "shared")]
    assert time.monotonic() - started < 30
    assert await ns.get("runnerpools", "alone") is None
    assert await ns.get("kopfpeerings", "plain") is None
    shared = await ns.get("runnerpools", "shared")
    assert shared is not None
    assert shared["metadata"]["finalizers"] == [OTHER]
    assert shared["metadata"]["deletionTimestamp"]
    await ns.patch("runnerpools", "shared", {"metadata": {"finalizers": None}})
