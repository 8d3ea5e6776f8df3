"""Every part of the platform, started in order, wired over loopback, stopped in reverse."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from permisos.resources import GROUP, VERSION
from permisos_sandbox.ports import free_port
from permisos_sandbox.postgres import PostgresServer
from permisos_sandbox.s3 import CREDENTIALS, S3Server

from .accounts import API_ACCOUNT, OPERATOR_ACCOUNT
from .children import Child, PartFailed, run_to_end
from .kubernetes import LocalKubernetes, account_kubeconfig

ROOT = Path(__file__).resolve().parents[3]

# The node agent's image map runs this image's pods as `python -m permisos_runner`.
RUNNER_IMAGE = "permisos-browser-runner:local"
DATABASE = "permisos"
# The runner's Secrets, as an engineer creates them for the chart; the values are the sandbox's.
PORTAL_ACCOUNT = ("operador", "secreto")
STRIPE_KEY = "sk_test_permisos_local"
WEBHOOK_SECRET = "whsec_permisos_local"  # noqa: S105 (the simulator's, not a real secret)
S3_SECRET = "permisos-s3"  # noqa: S105 (a Secret's name)
STATE_MARKER = ".permisos-platform"
PORTAL_SECRET = "portal-account"  # noqa: S105 (a Secret's name)


@dataclass
class PlatformConfig:
    """Where everything listens and how the demo platform behaves. A port of 0 picks a free one."""

    state_dir: Path = ROOT / "var"
    host: str = "127.0.0.1"
    api_port: int = 8000
    portal_port: int = 8002
    payments_port: int = 8003
    s3_port: int = 8004
    operator_metrics_port: int = 8005
    operator_health_port: int = 8006
    # Empty: a PostgreSQL server of the platform's own, started afresh each time.
    database_url: str = ""
    namespace: str = "default"
    bucket: str = "permisos-permits"
    runners: int = 2
    portal_processing_seconds: float = 2.0
    portal_latency_ms: int = 0
    retry_backoff_seconds: int = 2
    dispatcher_interval_seconds: float = 0.5
    extra_api_env: dict[str, str] = field(default_factory=dict)


def _claim_port(host: str, port: int, what: str) -> int:
    if port == 0:
        return free_port(host)
    with socket.socket() as sock:
        # As the servers themselves do: a previous run's connections in TIME_WAIT are no owner.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PartFailed(
                f"port {port} ({what}) is in use: stop what holds it or choose another port "
                f"(`python -m permisos_sandbox.platform --help` lists the options)"
            ) from None
    return port


class Platform:
    def __init__(self, config: PlatformConfig | None = None) -> None:
        self.config = config or PlatformConfig()
        self.children: list[Child] = []
        self.s3: S3Server | None = None
        self.kubernetes: LocalKubernetes | None = None
        self.postgres: PostgresServer | None = None
        self.ports: dict[str, int] = {}
        self.python = sys.executable

    # -- addresses ---------------------------------------------------------------------------

    def url(self, part: str) -> str:
        return f"http://{self.config.host}:{self.ports[part]}"

    @property
    def api_url(self) -> str:
        return self.url("api")

    @property
    def portal_url(self) -> str:
        return self.url("portal")

    @property
    def payments_url(self) -> str:
        return self.url("payments")

    @property
    def s3_url(self) -> str:
        return self.url("s3")

    @property
    def operator_metrics_url(self) -> str:
        return self.url("operator_metrics") + "/metrics"

    @property
    def kubeconfig(self) -> Path:
        return self.config.state_dir / "kubeconfig"

    @property
    def outbox(self) -> Path:
        return self.config.state_dir / "mail"

    @property
    def logs(self) -> Path:
        return self.config.state_dir / "logs"

    @property
    def database_url_file(self) -> Path:
        return self.config.state_dir / "database-url"

    @property
    def database_url(self) -> str:
        if self.config.database_url:
            return self.config.database_url
        assert self.postgres is not None, "the platform's PostgreSQL starts first"
        return self.postgres.url(DATABASE)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Platform:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.config
        for part in (
            "api",
            "portal",
            "payments",
            "s3",
            "operator_metrics",
            "operator_health",
        ):
            self.ports[part] = _claim_port(cfg.host, getattr(cfg, f"{part}_port"), part)
        self._fresh_state()

        self.s3 = await asyncio.to_thread(S3Server(cfg.host, self.ports["s3"]).start)
        await asyncio.to_thread(self.s3.client().create_bucket, Bucket=cfg.bucket)

        if not cfg.database_url:
            self.postgres = await asyncio.to_thread(
                PostgresServer(log_path=self.logs / "postgres.log").start
            )
            await asyncio.to_thread(_create_database, self.postgres.admin_dsn, DATABASE)
        # For commands run by hand beside `make up` (create-admin, a second API, reconcile).
        self.database_url_file.write_text(self.database_url + "\n")

        self.kubernetes = LocalKubernetes(cfg.state_dir, cfg.namespace, self.logs, self._base_env())
        await self.kubernetes.start()

        portal = self._child(
            "portal simulator",
            [
                *("-m", "permisos_sandbox.portal", "--host", cfg.host),
                *("--port", str(self.ports["portal"])),
                *("--processing-seconds", str(cfg.portal_processing_seconds)),
                *("--latency-ms", str(cfg.portal_latency_ms)),
            ],
            {"PERMISOS_PORTAL_USERS": ":".join(PORTAL_ACCOUNT)},
        )
        payments = self._child(
            "payments simulator",
            [
                *("-m", "permisos_sandbox.payments", "--host", cfg.host),
                *("--port", str(self.ports["payments"]), "--api-key", STRIPE_KEY),
                *("--webhook-url", f"{self.api_url}/v1/webhooks/stripe"),
                *("--webhook-secret", WEBHOOK_SECRET, "--retry-base-seconds", "1"),
            ],
            {},
        )
        await asyncio.gather(
            portal.ready(f"{self.portal_url}/__control/health"),
            payments.ready(f"{self.payments_url}/__control/health"),
        )

        api_env = self.api_env()
        await run_to_end(
            "database migration",
            [self.python, "-m", "permisos_api.migrate", "upgrade"],
            api_env,
            self.logs / "migrate.log",
        )
        api = self._child("API", ["-m", "permisos_api"], api_env)
        await api.ready(f"{self.api_url}/healthz")

        await self._seed()

        operator = self._child("operator", ["-m", "permisos_operator"], self.operator_env())
        await operator.ready(f"{self.url('operator_health')}/healthz")

    async def stop(self) -> None:
        """Stops every part it started, the last started first; safe to call twice."""
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop)
        self.children.clear()
        if self.kubernetes is not None:
            await self.kubernetes.stop()
            self.kubernetes = None
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
            self.postgres = None
        if self.s3 is not None:
            await asyncio.to_thread(self.s3.stop)
            self.s3 = None

    async def create_admin(self, email: str, password: str) -> None:
        """What an engineer runs once per install: `python -m permisos_api.admin create-admin`."""
        await run_to_end(
            "create-admin",
            [self.python, "-m", "permisos_api.admin", "create-admin", email],
            {**self.api_env(), "PERMISOS_ADMIN_PASSWORD": password},
            self.logs / "admin.log",
        )

    def check_alive(self) -> None:
        """Raises PartFailed naming the first part that stopped by itself."""
        for child in self.children:
            if not child.alive():
                code = child.proc.returncode if child.proc else None
                raise child.failure(f"stopped unexpectedly (exit code {code})")

    # -- wiring ------------------------------------------------------------------------------

    def _fresh_state(self) -> None:
        """The control plane, PostgreSQL and the S3 server keep nothing across runs, so neither
        does the rest."""
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        # Starting afresh deletes folders in it: only in the repository's var/, an empty
        # directory, or one an earlier start marked.
        marker = state / STATE_MARKER
        ours = state.resolve() == (ROOT / "var").resolve() or marker.exists()
        if not ours and any(state.iterdir()):
            raise PartFailed(
                f"{state} is not empty and was not made by the platform: choose an empty or new "
                "--state-dir (the platform deletes its own files there on every start)"
            )
        marker.write_text("The local platform's state; every start deletes and rewrites it.\n")
        self.database_url_file.unlink(missing_ok=True)
        for stale in (self.outbox, self.logs, state / "node"):
            shutil.rmtree(stale, ignore_errors=True)
        self.outbox.mkdir()
        self.logs.mkdir()

    def _child(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        log = self.logs / f"{name.split()[0].lower()}.log"
        child = Child(name, [self.python, *args], {**self._base_env(), **env}, log).start()
        self.children.append(child)
        return child

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")
        return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONUNBUFFERED": "1"}

    def api_env(self) -> dict[str, str]:
        cfg = self.config
        return {
            **self._base_env(),
            **CREDENTIALS,
            "KUBECONFIG": str(account_kubeconfig(self.config.state_dir, API_ACCOUNT)),
            "PERMISOS_API_HOST": cfg.host,
            "PERMISOS_API_PORT": str(self.ports["api"]),
            "PERMISOS_API_PUBLIC_BASE_URL": self.api_url,
            "PERMISOS_API_DATABASE_URL": self.database_url,
            "PERMISOS_API_COOKIE_SECURE": "false",
            "PERMISOS_API_MAIL_OUTBOX_DIR": str(self.outbox),
            "PERMISOS_API_STRIPE_SECRET_KEY": STRIPE_KEY,
            "PERMISOS_API_STRIPE_API_BASE": self.payments_url,
            "PERMISOS_API_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PERMISOS_API_S3_BUCKET": cfg.bucket,
            "PERMISOS_API_S3_ENDPOINT_URL": self.s3_url,
            "PERMISOS_API_KUBERNETES_NAMESPACE": cfg.namespace,
            "PERMISOS_API_DISPATCHER_INTERVAL_SECONDS": str(cfg.dispatcher_interval_seconds),
            **cfg.extra_api_env,
        }

    def operator_env(self) -> dict[str, str]:
        host = self.config.host
        return {
            "KUBECONFIG": str(account_kubeconfig(self.config.state_dir, OPERATOR_ACCOUNT)),
            "PERMISOS_OPERATOR_STANDALONE": "true",
            "PERMISOS_OPERATOR_NAMESPACES": f'["{self.config.namespace}"]',
            "PERMISOS_OPERATOR_METRICS_HOST": host,
            "PERMISOS_OPERATOR_METRICS_PORT": str(self.ports["operator_metrics"]),
            "PERMISOS_OPERATOR_LIVENESS_ENDPOINT": (
                f"http://{host}:{self.ports['operator_health']}/healthz"
            ),
            "PERMISOS_OPERATOR_DATABASE_URL": self.database_url,
        }

    def runner_pool(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "metadata": {"name": "default", "namespace": cfg.namespace},
            "spec": {
                "replicas": cfg.runners,
                "image": RUNNER_IMAGE,
                "imagePullPolicy": "Never",
                "retryPolicy": {
                    "backoffSeconds": cfg.retry_backoff_seconds,
                    "maxBackoffSeconds": max(cfg.retry_backoff_seconds, 30),
                },
                "portal": {"url": self.portal_url, "credentialsSecret": PORTAL_SECRET},
                "storage": {
                    "bucket": cfg.bucket,
                    "endpointUrl": self.s3_url,
                    "credentialsSecret": S3_SECRET,
                },
            },
        }

    async def _seed(self) -> None:
        """What `helm install` creates: the runner's Secrets and the default RunnerPool."""
        assert self.kubernetes is not None
        ns = self.config.namespace
        secrets = {
            PORTAL_SECRET: {"username": PORTAL_ACCOUNT[0], "password": PORTAL_ACCOUNT[1]},
            S3_SECRET: {k: CREDENTIALS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        }
        for name, values in secrets.items():
            data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "data": data,
            }
            await self.kubernetes.create(f"/api/v1/namespaces/{ns}/secrets", secret)
        pool = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RunnerPool", **self.runner_pool()}
        await self.kubernetes.create(f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/runnerpools", pool)


def _create_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
