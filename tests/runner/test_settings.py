"""The runner's settings that decide what an attempt records."""

from __future__ import annotations

import pytest

from permisos_runner.settings import RunnerSettings

REQUIRED = {
    "permit_request": "app-1",
    "application_id": "app-1",
    "portal_url": "http://portal",
    "portal_username": "operador",
    "portal_password": "secreto",
    "s3_bucket": "permisos",
}


@pytest.mark.parametrize(
    ("trace", "records"),
    [
        (None, {1: False, 2: True, 5: True}),  # the default: from the first retry on
        ("on-all-retries", {1: False, 2: True}),
        ("retain-on-failure", {1: True, 2: True}),
        ("off", {1: False, 2: False}),
        ("true", {1: True, 2: True}),  # earlier releases' switch, in pydantic's spellings
        ("on", {1: True, 2: True}),
        ("yes", {1: True, 2: True}),
        ("false", {1: False, 2: False}),
        ("no", {1: False, 2: False}),
    ],
)
def test_which_attempts_record_a_trace(trace: str | None, records: dict[int, bool]) -> None:
    extra = {"trace": trace} if trace is not None else {}
    for attempt, expected in records.items():
        settings = RunnerSettings.model_validate({**REQUIRED, **extra, "attempt": attempt})
        assert settings.records_trace is expected, (trace, attempt)


def test_a_probe_records_a_trace_unless_tracing_is_off() -> None:
    probe = {**REQUIRED, "mode": "probe", "probe_name": "default-probe-1"}
    assert RunnerSettings.model_validate(probe).records_trace
    assert not RunnerSettings.model_validate({**probe, "trace": "off"}).records_trace


def test_an_unknown_trace_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="trace"):
        RunnerSettings.model_validate({**REQUIRED, "trace": "sometimes"})
