"""The Kubernetes permissions the operator needs: exactly the requests its code (and Kopf) make.

The Helm chart's Role and ClusterRole grant these and nothing else; tests/chart/test_rbac.py checks
the rendered rules against this module, and runs the operator on the real kube-apiserver with an
audit of every request, so a new call without a rule here (or a rule nothing calls) fails there.

A rule is `(apiGroup, resource, verbs)`; `resource` is `plural` or `plural/subresource`.
"""

from __future__ import annotations

from dataclasses import dataclass

from permisos.resources import GROUP

Rule = tuple[str, str, tuple[str, ...]]

# In each namespace the operator works in: what its handlers and Kopf's watches do there.
WORK: tuple[Rule, ...] = (
    # Kopf lists and watches requests (its index and handlers); the operator writes only their
    # status, and looks one up by name (a list with a field selector) before it remakes the Job
    # of an admission that lost it.
    (GROUP, "permitrequests", ("list", "watch")),
    (GROUP, "permitrequests/status", ("patch",)),
    # Pools are watched; Kopf patches its finalizer onto them (it runs each pool's admission
    # daemon and recheck timer until the pool goes); the operator writes their status.
    # `runnerpools/scale` is for kubectl and an HPA (whose controller has its own rights).
    (GROUP, "runnerpools", ("list", "watch", "patch")),
    (GROUP, "runnerpools/status", ("patch",)),
    # One Job per attempt; a cancelled or never-started attempt's Job is deleted.
    ("batch", "jobs", ("list", "watch", "create", "delete")),
    # Runner pods are only read, for their states and termination messages.
    ("", "pods", ("list", "watch")),
    # Kopf posts the Events of each transition.
    ("", "events", ("create",)),
)

# Kopf's peering: the replicas watch their peering object (Kopf to pause and resume, the operator
# to know whether it is the active one) and write only their own, by name (`resourceNames`).
NAMESPACED_PEERING_READ: Rule = ("kopf.dev", "kopfpeerings", ("list", "watch"))
CLUSTER_PEERING_READ: Rule = ("kopf.dev", "clusterkopfpeerings", ("list", "watch"))
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
            cluster=(*WORK, CLUSTER_PEERING_READ, CRD_OBSERVATION),
            own_peering=CLUSTER_PEERING_WRITE,
        )
    return Grants(
        namespaced=(*WORK, NAMESPACED_PEERING_READ),
        cluster=(),
        own_peering=NAMESPACED_PEERING_WRITE,
    )
