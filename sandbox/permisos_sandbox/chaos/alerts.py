"""A real Prometheus (Debian's binary, its own config and data directory) scraping the run as the
chart's ServiceMonitors say (`targets.py`: replaced pods are followed), evaluating the chart's
alert rules; afterwards, which alerts were pending or fired, beside the ones the faults should
have raised."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from permisos_sandbox.platform import Platform
from permisos_sandbox.ports import free_port

from .checks import Check, Window
from .targets import JOBS, TargetWriter, scrape_configs

RULES = Path(__file__).resolve().parents[3] / "charts/permisos/files/prometheus-rules.yaml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_SECONDS = 2


def config(folder: Path) -> dict[str, Any]:
    interval = f"{SCRAPE_SECONDS}s"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(RULES)],
        "scrape_configs": scrape_configs(folder),
    }


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    targets: TargetWriter

    @classmethod
    async def start(cls, p: Platform, folder: Path) -> Prometheus:
        writer = await TargetWriter(p, folder / "targets").start()
        prometheus = await asyncio.to_thread(cls._spawn, folder, writer)
        # Both jobs' pods found and scraped.
        jobs = {job.name for job in JOBS}
        await prometheus.until(
            "up == 1", lambda found: {s["metric"].get("job") for s in found} == jobs, within=90
        )
        return prometheus

    @classmethod
    def _spawn(cls, folder: Path, writer: TargetWriter) -> Prometheus:
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config(writer.folder)))
        port = free_port()
        with (folder / "prometheus.log").open("wb") as out:
            proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={path}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return cls(f"http://127.0.0.1:{port}", proc, writer)

    async def stop(self) -> None:
        await self.targets.stop()
        await asyncio.to_thread(self._end)

    def _end(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30.0) as http:
            r = await http.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {expr!r}: {body}")
        found: list[dict[str, Any]] = body["data"]["result"]
        return found

    async def until(self, expr: str, done: Any, within: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Prometheus exited ({self.proc.returncode}); see its log")
            try:
                found = await self.query(expr)
            except (httpx.HTTPError, ValueError):
                found = []
            if done(found):
                return found
            await asyncio.sleep(1)
        raise RuntimeError(f"Prometheus: {expr!r} not as expected within {within:.0f}s: {found}")


@dataclass(frozen=True)
class AlertLine:
    """One alert of interest: what the run should have made of it, and what Prometheus did."""

    alert: str
    expected: str  # firing, pending or "-"
    why: str
    seen: str  # firing, pending or "-"

    @property
    def ok(self) -> bool:
        order = {"-": 0, "pending": 1, "firing": 2}
        return order[self.seen] >= order[self.expected]


async def seen_state(prometheus: Prometheus, alert: str, seconds: float) -> str:
    window = f"[{math.ceil(seconds)}s]"
    for state in ("firing", "pending"):
        selector = f'ALERTS{{alertname="{alert}",alertstate="{state}"}}'
        if await prometheus.query(f"max_over_time({selector}{window})"):
            return state
    return "-"


async def judge_alerts(
    prometheus: Prometheus, faults: Sequence[Window], seconds: float
) -> tuple[list[AlertLine], Check]:
    """Leader changes: expected firing when an operator replica was killed (the standby takes
    over at once). The portal: PermisosPortalUnavailable waits 15 minutes, so in a shorter run
    it can only be pending, and only if the pool's circuit opened (the operator's metric says)."""
    lines = []
    killed = sum(1 for f in faults if "operator" in f.kind)
    lines.append(
        AlertLine(
            "PermisosOperatorLeaderChanged",
            "firing" if killed else "-",
            f"{killed} operator kills" if killed else "no operator was killed",
            await seen_state(prometheus, "PermisosOperatorLeaderChanged", seconds),
        )
    )
    window = f"[{math.ceil(seconds)}s:{SCRAPE_SECONDS}s]"
    open_samples = await prometheus.query(
        f'sum_over_time((max(permisos_runnerpool_circuit_state{{state="Open"}}) == 1){window})'
    )
    open_seconds = sum(float(s["value"][1]) for s in open_samples) * SCRAPE_SECONDS
    longest = 15 * 60
    lines.append(
        AlertLine(
            "PermisosPortalUnavailable",
            "firing" if open_seconds > longest else "pending" if open_seconds >= 10 else "-",
            f"circuit open ~{open_seconds:.0f}s in all; fires after 15 min open",
            await seen_state(prometheus, "PermisosPortalUnavailable", seconds),
        )
    )
    check = Check("the alerts the faults should raise were raised in Prometheus")
    for line in lines:
        check.judged += 1
        if not line.ok:
            check.fail("-", f"{line.alert}: expected {line.expected}, seen {line.seen}")
    return lines, check


async def also_raised(prometheus: Prometheus, seconds: float, known: Sequence[str]) -> list[str]:
    """Every other alert that was pending or fired during the run, for the table."""
    found = await prometheus.query(f"max_over_time(ALERTS[{math.ceil(seconds)}s])")
    names = {(s["metric"]["alertname"], s["metric"]["alertstate"]) for s in found}
    return sorted(f"{name} ({state})" for name, state in names if name not in known)
