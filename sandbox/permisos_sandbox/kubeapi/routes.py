"""HTTP: URL parsing, content negotiation, watch streaming and Status error responses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import discovery, tables
from .api import Api, Options, Result
from .errors import ApiError, bad_request
from .resources import ResourceType
from .selectors import combine, field_selector, label_selector

JSON = dict[str, Any]
_NOT_FOUND = ApiError(404, "the server could not find the requested resource", "NotFound")
_TRUE = ("true", "1")


@dataclass(frozen=True)
class AuditRecord:
    """One resource request as RBAC would authorize it (kube-apiserver's request attributes)."""

    user: str  # the bearer token's text, or "" without one (the emulator does no authentication)
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


def request_verb(method: str, named: bool, watch: bool) -> str:
    """The RBAC verb of a request, as kube-apiserver's RequestInfoFactory derives it."""
    if watch:
        return "watch"
    if method in ("GET", "HEAD"):
        return "get" if named else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


@dataclass
class Target:
    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


class Routes:
    def __init__(
        self, api: Api, bookmark_interval: float, audit: list[AuditRecord] | None = None
    ) -> None:
        self.api = api
        # When given, every resource request is appended here before it is served (as RBAC
        # sees requests: authorized before the object is looked up).
        self.audit = audit
        self.bookmark_interval = bookmark_interval
        self.closing = asyncio.Event()
        self.openapi = discovery.OpenApi(api.registry)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        reg = self.api.registry
        if request.method != "GET" and (not parts or parts[0] not in ("api", "apis")):
            raise ApiError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )
        if not parts:
            return _json(
                {"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz"]}
            )
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "version":
            return _json(discovery.KUBE_VERSION)
        if head == "openapi":
            return self._openapi(parts)
        if head == "api" and len(parts) == 1:
            return _json(discovery.api_versions(request.host))
        if head == "apis" and len(parts) == 1:
            return _json(discovery.api_group_list(reg))
        if head == "apis" and len(parts) == 2:
            doc = discovery.api_group(reg, parts[1])
            if doc is None:
                raise _NOT_FOUND
            return _json(doc)
        if head == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _NOT_FOUND
        if not rest:
            if request.method != "GET":
                raise ApiError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            doc = discovery.api_resource_list(reg, group, version)
            if doc is None:
                raise _NOT_FOUND
            return _json(doc)
        target = self._target(group, version, rest)
        if self.audit is not None:
            self.audit.append(self._audit_record(request, target))
        return await self._resource(request, target)

    @staticmethod
    def _audit_record(request: web.Request, t: Target) -> AuditRecord:
        auth = request.headers.get("Authorization", "")
        watch = request.query.get("watch", "").lower() in _TRUE
        return AuditRecord(
            user=auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else "",
            verb=request_verb(request.method, t.name is not None, watch),
            group=t.rt.group,
            resource=t.rt.plural,
            subresource=t.subresource,
            namespace=t.namespace or "",
            name=t.name or "",
        )

    def _openapi(self, parts: list[str]) -> web.Response:
        if parts[1:] == ["v3"]:
            return _json(self.openapi.index())
        if len(parts) >= 4 and parts[1] == "v3":
            if parts[2] == "api" and len(parts) == 4:
                doc = self.openapi.document("", parts[3])
            elif parts[2] == "apis" and len(parts) == 5:
                doc = self.openapi.document(parts[3], parts[4])
            else:
                doc = None
            if doc is not None:
                return _json(doc)
        raise _NOT_FOUND

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _NOT_FOUND
        rt = self.api.registry.lookup(group, version, rest[0])
        if rt is None:
            raise _NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if (namespace is not None and not rt.namespaced) or (
            rt.namespaced and name and namespace is None
        ):
            raise _NOT_FOUND
        allowed = (
            {""}
            | ({"status"} if rt.status_subresource else set())
            | ({"scale"} if rt.scale else set())
        )
        if rt.key == "namespaces":
            allowed.add("finalize")
        if sub not in allowed:
            raise _NOT_FOUND
        return Target(rt, version, namespace, name, sub)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if "protobuf" in ctype:
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/yaml",
                "UnsupportedMediaType",
            )
        if not raw:
            return None
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        api, q, method = self.api, request.query, request.method
        opts = Options.parse(q)
        ns = t.namespace or ""
        result: Result
        if t.name is None:
            if method == "GET":
                if q.get("watch", "").lower() in _TRUE:
                    return await self._watch(request, t)
                items, list_meta = api.list_objects(t.rt, t.version, t.namespace, q)
                if _wants_table(request):
                    return _json(
                        tables.table(t.rt, t.version, items, list_meta, q.get("includeObject", ""))
                    )
                return _json(
                    {
                        "kind": t.rt.list_kind,
                        "apiVersion": t.rt.api_version(t.version),
                        "metadata": list_meta,
                        "items": items,
                    }
                )
            if method == "POST":
                if t.rt.namespaced and t.namespace is None:
                    raise ApiError(
                        405,
                        "the server does not allow this method on the requested resource",
                        "MethodNotAllowed",
                    )
                result = api.create(t.rt, t.version, ns, await self._body(request), opts)
            elif method == "DELETE":
                body = await self._body(request)
                result = api.delete_collection(
                    t.rt, t.version, t.namespace, q, self._delete_options(q, body), opts
                )
            else:
                raise ApiError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            return _json(result.body, result.code, result.warnings)
        if method == "GET":
            if t.subresource == "scale":
                return _json(api.get_scale(t.rt, t.version, ns, t.name))
            obj = api.get(t.rt, t.version, ns, t.name)
            if _wants_table(request):
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return _json(tables.table(t.rt, t.version, [obj], meta, q.get("includeObject", "")))
            return _json(obj)
        sub = "" if t.subresource == "finalize" else t.subresource
        if method == "PUT":
            result = api.replace(t.rt, t.version, ns, t.name, await self._body(request), sub, opts)
        elif method == "PATCH":
            raw = await request.read()
            result = api.patch(t.rt, t.version, ns, t.name, raw, request.content_type, sub, opts)
        elif method == "DELETE" and not t.subresource:
            body = await self._body(request)
            result = api.delete(t.rt, t.version, ns, t.name, self._delete_options(q, body), opts)
        else:
            raise ApiError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
            )
        return _json(result.body, result.code, result.warnings)

    def _delete_options(self, query: Any, body: Any) -> JSON:
        options: JSON = dict(body) if isinstance(body, dict) else {}
        if query.get("propagationPolicy"):
            options["propagationPolicy"] = query["propagationPolicy"]
        if query.get("orphanDependents"):
            options["orphanDependents"] = query["orphanDependents"].lower() in _TRUE
        if options.get("propagationPolicy") not in (None, "Orphan", "Background", "Foreground"):
            raise bad_request(
                f"propagationPolicy: Unsupported value: {options['propagationPolicy']!r}"
            )
        return options

    # --- watch ------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        predicate = combine(
            label_selector(q.get("labelSelector")),
            field_selector(q.get("fieldSelector"), t.rt.field_labels),
        )
        raw_rv = q.get("resourceVersion", "")
        since: int | None = None
        if raw_rv not in ("", "0"):
            try:
                since = int(raw_rv)
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {raw_rv!r}") from exc
        if since is not None and q.get("sendInitialEvents", "").lower() in _TRUE:
            since = None
        bookmarks = q.get("allowWatchBookmarks", "").lower() in _TRUE
        timeout = float(q.get("timeoutSeconds") or 1800)
        as_table = _wants_table(request)
        include = q.get("includeObject", "")

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        api_version = t.rt.api_version(t.version)

        def line(kind: str, obj: JSON) -> bytes:
            shown = self.api.view(t.rt, t.version, obj)
            if as_table and kind != "BOOKMARK":
                shown = tables.table(
                    t.rt,
                    t.version,
                    [shown],
                    {"resourceVersion": shown["metadata"]["resourceVersion"]},
                    include,
                )
            return (
                json.dumps({"type": kind, "object": shown}, separators=(",", ":")) + "\n"
            ).encode()

        def bookmark(initial_end: bool = False) -> bytes:
            meta: JSON = {"resourceVersion": str(self.api.store.rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            obj = {"kind": t.rt.kind, "apiVersion": api_version, "metadata": meta}
            return (
                json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")) + "\n"
            ).encode()

        try:
            watcher, backlog = self.api.store.watch(t.rt.key, t.namespace, predicate, since)
        except ApiError as exc:
            # kube reports an expired resourceVersion inside the stream, as an ERROR event.
            with contextlib.suppress(ConnectionError):
                await response.write(
                    (json.dumps({"type": "ERROR", "object": exc.status()}) + "\n").encode()
                )
                await response.write_eof()
            return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            payload = b"".join(line(kind, obj) for kind, obj in backlog)
            if q.get("sendInitialEvents", "").lower() in _TRUE and bookmarks:
                payload += bookmark(initial_end=True)
            if payload:
                await response.write(payload)
            next_bookmark = loop.time() + self.bookmark_interval
            while not self.closing.is_set():
                now = loop.time()
                if now >= deadline:
                    break
                if request.transport is None or request.transport.is_closing():
                    break
                wait = min(deadline - now, 1.0)
                if bookmarks:
                    wait = min(wait, max(next_bookmark - now, 0.0))
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        await response.write(bookmark())
                        next_bookmark = loop.time() + self.bookmark_interval
                    continue
                if item is None:
                    break
                chunk = [line(*item)]
                while not watcher.queue.empty():
                    more = watcher.queue.get_nowait()
                    if more is None:
                        watcher.queue.put_nowait(None)
                        break
                    chunk.append(line(*more))
                await response.write(b"".join(chunk))
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        except ConnectionError:
            pass
        finally:
            self.api.store.unwatch(watcher)
        return response
