"""Operator settings, read from `PERMISOS_OPERATOR_*` environment variables."""

from __future__ import annotations

import random
import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    # A value refused is named, never shown (it may be a credential).
    model_config = SettingsConfigDict(env_prefix="PERMISOS_OPERATOR_", hide_input_in_errors=True)

    # Namespaces to watch, by name (no Kopf globs: see `exact_namespaces`); empty means the whole
    # cluster.
    namespaces: list[str] = []
    # Peering lets two replicas run safely: the one with the highest priority is active.
    peering_name: str = "permisos-operator"
    standalone: bool = False
    # Equal priorities would pause each other, so each replica draws its own unless told.
    priority: int = Field(default_factory=lambda: random.randint(1, 1_000_000))  # noqa: S311
    # How long a silent peer is still considered alive before the standby takes over.
    peering_lifetime: int = 60
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    liveness_endpoint: str = "http://0.0.0.0:8081/healthz"
    # Where the runner finds the applicant's Secret and writes its result.
    secret_mount_path: str = "/var/run/secrets/permisos/applicant"  # noqa: S105 (a path)
    termination_message_path: str = "/dev/termination-log"
    log_format: str = "json"
    log_level: str = "INFO"

    @field_validator("namespaces")
    @classmethod
    def exact_namespaces(cls, names: list[str]) -> list[str]:
        """Names only: with named namespaces Kopf does not observe the cluster's namespaces
        (handlers.py turns its scanning off), so a glob such as `team-*` would match nothing."""
        bad = [name for name in names if not _NAMESPACE.fullmatch(name)]
        if bad:
            raise ValueError(f"not namespace names (globs are not supported): {bad}")
        return names


# A DNS-1123 label, as kube requires of a namespace's name.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
