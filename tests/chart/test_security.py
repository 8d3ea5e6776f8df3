"""Every pod the chart (or the operator, from the chart's RunnerPool) makes is restricted, bounded,
and fenced in by a NetworkPolicy that allows only what it uses."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from permisos.resources import PermitRequestSpec, RunnerPoolSpec
from permisos_operator.jobs import job_manifest
from permisos_operator.settings import OperatorSettings

from .conftest import NAMESPACE, RELEASE, Rendered
from .podsecurity import restricted_violations
from .test_render import KUBE_VERSION

Pod = tuple[str, dict[str, str], dict[str, Any]]
JOB_KINDS = ("Job", "CronJob")


def runner_pod(rendered: Rendered) -> Pod:
    """The pod of an attempt's Job, as the operator builds it from the chart's RunnerPool."""
    pool = rendered.get("RunnerPool", rendered.values["runnerPool"]["name"])
    job = job_manifest(
        name="app-1-a1",
        namespace=NAMESPACE,
        request="app-1",
        request_uid="0b7c6c1e-0000-4000-8000-000000000001",
        attempt=1,
        spec=PermitRequestSpec(application_id="app-1", secret_name="app-1-applicant"),
        pool=RunnerPoolSpec.model_validate(pool["spec"]),
        settings=OperatorSettings(),
    )
    template = job["spec"]["template"]
    return "Job/app-1-a1 (runner)", template["metadata"]["labels"], template["spec"]


def all_pods(rendered: Rendered) -> list[Pod]:
    pods = rendered.pods()
    if rendered.of_kind("RunnerPool"):
        pods.append(runner_pod(rendered))
    return pods


def test_every_pod_passes_the_restricted_profile(rendered: Rendered) -> None:
    pods = all_pods(rendered)
    assert len(pods) >= 6
    failures = {where: restricted_violations(spec) for where, _, spec in pods}
    assert {where: found for where, found in failures.items() if found} == {}


def test_the_runner_job_is_a_valid_job_without_a_token(renders: dict[str, Rendered]) -> None:
    _, _, spec = runner_pod(renders["production"])
    assert spec["automountServiceAccountToken"] is False
    pool = renders["production"].get("RunnerPool", "default")["spec"]
    (container,) = spec["containers"]
    assert container["resources"] == pool["resources"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "app-1-a1"},
        "spec": {"template": {"metadata": {}, "spec": spec}},
    }
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["containers"][0]["securityContext"].update(privileged=True), "is privileged"),
        (
            lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation is not false",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].update(runAsNonRoot=False),
            "may run as root",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
            "does not drop ALL capabilities",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(add=["NET_RAW"]),
            "adds capabilities ['NET_RAW']",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].update(
                seccompProfile={"type": "Unconfined"}
            ),
            "seccompProfile Unconfined",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
            "root filesystem is writable",
        ),
        (lambda s: s["containers"][0]["resources"].pop("limits"), "has no memory limit"),
        (lambda s: s.update(hostNetwork=True), "hostNetwork is true"),
        (
            lambda s: s["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
            "volume host is a hostPath",
        ),
        (
            lambda s: s["volumes"].__setitem__(0, {"name": "tmp", "configMap": {"name": "x"}}),
            "writes to /tmp, which is not an emptyDir",
        ),
    ],
)
def test_the_profile_check_catches_each_violation(
    renders: dict[str, Rendered], change: Any, expected: str
) -> None:
    """The check above can fail: each broken copy of the API's pod is reported."""
    api = renders["default"].get("Deployment", f"{RELEASE}-permisos-api")
    spec = copy.deepcopy(api["spec"]["template"]["spec"])
    change(spec)
    assert any(expected in found for found in restricted_violations(spec))


def test_only_the_api_operator_and_uninstall_hook_hold_a_kubernetes_token(
    rendered: Rendered,
) -> None:
    holders = set()
    for where, _, spec in rendered.pods():
        account = spec.get("serviceAccountName")
        assert account, f"{where} runs as the namespace's default ServiceAccount"
        if spec.get("automountServiceAccountToken") is not False:
            holders.add(account)
    # Runner Jobs run as the runner's own account (the RunnerPool names it), token-less twice over.
    if rendered.of_kind("RunnerPool"):
        runner_spec = runner_pod(rendered)[2]
        assert runner_spec["serviceAccountName"] == f"{RELEASE}-permisos-runner"
        assert runner_spec["automountServiceAccountToken"] is False
    assert holders == {
        f"{RELEASE}-permisos-api",
        f"{RELEASE}-permisos-operator",
        f"{RELEASE}-permisos-uninstall",
    }
    runner = rendered.get("ServiceAccount", f"{RELEASE}-permisos-runner")
    assert runner["automountServiceAccountToken"] is False
    bound = {
        subject["name"]
        for binding in rendered.of_kind("RoleBinding", "ClusterRoleBinding")
        for subject in binding["subjects"]
    }
    assert bound == holders


