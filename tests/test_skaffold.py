"""skaffold.yaml against the Dockerfiles and the chart.

No skaffold or cluster runs here, so the deploy is replayed as skaffold does it: its profile
patches applied, each setValueTemplates entry expanded with a build's IMAGE_REPO_/IMAGE_TAG_
variables and every entry passed like `helm --set` (Helm's own parser), then the chart is
validated against its schema and rendered by Helm's engine (helm-python-sdk).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python as helm
import jsonpatch
import pytest
import yaml

from tests.test_images import (
    BY_ARTIFACT,
    IMAGES,
    ImageSpec,
    dockerfile,
    entry_module,
    image_imports,
    in_packages,
    module_index,
    runnable,
)

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "permisos"
# Where each image goes in the chart's values.
VALUES_KEY = {
    "permisos-api": "api",
    "permisos-operator": "operator",
    "permisos-browser-runner": "runner",
    "permisos-sandbox": "simulators",
}
# What `skaffold run --default-repo=dev` would push (no registry host: none may be written here).
DEFAULT_REPO = "dev"
NAMESPACE = "staging"

Manifest = dict[str, Any]


def skaffold(profile: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text(encoding="utf-8"))
    if profile is None:
        return config
    [chosen] = [p for p in config.get("profiles", []) if p["name"] == profile]
    patched: dict[str, Any] = jsonpatch.apply_patch(config, chosen.get("patches", []))
    for key, value in chosen.items():  # what a profile sets besides patches replaces the base
        if key not in ("name", "patches", "activation"):
            patched[key] = value
    return patched


def release(config: dict[str, Any]) -> dict[str, Any]:
    releases = config["deploy"]["helm"]["releases"]
    assert len(releases) == 1
    found: dict[str, Any] = releases[0]
    return found


def template_name(artifact: str) -> str:
    """Skaffold's suffix for an artifact's template variables: - and / become _."""
    return re.sub(r"[-/]", "_", artifact)


def built(artifact: str) -> dict[str, str]:
    """The template variables of one built artifact, with an inputDigest-like tag."""
    name = template_name(artifact)
    tag = hashlib.sha256(artifact.encode()).hexdigest()
    return {
        f"IMAGE_REPO_{name}": f"{DEFAULT_REPO}/{artifact}",
        f"IMAGE_TAG_{name}": tag,
        f"IMAGE_DIGEST_{name}": "",
    }


def reference(artifact: str) -> str:
    variables = built(artifact)
    name = template_name(artifact)
    return f"{variables[f'IMAGE_REPO_{name}']}:{variables[f'IMAGE_TAG_{name}']}"


def expand(template: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        assert match.group(1) in variables, f"{template}: no build gives {match.group(1)}"
        return variables[match.group(1)]

    assert re.fullmatch(r"(?:[^{}]|\{\{\s*\.\w+\s*\}\})*", template), f"{template}: not simple"
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", value, template)


def merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def helm_values(config: dict[str, Any]) -> dict[str, Any]:
    """What skaffold's `--set` flags amount to, parsed by Helm's own strvals."""
    variables = {k: v for spec in IMAGES for k, v in built(spec.artifact).items()}
    rel = release(config)
    values: dict[str, Any] = {}
    for key, raw in sorted(rel.get("setValues", {}).items()):
        # skaffold keeps setValues as strings (`true` -> "true"); Helm types them again.
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        merge(values, helm.parse_set_string(f"{key}={text}"))
    for key, template in sorted(rel.get("setValueTemplates", {}).items()):
        merge(values, helm.parse_set_string(f"{key}={expand(template, variables)}"))
    return values


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, profile: str | None) -> list[Manifest]:
    config = skaffold(profile)
    values = helm_values(config)
    chart.validate_schema(chart.merge_values(values))
    files = chart.render(values, name=release(config)["name"], namespace=NAMESPACE, is_install=True)
    return [
        doc
        for path, text in sorted(files.items())
        if not path.endswith(".txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


PROFILES = pytest.mark.parametrize("profile", [None, "dev"], ids=["default", "dev"])


def images_in(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images_in(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from images_in(item)


# Where each kind of workload keeps its pod spec.
POD_SPEC = {
    "Deployment": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def containers(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload, container) of every container of every pod the chart defines."""
    for m in manifests:
        if m["kind"] not in POD_SPEC:
            continue
        pod: Any = m
        for key in POD_SPEC[m["kind"]]:
            pod = pod[key]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield f"{m['kind']}/{m['metadata']['name']}", container


def test_api_version_and_kind() -> None:
    config = skaffold()
    assert config["kind"] == "Config"
    match = re.fullmatch(r"skaffold/v4beta(\d+)", config["apiVersion"])
    assert match and int(match.group(1)) >= 11, config["apiVersion"]


def test_artifacts_are_the_dockerfiles_on_disk() -> None:
    artifacts = skaffold()["build"]["artifacts"]
    built_images = {a["image"]: (a["context"], a["docker"]["dockerfile"]) for a in artifacts}
    assert len(built_images) == len(artifacts), "an image is built twice"
    assert built_images == {spec.artifact: (".", spec.dockerfile) for spec in IMAGES}
    on_disk = {str(p.relative_to(ROOT)) for p in ROOT.glob("*/Dockerfile")}
    assert {dockerfile for _, dockerfile in built_images.values()} == on_disk
    assert set(VALUES_KEY) == set(built_images)


