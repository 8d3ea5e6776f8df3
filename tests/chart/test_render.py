"""The chart lints clean, renders, and every object it renders is one Kubernetes would accept."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from fastapi.routing import APIRoute

from permisos.resources import RunnerPoolSpec
from permisos_api.web import ROUTERS, STATIC_PATH
from permisos_sandbox.platform.kubernetes import load_crds

from .conftest import CHART, NAMESPACE, RELEASE, VALUE_FILES, Rendered, clean, render, values_of

# A recent Kubernetes; the chart's kubeVersion allows 1.30 and later.
KUBE_VERSION = "1.31.0"
# Our own kinds (and Kopf's), validated against their CRDs' schemas below instead.
CRD_GROUPS = {"permisosdigitales.mx", "kopf.dev"}
# The Prometheus Operator's kinds (templates/monitoring/) have no schema in kubernetes-validate,
# which only knows the core API; they are left to that operator's own admission.
MONITORING_GROUP = "monitoring.coreos.com"
WARNING = 2  # lint severities: 1 info, 2 warning, 3 error


def _group(manifest: dict[str, Any]) -> str:
    api_version: str = manifest["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


@pytest.mark.parametrize("name", list(VALUE_FILES))
def test_lint_strict_is_clean(name: str) -> None:
    report = helm.lint(CHART, values_of(name), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    """The lint above can fail: the same call on a copy with one broken template reports it."""
    broken = tmp_path / "permisos"
    shutil.copytree(CHART, broken)
    service = broken / "templates" / "api" / "service.yaml"
    service.write_text(service.read_text().replace("{{ .Values.api.service.port }}", "{{ .Nope"))
    report = helm.lint(broken, None, strict=True, namespace=NAMESPACE)
    assert any("service.yaml" in str(m) for m in report["messages"] + report["errors"])


def test_every_values_set_renders_the_whole_platform(renders: dict[str, Rendered]) -> None:
    for name, rendered in renders.items():
        kinds = {m["kind"] for m in rendered.manifests}
        assert {"Deployment", "Service", "CronJob", "Job", "NetworkPolicy", "Role"} <= kinds, name
        deployments = {m["metadata"]["name"] for m in rendered.of_kind("Deployment")}
        assert {f"{RELEASE}-permisos-api", f"{RELEASE}-permisos-operator"} <= deployments
    staging = {m["metadata"]["name"] for m in renders["staging"].of_kind("Deployment")}
    assert {f"{RELEASE}-permisos-portal", f"{RELEASE}-permisos-payments"} <= staging


def test_every_manifest_validates_against_the_kubernetes_schemas(rendered: Rendered) -> None:
    checked = 0
    for manifest in rendered.manifests:
        group = _group(manifest)
        if group in CRD_GROUPS or group == MONITORING_GROUP:
            continue
        try:
            kubernetes_validate.validate(clean(manifest), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{manifest['__source']} {manifest['kind']}: {where}: {error.message}")
        checked += 1
    assert checked >= 20


def test_crds_validate_against_the_kubernetes_schema() -> None:
    for crd in load_crds(CHART / "crds"):
        kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


def test_the_default_runnerpool_carries_the_runner_image_and_portal(
    renders: dict[str, Rendered],
) -> None:
    production = renders["production"]
    pool = production.get("RunnerPool", "default")["spec"]
    assert pool["image"] == "permisos/permisos-browser-runner:0.1.0"
    assert pool["imagePullPolicy"] == "Always"
    assert pool["portal"] == {
        "url": "https://portal.example.gob.mx",
        "credentialsSecret": "permisos-portal-account",
        "timeoutSeconds": 90,
        "timeZone": "America/Mexico_City",
        "maintenanceWindows": [{"days": ["Sun"], "start": "23:00", "end": "02:00"}],
        "closedDates": ["2026-12-25", "2027-01-01"],
        "rateLimit": {"attemptsPerMinute": 30},
        "circuitBreaker": {"failureThreshold": 5, "coolDownSeconds": 60, "maxCoolDownSeconds": 900},
    }
    # What the operator reads of it: the same hours and pace.
    portal = RunnerPoolSpec.model_validate(pool).portal
    assert portal.schedule().closed_until(datetime(2026, 12, 25, 12, tzinfo=UTC)) is not None
    assert pool["storage"]["credentialsSecret"] == "permisos-s3"
    assert pool["replicas"] == 6
    staging = renders["staging"].get("RunnerPool", "default")["spec"]
    assert staging["portal"]["url"] == f"http://{RELEASE}-permisos-portal:8090"
    assert staging["image"] == "permisos-browser-runner:0.1.0"


def test_without_a_portal_no_runnerpool_is_made_and_notes_say_so(
    renders: dict[str, Rendered],
) -> None:
    default = renders["default"]
    assert default.of_kind("RunnerPool") == []
    assert "portal.url is empty" in default.notes
    assert "portal.url is empty" not in renders["production"].notes


def test_images_are_repository_and_tag_with_the_app_version_by_default(
    renders: dict[str, Rendered],
) -> None:
    images = {
        container["image"]
        for _, _, spec in renders["staging"].pods()
        for container in spec["containers"]
    }
    assert images == {
        "permisos-api:0.1.0",
        "permisos-operator:0.1.0",
        "permisos-sandbox:0.1.0",
    }


def test_services_other_components_rely_on(rendered: Rendered) -> None:
    api = rendered.get("Service", f"{RELEASE}-permisos-api")
    assert api["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    metrics = rendered.get("Service", f"{RELEASE}-permisos-operator-metrics")
    assert metrics["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    operator = rendered.get("Deployment", f"{RELEASE}-permisos-operator")
    assert metrics["spec"]["selector"] == operator["spec"]["selector"]["matchLabels"]
    assert metrics["spec"]["selector"] == {
        "app.kubernetes.io/name": "permisos",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "operator",
    }
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_operator_runs_with_peering_and_kopf_liveness(rendered: Rendered) -> None:
    operator = rendered.get("Deployment", f"{RELEASE}-permisos-operator")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PERMISOS_OPERATOR_STANDALONE"] == "false"
    peering = rendered.of_kind("KopfPeering", "ClusterKopfPeering")
    assert [p["metadata"]["name"] for p in peering] == [env["PERMISOS_OPERATOR_PEERING_NAME"]]
    probe = container["livenessProbe"]["httpGet"]
    assert env["PERMISOS_OPERATOR_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8081/healthz"
    assert probe["path"] == "/healthz"
    assert {"name": probe["port"], "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    if rendered.values["operator"]["scope"] == "cluster":
        assert peering[0]["kind"] == "ClusterKopfPeering"
        assert env["PERMISOS_OPERATOR_NAMESPACES"] == "[]"
    else:
        assert peering[0]["kind"] == "KopfPeering"
        assert peering[0]["metadata"]["namespace"] == NAMESPACE
        assert env["PERMISOS_OPERATOR_NAMESPACES"] == f'["{NAMESPACE}"]'


def test_secure_defaults(renders: dict[str, Rendered]) -> None:
    default = renders["default"]
    assert default.get("Deployment", f"{RELEASE}-permisos-api")["spec"]["replicas"] == 2
    assert default.get("Deployment", f"{RELEASE}-permisos-operator")["spec"]["replicas"] == 2
    budgets = {p["metadata"]["name"]: p["spec"] for p in default.of_kind("PodDisruptionBudget")}
    assert set(budgets) == {f"{RELEASE}-permisos-api", f"{RELEASE}-permisos-operator"}
    assert all(b["minAvailable"] == 1 for b in budgets.values())
    assert default.of_kind("HorizontalPodAutoscaler") == []
    assert default.of_kind("Ingress") == []
    production = renders["production"]
    hpa = production.get("HorizontalPodAutoscaler", f"{RELEASE}-permisos-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    # The HPA owns the replica count, so the Deployment does not fight it.
    assert "replicas" not in production.get("Deployment", f"{RELEASE}-permisos-api")["spec"]


def test_no_secret_values_are_rendered(rendered: Rendered) -> None:
    """Secrets come by reference only: no Secret objects, and every secret setting is a
    secretKeyRef to the Secret its values name."""
    assert rendered.of_kind("Secret") == []
    values = rendered.values
    expected = {
        "PERMISOS_API_DATABASE_URL": (
            values["database"]["existingSecret"],
            values["database"]["urlKey"],
        ),
        "PERMISOS_API_SIGNING_SECRET": (values["signing"]["existingSecret"], "secret"),
        "PERMISOS_API_STRIPE_SECRET_KEY": (values["stripe"]["existingSecret"], "secret-key"),
        "PERMISOS_API_STRIPE_WEBHOOK_SECRET": (
            values["stripe"]["existingSecret"],
            "webhook-secret",
        ),
    }
    seen: set[str] = set()
    for where, _, spec in rendered.pods():
        for container in spec["containers"]:
            for env in container.get("env", []):
                secretish = any(
                    word in env["name"] for word in ("SECRET", "PASSWORD", "DATABASE_URL", "KEY")
                )
                if secretish:
                    assert "value" not in env, f"{where}: {env['name']} has a literal value"
                    ref = env["valueFrom"]["secretKeyRef"]
                    if env["name"] in expected:
                        assert (ref["name"], ref["key"]) == expected[env["name"]], where
                        seen.add(env["name"])
    assert seen == set(expected)


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(rendered: Rendered) -> None:
    job = rendered.get("Job", f"{RELEASE}-permisos-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "permisos_api.migrate", "upgrade"]
    # Its ServiceAccount must exist before it: a hook of lower weight.
    account = rendered.get("ServiceAccount", job["spec"]["template"]["spec"]["serviceAccountName"])
    assert account["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_the_uninstall_hook_releases_the_pool_then_the_peering_object(
    chart: helm.Chart, scope: str
) -> None:
    """What the pre-delete hook deletes is exactly what the chart made and the operator may hold
    a finalizer on, in that order; its Role reaches those objects by name and no others."""
    rendered = render(
        chart, {"portal": {"url": "https://portal.example.gob.mx"}, "operator": {"scope": scope}}
    )
    job = rendered.get("Job", f"{RELEASE}-permisos-uninstall")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    pool = rendered.get("RunnerPool", "default")
    (peering,) = rendered.of_kind("KopfPeering", "ClusterKopfPeering")
    peering_path = (
        f"/apis/kopf.dev/v1/clusterkopfpeerings/{peering['metadata']['name']}"
        if scope == "cluster"
        else f"/apis/kopf.dev/v1/namespaces/{NAMESPACE}/kopfpeerings/{peering['metadata']['name']}"
    )
    assert container["command"] == [
        *("python", "-m", "permisos_operator.uninstall", "--within=60"),
        f"/apis/permisosdigitales.mx/v1alpha1/namespaces/{NAMESPACE}/runnerpools/default",
        peering_path,
    ]
    assert pool["metadata"]["namespace"] == NAMESPACE
    named = {
        (rule["resources"][0], name)
        for role in rendered.of_kind("Role", "ClusterRole")
        if role["metadata"]["name"].endswith("-uninstall")
        for rule in role["rules"]
        for name in rule["resourceNames"]
    }
    assert named == {
        ("runnerpools", "default"),
        (peering_path.split("/")[-2], peering["metadata"]["name"]),
    }
    for manifest in rendered.manifests:
        # Everything of the hook's is a hook, but its NetworkPolicy, which must fence it from the
        # start (an object of the release).
        if manifest["metadata"]["name"].endswith("-uninstall") and manifest["kind"] != (
            "NetworkPolicy"
        ):
            annotations = manifest["metadata"]["annotations"]
            assert annotations["helm.sh/hook"] == "pre-delete", manifest["kind"]
            assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]


def test_cronjobs_run_the_scheduled_commands(rendered: Rendered) -> None:
    commands = {
        c["metadata"]["name"]: c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
            0
        ]["command"]
        for c in rendered.of_kind("CronJob")
    }
    assert commands == {
        f"{RELEASE}-permisos-reconcile": [
            "python",
            "-m",
            "permisos_api.reconcile",
            "--older-than-minutes",
            "30",
        ],
        f"{RELEASE}-permisos-cleanup": ["python", "-m", "permisos_api.cleanup"],
        f"{RELEASE}-permisos-reminders": ["python", "-m", "permisos_api.reminders"],
    }
    for cron in rendered.of_kind("CronJob"):
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_a_disabled_cronjob_is_not_rendered(chart: helm.Chart) -> None:
    values = {"cronJobs": {"cleanup": {"enabled": False}, "reminders": {"enabled": False}}}
    names = [c["metadata"]["name"] for c in render(chart, values).of_kind("CronJob")]
    assert names == [f"{RELEASE}-permisos-reconcile"]


def test_simulators_are_wired_to_the_api_and_runner(renders: dict[str, Rendered]) -> None:
    staging = renders["staging"]
    api = staging.get("Deployment", f"{RELEASE}-permisos-api")
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        env["PERMISOS_API_STRIPE_API_BASE"]["value"] == f"http://{RELEASE}-permisos-payments:12111"
    )
    payments = staging.get("Deployment", f"{RELEASE}-permisos-payments")
    (container,) = payments["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "permisos_sandbox.payments"]
    penv = {e["name"]: e for e in container["env"]}
    assert penv["PERMISOS_PAYMENTS_WEBHOOK_URL"]["value"] == (
        f"http://{RELEASE}-permisos-api:8000/v1/webhooks/stripe"
    )
    # The simulator signs with the very secret the API verifies with.
    assert (
        penv["PERMISOS_PAYMENTS_WEBHOOK_SECRET"]["valueFrom"]
        == env["PERMISOS_API_STRIPE_WEBHOOK_SECRET"]["valueFrom"]
    )
    portal = staging.get("Deployment", f"{RELEASE}-permisos-portal")
    (container,) = portal["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "permisos_sandbox.portal"]
    assert {"name": "http", "containerPort": 8090, "protocol": "TCP"} in container["ports"]
    # Without the simulators, the API talks to Stripe itself, and browsers load Stripe's own
    # Stripe.js.
    production = renders["production"].get("Deployment", f"{RELEASE}-permisos-api")
    penv = {e["name"]: e for e in production["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "PERMISOS_API_STRIPE_API_BASE" not in penv
    assert penv["PERMISOS_API_STRIPE_JS_URL"]["value"] == "https://js.stripe.com/v3/"


def test_the_publishable_key_reaches_the_api_and_the_simulator(chart: helm.Chart) -> None:
    values = {
        "simulators": {"payments": {"enabled": True}},
        "stripe": {"publishableKey": "pk_test_staging", "jsUrl": "http://pagos.example/v3/"},
        "portal": {"url": "https://portal.example"},
    }
    rendered = render(chart, values)
    api = rendered.get("Deployment", f"{RELEASE}-permisos-api")
    env = {
        e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PERMISOS_API_STRIPE_PUBLISHABLE_KEY"] == "pk_test_staging"
    assert env["PERMISOS_API_STRIPE_JS_URL"] == "http://pagos.example/v3/"
    payments = rendered.get("Deployment", f"{RELEASE}-permisos-payments")
    (container,) = payments["spec"]["template"]["spec"]["containers"]
    penv = {e["name"]: e.get("value") for e in container["env"]}
    assert penv["PERMISOS_PAYMENTS_PUBLISHABLE_KEY"] == "pk_test_staging"


def test_labels_follow_the_shared_helpers(rendered: Rendered) -> None:
    for manifest in rendered.manifests:
        if manifest["__source"].startswith("permisos/templates/monitoring/"):
            continue
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "permisos", manifest["__source"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/component"]


PROBE_TEMPLATE = """\
{{- range $name, $arg := dict "dict" (dict "context" $ "component" "api") "list" (list $ "api") }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: probe-{{ $name }}
  labels:
    {{- include "permisos.labels" $arg | nindent 4 }}
data:
  image: {{ include "permisos.image" (dict "context" $ "image" $.Values.api.image) }}
  selector: {{ include "permisos.selectorLabels" (list $ "operator") | quote }}
{{- end }}
"""


def test_label_helpers_take_a_component_in_either_calling_style(tmp_path: Path) -> None:
    """The helpers other templates (templates/monitoring/) build on, called as documented."""
    copy = tmp_path / "permisos"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "probe.yaml").write_text(PROBE_TEMPLATE)
    with helm.Chart.load(copy) as probe_chart:
        files = probe_chart.render({}, name=RELEASE, namespace=NAMESPACE)
    text = next(t for p, t in files.items() if p.endswith("probe.yaml"))
    probes = {d["metadata"]["name"]: d for d in yaml.safe_load_all(text) if d}
    assert set(probes) == {"probe-dict", "probe-list"}
    for probe in probes.values():
        assert probe["metadata"]["labels"] == {
            "app.kubernetes.io/name": "permisos",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": "api",
            "app.kubernetes.io/part-of": "permisos",
            "app.kubernetes.io/version": "0.1.0",
            "app.kubernetes.io/managed-by": "Helm",
            "helm.sh/chart": "permisos-0.1.0",
        }
        assert yaml.safe_load(probe["data"]["selector"]) == {
            "app.kubernetes.io/name": "permisos",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": "operator",
        }
        assert probe["data"]["image"] == "permisos-api:0.1.0"


def _published(path: str, rules: list[dict[str, Any]]) -> bool:
    """Whether an Ingress path rule takes `path` (Kubernetes' Exact and Prefix matching)."""
    for rule in rules:
        if rule["pathType"] == "Exact" and path == rule["path"]:
            return True
        prefix = rule["path"].rstrip("/")
        if rule["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def test_the_ingress_publishes_the_api_and_the_web_pages_but_not_its_metrics(
    chart: helm.Chart, renders: dict[str, Rendered]
) -> None:
    """/metrics, /healthz, /readyz and /docs live beside /v1 and the pages on the API's port:
    they stay inside; every page a mail or a link leads to goes out."""
    production = renders["production"].of_kind("Ingress")
    bare_host = render(
        chart, {"api": {"ingress": {"enabled": True, "hosts": [{"host": "example.mx"}]}}}
    ).of_kind("Ingress")
    pages = [STATIC_PATH] + [
        route.path for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)
    ]
    assert "/verificar" in pages and "/static" in pages  # the mailed link, the stylesheet
    for ingress in production + bare_host:
        rules = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
        for page in pages:
            assert _published(page.split("{")[0].rstrip("/") or "/", rules), page
        assert _published("/v1/applications", rules)
        for inside in ("/metrics", "/healthz", "/readyz", "/docs", "/openapi.json"):
            assert not _published(inside, rules), inside
    assert production and bare_host
