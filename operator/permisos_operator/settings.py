"""Operator settings, read from `PERMISOS_OPERATOR_*` environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMISOS_OPERATOR_")

    # Namespaces to watch; empty means the whole cluster.
    namespaces: list[str] = []
    # Peering lets two replicas run safely: the one with the highest priority is active.
    peering_name: str = "permisos-operator"
    standalone: bool = False
    priority: int = 0
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    liveness_endpoint: str = "http://0.0.0.0:8081/healthz"
    workers: int = 4
    # A full re-list that repairs the cache if a watch ever missed a deletion.
    resync_seconds: float = 300.0
    # Where the runner finds the applicant's Secret and writes its result.
    secret_mount_path: str = "/var/run/secrets/permisos/applicant"  # noqa: S105 (a path)
    termination_message_path: str = "/dev/termination-log"
    log_format: str = "json"
    log_level: str = "INFO"