def test_tags_never_become_numbers() -> None:
    # Helm's --set turns an all-digit tag into a number, which the chart's schema refuses; git
    # commit tags can be all digits, input digests (64 hex digits) practically never are.
    assert skaffold()["build"]["tagPolicy"] == {"inputDigest": {}}
    assert helm.parse_set_string("t=1234567") == {"t": 1234567}


def test_each_image_sets_its_chart_values() -> None:
    templates = release(skaffold())["setValueTemplates"]
    expected = {}
    for artifact, key in VALUES_KEY.items():
        name = template_name(artifact)
        expected[f"{key}.image.repository"] = f"{{{{.IMAGE_REPO_{name}}}}}"
        expected[f"{key}.image.tag"] = f"{{{{.IMAGE_TAG_{name}}}}}"
    assert templates == expected


def dig(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted}: not in values.yaml"
        node = node[part]
    return node


@PROFILES
def test_every_value_skaffold_sets_exists_in_the_chart(profile: str | None) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    rel = release(skaffold(profile))
    for key in [*rel.get("setValueTemplates", {}), *rel.get("setValues", {})]:
        # A leaf: setting a key that is a map would replace the whole map.
        assert not isinstance(dig(defaults, key), dict | list), key


@PROFILES
def test_built_images_run_in_every_pod(chart: helm.Chart, profile: str | None) -> None:
    manifests = render(chart, profile)
    found = set(images_in(manifests))
    ours = {reference(spec.artifact) for spec in IMAGES}
    assert found <= ours, f"not built by skaffold: {found - ours}"
    # Without the simulators there is no portal, so no RunnerPool either; dev has it all.
    absent = {reference("permisos-browser-runner"), reference("permisos-sandbox")}
    assert found == (ours if profile == "dev" else ours - absent)


def test_dev_pods_run_commands_of_their_images(chart: helm.Chart) -> None:
    by_reference = {reference(spec.artifact): spec for spec in IMAGES}
    seen = set()
    for workload, container in containers(render(chart, "dev")):
        spec: ImageSpec = by_reference[container["image"]]
        seen.add(spec.artifact)
        df = dockerfile(spec)
        argv = container.get("command") or df.entry_argv(container.get("args"))
        module, _ = entry_module(argv)
        assert module in module_index(), f"{workload}: python -m {module}: no such module"
        package = module_index()[module].name == "__init__.py"
        target = f"{module}.__main__" if package else module
        assert target in image_imports(spec).modules and in_packages(target, spec), workload
        assert runnable(target), f"{workload}: {module} is not a command"
        # The image writes under its HOME and TMPDIR: on a read-only root they must be volumes.
        if container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            mounts = [PurePosixPath(m["mountPath"]) for m in container.get("volumeMounts", [])]
            env = df.final.env()
            for path in {env["HOME"], env["TMPDIR"]}:
                assert any(PurePosixPath(path).is_relative_to(m) for m in mounts), workload
    assert seen == set(BY_ARTIFACT) - {"permisos-browser-runner"}  # the operator runs that one


def service_urls(manifests: list[Manifest]) -> set[str]:
    return {
        f"http://{m['metadata']['name']}:{port['port']}"
        for m in manifests
        if m["kind"] == "Service"
        for port in m["spec"]["ports"]
    }


def test_dev_profile_points_the_api_and_the_pool_at_the_simulators(chart: helm.Chart) -> None:
    manifests = render(chart, "dev")
    urls = service_urls(manifests)
    [pool] = [m for m in manifests if m["kind"] == "RunnerPool"]
    assert pool["spec"]["portal"]["url"] in urls
    api_env = {
        e["name"]: e.get("value")
        for workload, container in containers(manifests)
        if workload.startswith("Deployment/") and container["image"] == reference("permisos-api")
        for e in container.get("env", [])
    }
    assert api_env["PERMISOS_API_STRIPE_API_BASE"] in urls
    portal = [m for m in manifests if m["metadata"]["name"].endswith("-portal")]
    assert {m["kind"] for m in portal} >= {"Deployment", "Service"}


def test_dev_port_forwards_name_services_of_the_release(chart: helm.Chart) -> None:
    urls = service_urls(render(chart, "dev"))
    forwards = skaffold("dev")["portForward"]
    assert forwards
    for forward in forwards:
        assert forward["resourceType"] == "service"
        assert f"http://{forward['resourceName']}:{forward['port']}" in urls, forward


def test_default_values_leave_the_simulators_off() -> None:
    # The profile is what turns them on; a plain `skaffold run` deploys production's shape.
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert dig(defaults, "simulators.portal.enabled") is False
    assert dig(defaults, "simulators.payments.enabled") is False
    values = helm_values(skaffold("dev"))
    assert values["simulators"]["portal"]["enabled"] is True
    assert values["simulators"]["payments"]["enabled"] is True
    assert helm_values(skaffold()).get("simulators", {}).keys() == {"image"}