# --- NetworkPolicies -----------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policy_of(rendered: Rendered, labels: dict[str, str]) -> dict[str, Any]:
    matching = [
        p for p in rendered.of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)
    ]
    assert len(matching) == 1, f"{[p['metadata']['name'] for p in matching]} select {labels}"
    spec: dict[str, Any] = matching[0]["spec"]
    return spec


def endpoint_rule(endpoint: dict[str, Any]) -> dict[str, Any]:
    """The egress rule the values of one external endpoint should give."""
    rule: dict[str, Any] = {"ports": endpoint["ports"]}
    if endpoint["to"]:
        rule["to"] = endpoint["to"]
    return rule


def pods_of(rendered: Rendered, component: str) -> dict[str, Any]:
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "permisos",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": component,
            }
        }
    }


def test_every_pod_is_fenced_by_exactly_one_policy_both_ways(rendered: Rendered) -> None:
    for _, labels, _ in all_pods(rendered):
        assert policy_of(rendered, labels)["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("name", ["production", "staging"])  # the default values have no pool
def test_the_runner_reaches_only_dns_storage_and_the_portal(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    np = rendered.values["networkPolicy"]
    _, labels, _ = runner_pod(rendered)
    policy = policy_of(rendered, labels)
    assert policy["ingress"] == []
    if rendered.values["simulators"]["portal"]["enabled"]:
        portal = {"ports": [{"port": 8090, "protocol": "TCP"}], "to": [pods_of(rendered, "portal")]}
    else:
        portal = endpoint_rule(np["portal"])
    assert policy["egress"] == [endpoint_rule(np["dns"]), endpoint_rule(np["s3"]), portal]


def test_the_operator_reaches_only_dns_and_the_kube_api(rendered: Rendered) -> None:
    """It has no database: the API mirrors the phases."""
    np = rendered.values["networkPolicy"]
    labels = pods_of(rendered, "operator")["podSelector"]["matchLabels"]
    policy = policy_of(rendered, labels)
    assert policy["egress"] == [endpoint_rule(np["dns"]), endpoint_rule(np["kubeApi"])]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_the_api_reaches_what_it_uses(rendered: Rendered) -> None:
    values = rendered.values
    np = values["networkPolicy"]
    labels = pods_of(rendered, "api")["podSelector"]["matchLabels"]
    policy = policy_of(rendered, labels)
    expected = [np["dns"], np["kubeApi"], np["database"], np["s3"]]
    rules = [endpoint_rule(e) for e in expected]
    if values["simulators"]["payments"]["enabled"]:
        rules.append(
            {"ports": [{"port": 12111, "protocol": "TCP"}], "to": [pods_of(rendered, "payments")]}
        )
    else:
        rules.append(endpoint_rule(np["stripe"]))
    if values["smtp"]["host"]:
        rules.append(endpoint_rule(np["smtp"]))
    assert policy["egress"] == rules


def test_scheduled_jobs_cannot_reach_the_kubernetes_api(rendered: Rendered) -> None:
    np = rendered.values["networkPolicy"]
    jobs = [
        labels
        for where, labels, _ in rendered.pods()
        if where.split("/")[0] in JOB_KINDS and labels["app.kubernetes.io/component"] != "uninstall"
    ]
    assert len(jobs) == 4  # the migration and three CronJobs
    for labels in jobs:
        policy = policy_of(rendered, labels)
        assert policy["ingress"] == []
        assert endpoint_rule(np["kubeApi"]) not in policy["egress"]
        assert endpoint_rule(np["database"]) in policy["egress"]


def test_the_uninstall_hook_reaches_only_dns_and_the_kube_api(rendered: Rendered) -> None:
    np = rendered.values["networkPolicy"]
    policy = policy_of(rendered, pods_of(rendered, "uninstall")["podSelector"]["matchLabels"])
    assert policy["ingress"] == []
    assert policy["egress"] == [endpoint_rule(np["dns"]), endpoint_rule(np["kubeApi"])]


def test_only_runners_reach_the_portal_simulator(renders: dict[str, Rendered]) -> None:
    staging = renders["staging"]
    labels = pods_of(staging, "portal")["podSelector"]["matchLabels"]
    policy = policy_of(staging, labels)
    assert policy["egress"] == []
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "permisos-browser-runner"}}}
    ]
    _, runner_labels, _ = runner_pod(staging)
    assert selects(ingress["from"][0]["podSelector"], runner_labels)


def test_the_api_accepts_traffic_only_from_the_configured_peers(
    renders: dict[str, Rendered],
) -> None:
    production = renders["production"]
    labels = pods_of(production, "api")["podSelector"]["matchLabels"]
    (ingress,) = policy_of(production, labels)["ingress"]
    assert ingress["from"] == production.values["networkPolicy"]["api"]["ingressFrom"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
