"""Every part of the platform, started in order, wired over loopback, stopped in reverse.

The servers a cluster reaches outside itself (PostgreSQL, S3, the portal and payments
simulators, the mail catcher) run as processes of this machine on loopback; the API, the
operator, the migration, the CronJobs and the runners are the Helm release `permisos` of
`charts/permisos` on the local control plane, run by the node agent on a pod network whose
gateway relays those loopback ports (`release.py`). The API's Service is forwarded to
127.0.0.1:8000 (`forward.py`)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from permisos.kube import Kube
from permisos_sandbox.mail import MailCatcher
from permisos_sandbox.ports import free_port
from permisos_sandbox.postgres import PostgresServer
from permisos_sandbox.s3 import CREDENTIALS, S3Server

from . import release
from .children import Child, PartFailed, run_to_end
from .forward import ServiceForward
from .kubernetes import LocalKubernetes

ROOT = Path(__file__).resolve().parents[3]

DATABASE = "permisos"
# The sandbox's credentials, created as the Secrets the chart's `existingSecret`s name.
PORTAL_ACCOUNT = ("operador", "secreto")
STRIPE_KEY = "sk_test_permisos_local"
# What browsers present to the Stripe.js stand-in: a chart value, not a Secret, as with Stripe.
STRIPE_PUBLISHABLE_KEY = "pk_test_permisos_local"
WEBHOOK_SECRET = "whsec_permisos_local"  # noqa: S105 (the simulator's, not a real secret)
S3_SECRET = "permisos-s3"  # noqa: S105 (a Secret's name)
STATE_MARKER = ".permisos-platform"
OPERATOR_METRICS_PORT = 8080  # the chart's operator container port `metrics`


@dataclass
class PlatformConfig:
    """Where everything listens and how the demo platform behaves. A port of 0 picks a free one."""

    state_dir: Path = ROOT / "var"
    host: str = "127.0.0.1"
    api_port: int = 8000
    portal_port: int = 8002
    payments_port: int = 8003
    s3_port: int = 8004
    mail_port: int = 8005
    # Empty: a PostgreSQL server of the platform's own, started afresh each time. Another one
    # must listen on this machine's loopback (the pods reach it through the gateway).
    database_url: str = ""
    namespace: str = "permisos"
    # The pods' addresses; its first address is the gateway to this machine's loopback ports.
    pod_network: str = "10.244.0.0/24"
    bucket: str = "permisos-permits"
    runners: int = 2
    portal_processing_seconds: float = 2.0
    portal_latency_ms: int = 0
    retry_backoff_seconds: int = 2
    dispatcher_interval_seconds: float = 0.5
    # Plain environment variables for the API pods (the chart's `api.extraEnv`).
    extra_api_env: dict[str, str] = field(default_factory=dict)

    def on_free_ports(self) -> PlatformConfig:
        """The same, every port picked free: nothing collides with `make run` or a test."""
        return replace(self, api_port=0, portal_port=0, payments_port=0, s3_port=0, mail_port=0)


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
        self.mail: MailCatcher | None = None
        self.kubernetes: LocalKubernetes | None = None
        self.postgres: PostgresServer | None = None
        self.api: ServiceForward | None = None
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
    def gateway(self) -> str:
        """Where pods reach this machine's loopback servers (the pod network's gateway)."""
        return str(next(ipaddress.ip_network(self.config.pod_network).hosts()))

    def pod_url(self, part: str) -> str:
        """A loopback server's address as the pods see it."""
        return f"http://{self.gateway}:{self.ports[part]}"

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
    def container_logs(self) -> Path:
        """The node agent's container logs: `<namespace>_<pod>_<uid>/<container>/<n>.log`."""
        return self.config.state_dir / "node" / "logs"

    @property
    def database_url_file(self) -> Path:
        return self.config.state_dir / "database-url"

    @property
    def database_url(self) -> str:
        if self.config.database_url:
            return self.config.database_url
        assert self.postgres is not None, "the platform's PostgreSQL starts first"
        return self.postgres.url(DATABASE)

    @property
    def kube(self) -> Kube:
        assert self.kubernetes is not None and self.kubernetes.kube is not None
        return self.kubernetes.kube

    async def pod_addresses(self, component: str) -> list[str]:
        """The addresses of the release's running pods of one component (api, operator)."""
        found = await self.kube.get(
            f"/api/v1/namespaces/{self.config.namespace}/pods",
            labelSelector=f"app.kubernetes.io/instance={release.RELEASE},"
            f"app.kubernetes.io/component={component}",
        )
        return [
            pod["status"]["podIP"]
            for pod in (found or {}).get("items") or []
            if pod["status"].get("phase") == "Running" and pod["status"].get("podIP")
        ]

    async def operator_metrics_urls(self) -> list[str]:
        """Every operator replica's /metrics (the active one counts the work)."""
        addresses = await self.pod_addresses("operator")
        return [f"http://{a}:{OPERATOR_METRICS_PORT}/metrics" for a in addresses]

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
        for part in ("api", "portal", "payments", "s3", "mail"):
            self.ports[part] = _claim_port(cfg.host, getattr(cfg, f"{part}_port"), part)
        self._fresh_state()

        self.s3 = await asyncio.to_thread(S3Server(cfg.host, self.ports["s3"]).start)
        await asyncio.to_thread(self.s3.client().create_bucket, Bucket=cfg.bucket)
        self.mail = await asyncio.to_thread(
            MailCatcher(self.outbox, cfg.host, self.ports["mail"]).start
        )
        if not cfg.database_url:
            self.postgres = await asyncio.to_thread(
                PostgresServer(log_path=self.logs / "postgres.log").start
            )
            await asyncio.to_thread(_create_database, self.postgres.admin_dsn, DATABASE)
        # For commands run by hand beside `make up` (create-admin, a second API, reconcile).
        self.database_url_file.write_text(self.database_url + "\n")

        database_port = make_url(self.database_url).port or 5432
        host_ports = (database_port, *(self.ports[p] for p in ("portal", "payments", "s3", "mail")))
        self.kubernetes = LocalKubernetes(
            cfg.state_dir, cfg.namespace, self.logs, self._base_env(), cfg.pod_network, host_ports
        )
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
                *("--publishable-key", STRIPE_PUBLISHABLE_KEY),
                *("--webhook-url", f"{self.api_url}/v1/webhooks/stripe"),
                *("--webhook-secret", WEBHOOK_SECRET, "--retry-base-seconds", "1"),
            ],
            {},
        )
        await asyncio.gather(
            portal.ready(f"{self.portal_url}/__control/health"),
            payments.ready(f"{self.payments_url}/__control/health"),
        )

        await release.create_secrets(self.kube, cfg.namespace, self._secrets())
        values = release.write_values(cfg.state_dir / "chart-machine-values.yaml", self.values())
        await release.install(self.kubeconfig, cfg.namespace, values)
        self.api = await ServiceForward(
            self.kube, cfg.namespace, f"{release.RELEASE}-api", "http", cfg.host, self.ports["api"]
        ).start()
        await release.wait_ready(self.kube, cfg.namespace)

    async def stop(self) -> None:
        """Stops every part it started, the last started first; safe to call twice. The node
        agent's stop ends the release's pods; the control plane and its etcd go with it."""
        if self.api is not None:
            await self.api.stop()
            self.api = None
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop)
        self.children.clear()
        if self.kubernetes is not None:
            await self.kubernetes.stop()
            self.kubernetes = None
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
            self.postgres = None
        if self.mail is not None:
            await asyncio.to_thread(self.mail.stop)
            self.mail = None
        if self.s3 is not None:
            await asyncio.to_thread(self.s3.stop)
            self.s3 = None

    async def create_admin(self, email: str, password: str) -> None:
        """What an engineer runs once per install: `python -m permisos_api.admin create-admin`,
        here from this machine against the database."""
        await run_to_end(
            "create-admin",
            [self.python, "-m", "permisos_api.admin", "create-admin", email],
            {
                **self._base_env(),
                "PERMISOS_API_DATABASE_URL": self.database_url,
                "PERMISOS_ADMIN_PASSWORD": password,
            },
            self.logs / "admin.log",
        )

    def check_alive(self) -> None:
        """Raises PartFailed naming the first part that stopped by itself."""
        parts = [*self.children]
        if self.kubernetes is not None and self.kubernetes.node is not None:
            parts.append(self.kubernetes.node)
        for child in parts:
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
        for stale in (self.outbox, self.logs, state / "node", state / "helm"):
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

    def _secrets(self) -> dict[str, dict[str, str]]:
        """What the chart's `existingSecret`s name, created before installing as on any
        cluster; the pods reach the database through the gateway."""
        url = make_url(self.database_url).set(host=self.gateway)
        user, password = PORTAL_ACCOUNT
        return {
            "permisos-database": {"url": url.render_as_string(hide_password=False)},
            "permisos-stripe": {"secret-key": STRIPE_KEY, "webhook-secret": WEBHOOK_SECRET},
            "permisos-signing": {"secret": secrets.token_hex(32)},
            "permisos-portal-account": {"username": user, "password": password},
            S3_SECRET: {k: CREDENTIALS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        }

    def values(self) -> dict[str, Any]:
        """This machine's addresses and the demo's settings, over chart-values.yaml."""
        cfg = self.config
        return {
            "api": {
                "publicBaseUrl": self.api_url,
                "dispatcher": {"intervalSeconds": cfg.dispatcher_interval_seconds},
                "extraEnv": [{"name": k, "value": v} for k, v in cfg.extra_api_env.items()],
            },
            "stripe": {
                "apiBase": self.pod_url("payments"),
                # The card page's browser loads the stand-in where this machine reaches it.
                "publishableKey": STRIPE_PUBLISHABLE_KEY,
                "jsUrl": f"{self.payments_url}/v3/",
            },
            "s3": {
                "bucket": cfg.bucket,
                "endpointUrl": self.pod_url("s3"),
                "existingSecret": S3_SECRET,
            },
            "portal": {"url": self.pod_url("portal")},
            "smtp": {"host": self.gateway, "port": self.ports["mail"], "starttls": False},
            "runnerPool": {
                "replicas": cfg.runners,
                "retryPolicy": {
                    "backoffSeconds": cfg.retry_backoff_seconds,
                    "maxBackoffSeconds": max(cfg.retry_backoff_seconds, 30),
                },
            },
        }


def _create_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
