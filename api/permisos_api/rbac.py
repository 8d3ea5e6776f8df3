"""The Kubernetes permissions the API needs, in its own namespace only: exactly what it calls.

The Helm chart's Role for the API's ServiceAccount grants these and nothing else;
tests/chart/test_rbac.py checks the rendered Role against this list and runs the dispatcher, the
mirror and the readiness probe on the real kube-apiserver with an audit of every request they make.

A rule is `(apiGroup, resource, verbs)`.
"""

from __future__ import annotations

from permisos.resources import GROUP

Rule = tuple[str, str, tuple[str, ...]]

RULES: tuple[Rule, ...] = (
    # The dispatcher creates each PermitRequest and, when it already exists (409), reads it for its
    # uid; /readyz reads a name that never exists to see that the API server answers. The mirror
    # lists and watches them, and patches their finalizers: it adds its own to a request made
    # without it, and removes it from a deleted one once the final state is in the database.
    (GROUP, "permitrequests", ("create", "get", "list", "watch", "patch")),
    # The applicant Secret: created first, then patched (never read) with its owner reference to
    # the PermitRequest, and with the current data when it already existed; each patch is a JSON
    # patch that first tests the Secret is this application's. No `get`; but a patch answers with
    # the whole object, so this still exposes any Secret of the namespace whose name is known.
    # Secret names are per application, so `resourceNames` cannot narrow this.
    ("", "secrets", ("create", "patch")),
    # The admin console shows the RunnerPools (replicas, queue, the portal's state); reading only.
    (GROUP, "runnerpools", ("list",)),
)
