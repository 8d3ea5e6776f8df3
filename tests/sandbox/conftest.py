"""Fixtures: an in-process Kubernetes API emulator on a free loopback port, and clients for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from permisos_sandbox.kubeapi import KubeApiServer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


@dataclass
class Kube:
    server: KubeApiServer
    http: aiohttp.ClientSession
    kubeconfig: Path

    @property
    def url(self) -> str:
        return self.server.url

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        hdrs = {"Content-Type": content_type, **(headers or {})}
        async with self.http.request(method, self.url + path, data=data, headers=hdrs) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text and text[0] in "{[" else text)

    async def create(self, path: str, body: Any) -> Any:
        status, obj = await self.request("POST", path, body)
        assert status == 201, obj
        return obj

    async def kubectl(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.kubeconfig.parent / "kube-cache"),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        code = proc.returncode or 0
        if check:
            assert code == 0, err.decode()
        return code, out.decode(), err.decode()


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": "small", **spec},
    }


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    server = KubeApiServer(
        crd_paths=[FIXTURES / "widgets.yaml", ROOT / "crds"],
        history_limit=50,
        bookmark_interval=0.3,
    )
    await server.start(host="127.0.0.1", port=0)
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    async with aiohttp.ClientSession() as http:
        yield Kube(server, http, kubeconfig)
    await server.stop()
