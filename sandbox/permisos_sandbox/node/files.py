"""What the kubelet prepares before a container starts, done in a private directory: volumes,
the termination-message file, and the environment with its Secret and ConfigMap references.

The pod's directory lives in memory (`NodeConfig.runtime_dir`), mode 0700, and goes when the
pod ends. Mounts under `/var/run/secrets/` become real bind mounts in the container's own mount
namespace where the agent can make one (root), because client libraries read fixed paths there
(the ServiceAccount token, for one). A local process cannot see any other container path (`/tmp`
of its pod, `/dev/termination-log`), so every other volume mount and the termination-message
path get a local directory or file, and any environment value, command word or argument that
names such a path (or a path under it) is rewritten to the local one, except the program itself,
which is a file of this machine (the local "image"). Nothing read from a Secret is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from permisos.kube import JSON, now

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
DEFAULT_MODE = 0o644
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")

Fetch = Callable[[str, str], Awaitable[JSON | None]]
# (pod, audience or None for the apiserver's, expirationSeconds) -> (token, its expiry)
TokenFetch = Callable[[JSON, str | None, int], Awaitable[tuple[str, datetime]]]
# Where a real bind mount is made instead of rewriting paths (see the module's docstring).
BIND_PREFIXES = ("/var/run/secrets/", "/run/secrets/")
DEFAULT_TOKEN_SECONDS = 3600


class SetupError(Exception):
    """The container cannot be created yet; the kubelet reports it and tries again later."""

    def __init__(self, reason: str, message: str, event_reason: str = "Failed") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.event_reason = event_reason


def config_error(message: str) -> SetupError:
    return SetupError("CreateContainerConfigError", message)


def mount_error(volume: str, message: str) -> SetupError:
    return SetupError(
        "ContainerCreating",
        f'MountVolume.SetUp failed for volume "{volume}" : {message}',
        "FailedMount",
    )


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    path.chmod(mode)


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return _private_dir(path)


def _inside(target: Path, volume: str, rel: str) -> Path:
    """`target/rel`, refusing a path that leaves the volume."""
    path = (target / rel).resolve()
    if not rel or target.resolve() not in path.parents:
        raise mount_error(volume, f"invalid path {rel!r}")
    _private_dir(path.parent)
    return path


def _owner_mode(mode: Any) -> int:
    """A file mode for this machine: the owner's bits of the requested one, never group or
    other (every pod runs as the node agent's own user), and always readable by the owner."""
    requested = mode if isinstance(mode, int) and not isinstance(mode, bool) else DEFAULT_MODE
    return (requested & 0o700) | 0o400


def _decode(data: Mapping[str, Any], binary: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in data.items():
        if binary:
            try:
                out[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                out[key] = b""
        else:
            out[key] = str(value).encode()
    return out


def source_data(obj: JSON, kind: str) -> dict[str, bytes]:
    """A Secret's or ConfigMap's keys and values, decoded."""
    if kind == "Secret":
        return _decode(obj.get("data") or {}, binary=True)
    values = _decode(obj.get("data") or {}, binary=False)
    values.update(_decode(obj.get("binaryData") or {}, binary=True))
    return values


@dataclass
class Mounts:
    """Container paths and their local stand-ins, longest first."""

    pairs: list[tuple[str, Path]] = field(default_factory=list)
    # Real bind mounts: (local source, container path, read-only).
    binds: list[tuple[Path, str, bool]] = field(default_factory=list)

    def add(
        self, container_path: str, local: Path, *, bind: bool = False, ro: bool = False
    ) -> None:
        path = container_path.rstrip("/")
        if not path:
            return  # a mount over "/" would rewrite every path
        if bind:
            self.binds.append((local, path, ro))
            return
        self.pairs.append((path, local))
        self.pairs.sort(key=lambda pair: len(pair[0]), reverse=True)

    def local(self, value: str) -> str:
        for path, local in self.pairs:
            if value == path:
                return str(local)
            if value.startswith(path + "/"):
                return str(local) + value[len(path) :]
        return value

    def get(self, container_path: str) -> Path | None:
        for path, local in self.pairs:
            if path == container_path.rstrip("/"):
                return local
        return None


@dataclass
class ContainerPlan:
    """Everything needed to start one container as a local process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_file: Path
    termination_policy: str
    log_file: Path
    binds: list[tuple[Path, str, bool]] = field(default_factory=list)
    netns: Path | None = None  # the pod's network namespace, when it has one


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes a `$`,
    anything else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class PodFiles:
    """One pod's private directory: `<pods_dir>/<pod uid>`, mode 0700, removed with the pod."""

    def __init__(
        self, pods_dir: Path, logs_dir: Path, pod: JSON, *, real_mounts: bool = False
    ) -> None:
        meta = pod["metadata"]
        self.real_mounts = real_mounts
        # Projected ServiceAccount tokens: (file, audience, expirationSeconds, mode).
        self.tokens: list[tuple[Path, str | None, int, int]] = []
        self.token_refresh_at: datetime | None = None
        self.pod = pod
        self.namespace = str(meta.get("namespace") or "")
        self.name = str(meta["name"])
        self.uid = str(meta.get("uid") or self.name)
        self.root = pods_dir / _SAFE_NAME.sub("_", self.uid)
        self.log_dir = logs_dir / _SAFE_NAME.sub("_", f"{self.namespace}_{self.name}_{self.uid}")
        self.volumes: dict[str, Path] = {}

    @property
    def spec(self) -> JSON:
        return dict(self.pod.get("spec") or {})

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    async def prepare_volumes(
        self, get_secret: Fetch, get_configmap: Fetch, get_token: TokenFetch | None = None
    ) -> None:
        """Creates the pod directory and fills every volume (again on each try, so a Secret
        created late is seen)."""
        _private_dir(self.root)
        _private_dir(self.root / "volumes")
        self.tokens = []
        for volume in self.spec.get("volumes") or []:
            name = str(volume.get("name", ""))
            target = self.root / "volumes" / _SAFE_NAME.sub("_", name)
            if "projected" in volume and get_token is not None:
                await self._projected_volume(
                    target, name, volume["projected"] or {}, get_secret, get_configmap, get_token
                )
            elif "downwardAPI" in volume:
                _fresh_dir(target)
                self._write_fields(target, name, volume["downwardAPI"] or {}, None)
            elif "emptyDir" in volume:
                _private_dir(target)
            elif "secret" in volume:
                await self._projected(
                    target, name, volume["secret"], "Secret", "secretName", get_secret
                )
            elif "configMap" in volume:
                await self._projected(
                    target, name, volume["configMap"], "ConfigMap", "name", get_configmap
                )
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise mount_error(
                    name, f"volume type {', '.join(kinds)} is not supported by the node agent"
                )
            self.volumes[name] = target

    async def _projected(
        self,
        target: Path,
        volume: str,
        source: JSON,
        kind: str,
        name_field: str,
        fetch: Fetch,
    ) -> None:
        obj = await fetch(self.namespace, str(source.get(name_field) or ""))
        self._write_projection(target, volume, source, kind, name_field, obj)

    def _write_projection(
        self, target: Path, volume: str, source: JSON, kind: str, name_field: str, obj: JSON | None
    ) -> None:
        _fresh_dir(target)
        self._write_items(target, volume, source, kind, name_field, obj, None)

    def _write_items(
        self,
        target: Path,
        volume: str,
        source: JSON,
        kind: str,
        name_field: str,
        obj: JSON | None,
        default: Any,
    ) -> None:
        optional = bool(source.get("optional"))
        if obj is None:
            if optional:
                return
            raise mount_error(volume, f'{kind.lower()} "{source.get(name_field)}" not found')
        data = source_data(obj, kind)
        default_mode = source.get("defaultMode", DEFAULT_MODE if default is None else default)
        items = source.get("items")
        wanted: list[tuple[str, str, Any]] = (
            [(str(i["key"]), str(i["path"]), i.get("mode", default_mode)) for i in items]
            if items
            else [(key, key, default_mode) for key in data]
        )
        for key, rel, mode in wanted:
            if key not in data:
                if optional:
                    continue
                raise mount_error(volume, f"references non-existent {kind.lower()} key: {key}")
            _private_file(_inside(target, volume, rel), data[key], _owner_mode(mode))

    async def _projected_volume(
        self,
        target: Path,
        volume: str,
        projected: JSON,
        get_secret: Fetch,
        get_configmap: Fetch,
        get_token: TokenFetch,
    ) -> None:
        """Secrets, ConfigMaps, downward API fields and ServiceAccount tokens in one
        directory, as the ServiceAccount admission plugin's `kube-api-access-*` volume asks."""
        _fresh_dir(target)
        mode = projected.get("defaultMode", DEFAULT_MODE)
        for source in projected.get("sources") or []:
            if "secret" in source:
                secret = source["secret"] or {}
                obj = await get_secret(self.namespace, str(secret.get("name") or ""))
                self._write_items(target, volume, secret, "Secret", "name", obj, mode)
            elif "configMap" in source:
                config = source["configMap"] or {}
                obj = await get_configmap(self.namespace, str(config.get("name") or ""))
                self._write_items(target, volume, config, "ConfigMap", "name", obj, mode)
            elif "downwardAPI" in source:
                self._write_fields(target, volume, source["downwardAPI"] or {}, mode)
            elif "serviceAccountToken" in source:
                token = source["serviceAccountToken"] or {}
                seconds = int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
                path = _inside(target, volume, str(token.get("path") or "token"))
                self.tokens.append((path, token.get("audience") or None, seconds, mode))
            else:
                kinds = sorted(source)
                raise mount_error(volume, f"projected source {', '.join(kinds)} is not supported")
        await self.refresh_tokens(get_token)

    async def refresh_tokens(self, get_token: TokenFetch) -> None:
        """Asks TokenRequest for every projected token and swaps each file in atomically; the
        next refresh is due at 80 % of the shortest lifetime, as the kubelet does."""
        due: list[datetime] = []
        for path, audience, seconds, mode in self.tokens:
            try:
                token, expires = await get_token(self.pod, audience, seconds)
            except SetupError:
                raise
            except Exception as error:  # the API unreachable, the account missing, …
                volume = path.parent.name
                raise mount_error(volume, f"failed to fetch token: {error}") from error
            partial = path.with_name(f".{path.name}.new")
            _private_file(partial, token.encode(), _owner_mode(mode))
            os.replace(partial, path)
            lifetime = (expires - now()).total_seconds()
            due.append(now() + timedelta(seconds=max(lifetime * 0.8, 1.0)))
        self.token_refresh_at = min(due) if due else None

    def _write_fields(self, target: Path, volume: str, source: JSON, default: Any) -> None:
        default_mode = source.get("defaultMode", DEFAULT_MODE if default is None else default)
        for item in source.get("items") or []:
            ref = item.get("fieldRef") or {}
            if not ref:
                raise mount_error(volume, "only fieldRef items are supported in downwardAPI")
            value = self._field(str(ref.get("fieldPath") or ""))
            path = _inside(target, volume, str(item.get("path") or ""))
            _private_file(path, value.encode(), _owner_mode(item.get("mode", default_mode)))

    def _mounts(self, container: JSON) -> Mounts:
        mounts = Mounts()
        for mount in container.get("volumeMounts") or []:
            local = self.volumes.get(str(mount.get("name", "")))
            if local is None:
                raise config_error(f'cannot find volume "{mount.get("name")}" to mount')
            sub = str(mount.get("subPath") or "")
            if sub:
                local = local / sub
                if not local.exists():
                    _private_dir(local)
            path = str(mount.get("mountPath", ""))
            bind = self.real_mounts and (path.rstrip("/") + "/").startswith(BIND_PREFIXES)
            mounts.add(path, local, bind=bind, ro=bool(mount.get("readOnly")))
        return mounts

    async def plan(
        self,
        container: JSON,
        argv: list[str],
        base_env: Mapping[str, str],
        extra_env: Mapping[str, str],
        get_secret: Fetch,
        get_configmap: Fetch,
    ) -> ContainerPlan:
        """The command, environment and files of one container; raises SetupError."""
        name = str(container.get("name", "container"))
        mounts = self._mounts(container)
        term_path = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
        term_file = _private_dir(self.root / "termination") / _SAFE_NAME.sub("_", name)
        _private_file(term_file, b"")
        mounts.add(term_path, term_file)
        scratch = mounts.get("/tmp") or _private_dir(self.root / "scratch")  # noqa: S108

        env: dict[str, str] = {
            **base_env,
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "HOSTNAME": self.name,
            **extra_env,
        }
        declared: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            declared.update(await self._env_from(source, get_secret, get_configmap))
        for var in container.get("env") or []:
            value = await self._env_value(var, declared, get_secret, get_configmap)
            if value is not None:
                declared[str(var["name"])] = value
        env.update({k: mounts.local(v) for k, v in declared.items()})

        command = [expand(str(w), declared) for w in container.get("command") or []]
        args = [expand(str(w), declared) for w in container.get("args") or []]
        # The program itself comes from the "image", this machine's own files: a mount over a
        # directory that holds it (the repository under /tmp, say) must not hide it.
        words = [*command[:1], *(mounts.local(w) for w in [*command[1:], *args])]
        full = [*argv, *words] if not container.get("command") else words
        working = str(container.get("workingDir") or "")
        cwd = Path(mounts.local(working)) if working else scratch
        if not cwd.is_dir():
            cwd = scratch
        log_dir = _private_dir(self.log_dir)
        return ContainerPlan(
            name=name,
            argv=full,
            env=env,
            cwd=cwd,
            termination_file=term_file,
            termination_policy=str(container.get("terminationMessagePolicy") or "File"),
            log_file=log_dir / f"{_SAFE_NAME.sub('_', name)}.log",
            binds=list(mounts.binds),
        )

    async def _env_from(self, source: JSON, get_secret: Fetch, get_configmap: Fetch) -> JSON:
        prefix = str(source.get("prefix") or "")
        if "secretRef" in source:
            ref, kind, fetch = source["secretRef"], "secret", get_secret
        elif "configMapRef" in source:
            ref, kind, fetch = source["configMapRef"], "configmap", get_configmap
        else:
            return {}
        name = str(ref.get("name") or "")
        obj = await fetch(self.namespace, name)
        if obj is None:
            if ref.get("optional"):
                return {}
            raise config_error(f'{kind} "{name}" not found')
        data = source_data(obj, "Secret" if kind == "secret" else "ConfigMap")
        return {f"{prefix}{k}": v.decode(errors="replace") for k, v in data.items()}

    async def _env_value(
        self, var: JSON, declared: Mapping[str, str], get_secret: Fetch, get_configmap: Fetch
    ) -> str | None:
        if "valueFrom" not in var:
            return expand(str(var.get("value") or ""), declared)
        source = var["valueFrom"] or {}
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            is_secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if is_secret else "configMapKeyRef"]
            kind, title = ("secret", "Secret") if is_secret else ("configmap", "ConfigMap")
            name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
            obj = await (get_secret if is_secret else get_configmap)(self.namespace, name)
            if obj is None:
                if ref.get("optional"):
                    return None
                raise config_error(f'{kind} "{name}" not found')
            data = source_data(obj, title)
            if key not in data:
                if ref.get("optional"):
                    return None
                raise config_error(f"couldn't find key {key} in {title} {self.namespace}/{name}")
            return data[key].decode(errors="replace")
        if "fieldRef" in source:
            return self._field(str(source["fieldRef"].get("fieldPath") or ""))
        if "resourceFieldRef" in source:
            return None  # no resource accounting here; the variable is left unset
        return None

    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        status = self.pod.get("status") or {}
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": str(self.spec.get("nodeName") or ""),
            "spec.serviceAccountName": str(self.spec.get("serviceAccountName") or "default"),
            "status.podIP": str(status.get("podIP") or "127.0.0.1"),
            "status.hostIP": str(status.get("hostIP") or "127.0.0.1"),
        }
        if path in simple:
            return simple[path]
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "".join(f'{k}="{v}"\n' for k, v in sorted(values.items()))
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        raise config_error(f"unsupported fieldPath: {path}")
