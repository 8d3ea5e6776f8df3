"""The Kubernetes permissions the operator needs: exactly the requests its code (and Kopf) make.

The Helm chart's Role and ClusterRole grant these and nothing else; tests/chart/test_rbac.py checks
the rendered rules against this module, and runs the operator against the API emulator with an
audit of every request, so a new call without a rule here (or a rule nothing calls) fails there.

A rule is `(apiGroup, resource, verbs)`; `resource` is `plural` or `plural/subresource`.
"""

from __future__ import annotations

from dataclasses import dataclass

from permisos.resources import GROUP

Rule = tuple[str, str, tuple[str, ...]]

# In each namespace the operator works in: what the controller and Kopf's watches do there.
WORK: tuple[Rule, ...] = (
    # Kopf watches requests; the controller re-lists them and sets its finalizer (a merge patch).
    (GROUP, "permitrequests", ("list", "watch", "patch")),
    (GROUP, "permitrequests/status", ("patch",)),
    # Pools are read; the operator writes their status. `runnerpools/scale` is for kubectl and an
    # HPA (whose controller has its own rights), never called by the operator.
    (GROUP, "runnerpools", ("list", "watch")),
    (GROUP, "runnerpools/status", ("patch",)),
    # One Job per attempt; a cancelled or never-started attempt's Job is deleted.
    ("batch", "jobs", ("list", "watch", "create", "delete")),
    # Runner pods are only read, for their states and termination messages.
    ("", "pods", ("list", "watch")),
    # One Event per transition (Kopf's own event posting is turned off).
    ("", "events", ("create",)),
)

# Kopf watches both peering kinds wherever it works (handlers.py runs the controller as a daemon of
# either), but writes only its own peering object: `resourceNames` holds the peering name.
PEERING_READ: tuple[Rule, ...] = (
    ("kopf.dev", "kopfpeerings", ("list", "watch")),
    ("kopf.dev", "clusterkopfpeerings", ("list", "watch")),
)
NAMESPACED_PEERING_WRITE: Rule = ("kopf.dev", "kopfpeerings", ("patch",))
CLUSTER_PEERING_WRITE: Rule = ("kopf.dev", "clusterkopfpeerings", ("patch",))

# Kopf's observation of the cluster's CRDs (to notice resources appearing or changing), only when
# it works cluster-wide. In named namespaces handlers.py turns Kopf's scanning off: no CRDs and no
# namespaces are listed or watched, the resources are those discovery shows at start.
CRD_OBSERVATION: Rule = ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch"))


@dataclass(frozen=True)
class Grants:
    """The operator's rules for one deployment scope.

    `namespaced` goes into a Role in each watched namespace (empty when cluster-wide), `cluster`
    into a ClusterRole, and `own_peering` (restricted to the peering object's name) into the Role
    when namespaced, the ClusterRole when cluster-wide.
    """

    namespaced: tuple[Rule, ...]
    cluster: tuple[Rule, ...]
    own_peering: Rule


def grants(cluster_wide: bool) -> Grants:
    """What the operator needs when it watches the whole cluster, or only named namespaces."""
    if cluster_wide:
        # Kopf lists and watches everything across all namespaces in one request per resource.
        return Grants(
            namespaced=(),
            cluster=(*WORK, *PEERING_READ, CRD_OBSERVATION),
            own_peering=CLUSTER_PEERING_WRITE,
        )
    # The one cluster read left: the cluster peering kind, which Kopf watches for the daemon
    # registered on it even when the operator peers through its namespace's KopfPeering.
    return Grants(
        namespaced=(*WORK, PEERING_READ[0]),
        cluster=(PEERING_READ[1],),
        own_peering=NAMESPACED_PEERING_WRITE,
    )
