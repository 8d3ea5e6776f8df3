"""The Prometheus rules: promtool accepts them and their unit tests pass, every alert is tested
both firing and quiet, carries what on-call needs, and selects only metrics that exist."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict

import yaml

from tests.observability.support import (
    PROMETHEUS_OWN,
    PROMTOOL,
    RULES,
    RULES_TEST,
    RUNBOOKS,
    alerts,
    exported_names,
    metric_names,
    recorded_names,
    rule_list,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def test_promtool_check_rules_accepts_the_file() -> None:
    run = promtool("check", "rules", str(RULES))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rule_list())} rules found" in run.stdout


def test_promtool_unit_tests_pass() -> None:
    run = promtool("test", "rules", str(RULES_TEST))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, dict[str, int]] = defaultdict(lambda: {"firing": 0, "quiet": 0})
    for test in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases[case["alertname"]]["firing" if case.get("exp_alerts") else "quiet"] += 1
    for rule in alerts():
        seen = cases[rule["alert"]]
        assert seen["firing"] and seen["quiet"], f"{rule['alert']}: {seen}"
    assert set(cases) == {rule["alert"] for rule in alerts()}, "tests of alerts that do not exist"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_is_actionable_and_has_its_runbook_section() -> None:
    headings = {
        _anchor(line[3:]): line[3:].strip()
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, name
        assert len(notes["description"]) > 80, f"{name}: describe what it means"
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == "docs/runbooks.md", name
        assert headings.get(anchor) == name, f"{name}: no section '## {name}' in {RUNBOOKS}"
    assert set(headings.values()) == {rule["alert"] for rule in alerts()}, "runbooks without alert"


def test_rules_select_only_metrics_the_code_exports() -> None:
    known = exported_names() | recorded_names() | PROMETHEUS_OWN
    for rule in rule_list():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"
