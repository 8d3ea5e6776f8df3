"""The API server's semantics: create, read, update, patch, delete, subresources and GC.

Handlers here are synchronous on purpose: each request's read-modify-write happens without
yielding to the event loop, which gives the same atomicity etcd transactions give kube.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import crds as crdlib
from . import meta as metalib
from . import patches
from .errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from .registry import Registry
from .resources import ResourceType
from .schema import Validator, apply_defaults, prune
from .selectors import combine, field_selector, label_selector
from .store import DEFAULT_HISTORY, Store

JSON = dict[str, Any]
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"
_NS_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)
_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


@dataclass
class Result:
    code: int
    body: JSON
    warnings: list[str] = field(default_factory=list)


@dataclass
class Options:
    """Query parameters that change how a write behaves."""

    dry_run: bool = False
    field_validation: str = "Warn"
    field_manager: str = ""

    @classmethod
    def parse(cls, query: Any) -> Options:
        return cls(
            dry_run=bool(query.get("dryRun")),
            field_validation=query.get("fieldValidation") or "Warn",
            field_manager=query.get("fieldManager") or "",
        )


def _rv(obj: JSON | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def _deep_get(obj: Any, path: str) -> Any:
    for part in path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _deep_set(obj: JSON, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


class Api:
    def __init__(self, history_limit: int = DEFAULT_HISTORY) -> None:
        self.registry = Registry()
        self.store = Store(history_limit)
        self._gc_wake = asyncio.Event()
        self._gc_task: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start_gc(self) -> None:
        self._gc_task = asyncio.get_running_loop().create_task(self._gc_loop())

    async def stop_gc(self) -> None:
        if self._gc_task is not None:
            self._gc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None

    def bootstrap(self, crds: list[JSON]) -> None:
        ns = self.registry.by_key("namespaces")
        assert ns is not None
        for name in ("default", "kube-system", "kube-public"):
            self.create(
                ns,
                "v1",
                "",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                Options(),
            )
        crd_type = self.registry.by_key(CRD_KEY)
        assert crd_type is not None
        for crd in crds:
            name = (crd.get("metadata") or {}).get("name", "")
            if self.store.get(CRD_KEY, "", name) is None:
                self.create(crd_type, "v1", "", copy.deepcopy(crd), Options())

    # --- helpers ----------------------------------------------------------------------------

    def view(self, rt: ResourceType, version: str, obj: JSON) -> JSON:
        """The object as a client of `version` sees it (all versions share one storage)."""
        api_version = rt.api_version(version)
        if obj.get("apiVersion") == api_version:
            return obj
        return {**obj, "apiVersion": api_version}

    def _existing(self, rt: ResourceType, ns: str, name: str) -> JSON:
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        namespace = self.store.get("namespaces", "", ns)
        if namespace is None:
            raise not_found("namespaces", "", ns)
        if namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f'{rt.plural} "" is forbidden: unable to create new content in namespace {ns} '
                "because it is being terminated",
                "Forbidden",
            )

    def _validate(
        self, rt: ResourceType, version: str, obj: JSON, old: JSON | None, opts: Options
    ) -> tuple[JSON, list[str]]:
        """Prunes, defaults and validates; returns the object to store and any warnings."""
        warnings: list[str] = []
        errors: list[FieldError] = []
        meta = obj["metadata"]
        for optional in ("finalizers", "labels", "annotations", "ownerReferences"):
            if optional in meta and not meta[optional]:
                del meta[optional]
        name = meta.get("name", "")
        if old is None:
            errors += metalib.name_errors(name, dns_label=rt.key == "namespaces")
        schema = rt.schemas.get(version) if rt.custom else None
        if schema is not None:
            obj, pruned = prune(obj, schema, root=True)
            if pruned and opts.field_validation == "Strict":
                fields = ", ".join(f'unknown field "{p}"' for p in pruned)
                raise bad_request(f"strict decoding error: {fields}")
            if pruned and opts.field_validation == "Warn":
                warnings += [f'unknown field "{p}"' for p in pruned]
            obj = apply_defaults(obj, schema)
            errors += Validator(schema).validate(obj, old)
        else:
            errors += metalib.builtin_errors(rt.key, obj)
        if rt.key == CRD_KEY:
            errors += crdlib.validate_crd(obj)
        if errors:
            raise invalid(rt.kind, rt.group, name, errors)
        return obj, warnings

    def _spec_part(self, rt: ResourceType, obj: JSON) -> Any:
        if rt.custom:
            skip = {"metadata", "apiVersion", "kind"} | (
                {"status"} if rt.status_subresource else set()
            )
            return {k: v for k, v in obj.items() if k not in skip}
        return obj.get("spec")

    def _commit(self, rt: ResourceType, obj: JSON, old: JSON | None) -> JSON:
        obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.write(rt.key, obj, old)
        if rt.key == CRD_KEY:
            self._register_crd(obj)
        if obj["metadata"].get("ownerReferences"):
            self._gc_wake.set()
        return obj

    def _remove(self, rt: ResourceType, obj: JSON) -> JSON:
        gone_obj = copy.deepcopy(obj)
        gone_obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.remove(rt.key, gone_obj)
        if rt.key == CRD_KEY:
            self._unregister_crd(gone_obj)
        self._gc_wake.set()
        return gone_obj

    def _register_crd(self, crd: JSON) -> None:
        rt = crdlib.resource_type(crd)
        self.registry.add(rt)

    def _unregister_crd(self, crd: JSON) -> None:
        rt = crdlib.resource_type(crd)
        # Deleting a CRD deletes every object of its kind, as kube's finalizer does.
        for obj in self.store.items(rt.key):
            gone_obj = copy.deepcopy(obj)
            gone_obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.remove(rt.key, gone_obj)
        self.store.drop_type(rt.key)
        self.registry.remove(rt.key)

    # --- reads ------------------------------------------------------------------------------

    def get(self, rt: ResourceType, version: str, ns: str, name: str) -> JSON:
        return self.view(rt, version, self._existing(rt, ns, name))

    def list_objects(
        self, rt: ResourceType, version: str, ns: str | None, query: Any
    ) -> tuple[list[JSON], JSON]:
        predicate = combine(
            label_selector(query.get("labelSelector")),
            field_selector(query.get("fieldSelector"), rt.field_labels),
        )
        items = [o for o in self.store.items(rt.key, ns) if predicate is None or predicate(o)]
        list_meta: JSON = {"resourceVersion": str(self.store.rv)}
        token = query.get("continue")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(f"continue key is not valid: {exc}") from exc
            items = [
                o
                for o in items
                if [o["metadata"].get("namespace", ""), o["metadata"]["name"]] > start
            ]
        limit = int(query.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            cursor = json.dumps(
                {"start": [last.get("namespace", ""), last["name"]], "rv": self.store.rv}
            )
            list_meta["continue"] = base64.urlsafe_b64encode(cursor.encode()).decode()
            list_meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return [self.view(rt, version, o) for o in items], list_meta

    # --- create -----------------------------------------------------------------------------

    def create(self, rt: ResourceType, version: str, ns: str, body: Any, opts: Options) -> Result:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        kind = obj.get("kind") or rt.kind
        api_version = obj.get("apiVersion") or rt.api_version(version)
        if kind != rt.kind or api_version != rt.api_version(version):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version "
                f"({rt.api_version(version)})"
                if api_version != rt.api_version(version)
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"], obj["kind"] = rt.api_version(rt.storage_version), rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request(_NS_MISMATCH)
            meta["namespace"] = ns
            self._check_namespace(rt, ns)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        FieldError(
                            "metadata.name",
                            "FieldValueRequired",
                            None,
                            "name or generateName is required",
                        )
                    ],
                )
            meta["name"] = metalib.generate_name(meta["generateName"])
        if self.store.get(rt.key, ns if rt.namespaced else "", meta["name"]) is not None:
            raise already_exists(rt.plural, rt.group, meta["name"])
        for server_field in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ):
            meta.pop(server_field, None)
        meta["uid"] = metalib.new_uid()
        meta["creationTimestamp"] = metalib.now()
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rt.status_subresource:
            obj.pop("status", None)
        if not rt.custom:
            metalib.builtin_create_defaults(rt.key, obj)
        if rt.key == CRD_KEY:
            crdlib.default_crd(obj)
        obj, warnings = self._validate(rt, version, obj, None, opts)
        if rt.key == CRD_KEY:
            obj["status"] = crdlib.crd_status(obj, meta["creationTimestamp"])
        if opts.dry_run:
            return Result(201, self.view(rt, version, obj), warnings)
        stored = self._commit(rt, obj, None)
        return Result(201, self.view(rt, version, stored), warnings)

    # --- update -----------------------------------------------------------------------------

    def _update(
        self,
        rt: ResourceType,
        version: str,
        old: JSON,
        new: Any,
        subresource: str,
        opts: Options,
    ) -> Result:
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            raise bad_request("the body of the request must be a JSON object")
        old_meta = old["metadata"]
        wanted_rv = _rv(new)
        if wanted_rv and wanted_rv != old_meta["resourceVersion"]:
            raise conflict(rt.plural, rt.group, old_meta["name"], _MODIFIED)
        if subresource == "status":
            obj = copy.deepcopy(old)
            if "status" in new:
                obj["status"] = copy.deepcopy(new["status"])
            else:
                obj.pop("status", None)
        else:
            obj = copy.deepcopy(new)
            obj["apiVersion"], obj["kind"] = old["apiVersion"], old["kind"]
            meta = obj.setdefault("metadata", {})
            for fixed in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if fixed in old_meta:
                    meta[fixed] = old_meta[fixed]
                else:
                    meta.pop(fixed, None)
            if rt.status_subresource:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = [
                    f
                    for f in meta.get("finalizers") or []
                    if f not in (old_meta.get("finalizers") or [])
                ]
                if added:
                    raise invalid(
                        rt.kind,
                        rt.group,
                        old_meta["name"],
                        [
                            FieldError(
                                "metadata.finalizers",
                                "FieldValueForbidden",
                                None,
                                "no new finalizers can be added if the object is being deleted, "
                                f"found new finalizers {json.dumps(added)}",
                            )
                        ],
                    )
            if rt.key == "secrets":
                metalib.secret_data(obj)
            if rt.key == CRD_KEY:
                crdlib.default_crd(obj)
        obj, warnings = self._validate(rt, version, obj, old, opts)
        obj["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if obj == old:
            # kube skips no-op writes: no new resourceVersion, no watch event.
            return Result(200, self.view(rt, version, old), warnings)
        if rt.has_generation and self._spec_part(rt, obj) != self._spec_part(rt, old):
            obj["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        if opts.dry_run:
            return Result(200, self.view(rt, version, obj), warnings)
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            return Result(200, self.view(rt, version, self._remove(rt, obj)), warnings)
        return Result(200, self.view(rt, version, self._commit(rt, obj, old)), warnings)

    def replace(
        self,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str,
        body: Any,
        subresource: str,
        opts: Options,
    ) -> Result:
        old = self._existing(rt, ns, name)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request(_NS_MISMATCH)
        if subresource == "scale":
            return self._scale_write(rt, version, old, body, opts)
        if rt.custom and not meta.get("resourceVersion"):
            # Custom resources do not allow unconditional updates.
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        0,
                        "must be specified for an update",
                    )
                ],
            )
        return self._update(rt, version, old, body, subresource, opts)

    def patch(
        self,
        rt: ResourceType,
        version: str,
        ns: str,
        name: str,
        raw: bytes,
        content_type: str,
        subresource: str,
        opts: Options,
    ) -> Result:
        if content_type not in (
            patches.MERGE,
            patches.JSON_PATCH,
            patches.STRATEGIC,
            patches.APPLY,
        ):
            raise ApiError(
                415,
                f"the server does not support patches of type {content_type!r}",
                "UnsupportedMediaType",
            )
        if content_type == patches.STRATEGIC and rt.custom and subresource != "scale":
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml",
                "UnsupportedMediaType",
            )
        try:
            body = (
                yaml.safe_load(raw) if content_type == patches.APPLY else json.loads(raw or b"null")
            )
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        if content_type == patches.APPLY:
            if not opts.field_manager:
                raise bad_request(
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch"
                )
            if self.store.get(rt.key, ns, name) is None and not subresource:
                if isinstance(body, dict):
                    body.setdefault("metadata", {}).setdefault("name", name)
                return self.create(rt, version, ns, body, opts)
        old = self._existing(rt, ns, name)
        if subresource == "scale":
            current = self._scale(rt, version, old)
            return self._scale_write(
                rt, version, old, self._apply_patch(current, body, content_type), opts
            )
        new = self._apply_patch(self.view(rt, version, old), body, content_type)
        if isinstance(new, dict) and not _rv(new):
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._update(rt, version, old, new, subresource, opts)

    def _apply_patch(self, current: JSON, body: Any, content_type: str) -> Any:
        if content_type == patches.JSON_PATCH:
            return patches.json_patch(current, body)
        if content_type == patches.STRATEGIC:
            return patches.strategic_merge(current, body)
        return patches.merge_patch(current, body)

    # --- scale ------------------------------------------------------------------------------

    def _scale(self, rt: ResourceType, version: str, obj: JSON) -> JSON:
        if rt.scale is None:
            raise not_found(rt.plural, rt.group, obj["metadata"]["name"])
        meta = obj["metadata"]
        status: JSON = {"replicas": _deep_get(obj, rt.scale.status_replicas_path) or 0}
        if rt.scale.label_selector_path:
            selector = _deep_get(obj, rt.scale.label_selector_path)
            if selector is not None:
                status["selector"] = selector
        spec: JSON = {}
        replicas = _deep_get(obj, rt.scale.spec_replicas_path)
        if replicas is not None:
            spec["replicas"] = replicas
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": spec,
            "status": status,
        }

    def get_scale(self, rt: ResourceType, version: str, ns: str, name: str) -> JSON:
        return self._scale(rt, version, self._existing(rt, ns, name))

    def _scale_write(
        self, rt: ResourceType, version: str, old: JSON, scale: Any, opts: Options
    ) -> Result:
        if rt.scale is None:
            raise not_found(rt.plural, rt.group, old["metadata"]["name"])
        if not isinstance(scale, dict):
            raise bad_request("the body of the request must be a Scale object")
        wanted_rv = _rv(scale)
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, old["metadata"]["name"], _MODIFIED)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                old["metadata"]["name"],
                [
                    FieldError(
                        "spec.replicas",
                        "FieldValueInvalid",
                        replicas,
                        "must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(self.view(rt, version, old))
        _deep_set(new, rt.scale.spec_replicas_path, replicas)
        result = self._update(rt, version, old, new, "", opts)
        stored = (
            self.store.get(rt.key, old["metadata"].get("namespace", ""), old["metadata"]["name"])
            or result.body
        )
        return Result(
            200,
            self._scale(rt, version, stored if not opts.dry_run else result.body),
            result.warnings,
        )

    # --- delete -----------------------------------------------------------------------------

    def delete(
        self, rt: ResourceType, version: str, ns: str, name: str, options: JSON, opts: Options
    ) -> Result:
        obj = self._existing(rt, ns, name)
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, "
                f"UID in object meta: {meta['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        if rt.key == "namespaces" and name in ("default", "kube-system", "kube-public"):
            raise ApiError(
                403,
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                "Forbidden",
            )
        policy = options.get("propagationPolicy") or rt.default_propagation
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        elif options.get("orphanDependents") is False and not options.get("propagationPolicy"):
            policy = "Background"
        if opts.dry_run:
            return Result(200, self.view(rt, version, obj))
        return self._delete(rt, version, obj, policy)

    def _delete(self, rt: ResourceType, version: str, obj: JSON, policy: str) -> Result:
        meta = obj["metadata"]
        if policy == "Orphan":
            self._orphan(meta["uid"])
        has_dependents = policy == "Foreground" and bool(self._dependents(meta["uid"]))
        pending = bool(meta.get("finalizers")) or has_dependents or rt.key == "namespaces"
        if pending:
            if meta.get("deletionTimestamp"):
                return Result(202, self.view(rt, version, obj))
            marked = copy.deepcopy(obj)
            mmeta = marked["metadata"]
            if rt.has_generation and mmeta.get("generation"):
                mmeta["generation"] = int(mmeta["generation"]) + 1
            mmeta["deletionTimestamp"] = metalib.now()
            mmeta["deletionGracePeriodSeconds"] = 0
            if has_dependents:
                mmeta["finalizers"] = [*(mmeta.get("finalizers") or []), "foregroundDeletion"]
            if rt.key == "namespaces":
                marked.setdefault("status", {})["phase"] = "Terminating"
            stored = self._commit(rt, marked, obj)
            self._gc_wake.set()
            code = 200 if rt.key == "namespaces" else 202
            return Result(code, self.view(rt, version, stored))
        gone_obj = self._remove(rt, obj)
        if rt.return_deleted_object:
            return Result(200, self.view(rt, version, gone_obj))
        details: JSON = {"name": meta["name"], "kind": rt.plural, "uid": meta["uid"]}
        if rt.group:
            details["group"] = rt.group
        return Result(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )

    def delete_collection(
        self,
        rt: ResourceType,
        version: str,
        ns: str | None,
        query: Any,
        options: JSON,
        opts: Options,
    ) -> Result:
        items, list_meta = self.list_objects(rt, version, ns, query)
        policy = options.get("propagationPolicy") or rt.default_propagation
        deleted = []
        for item in items:
            if not opts.dry_run:
                current = self.store.get(
                    rt.key, item["metadata"].get("namespace", ""), item["metadata"]["name"]
                )
                if current is not None:
                    self._delete(rt, version, current, policy)
            deleted.append(item)
        return Result(
            200,
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(version),
                "metadata": list_meta,
                "items": deleted,
            },
        )

    # --- garbage collection -----------------------------------------------------------------

    def _dependents(self, uid: str) -> list[tuple[str, JSON]]:
        return [
            (key, obj)
            for key, obj in self.store.all_objects()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _orphan(self, uid: str) -> None:
        for key, obj in self._dependents(uid):
            rt = self.registry.by_key(key)
            if rt is None:
                continue
            new = copy.deepcopy(obj)
            refs = [r for r in new["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences")
            self._commit(rt, new, obj)

    def collect(self) -> None:
        """One garbage-collector run: cascades deletions until nothing more changes."""
        changed = True
        while changed:
            changed = False
            objects = self.store.all_objects()
            alive = {obj["metadata"]["uid"]: obj for _, obj in objects}
            foreground = {
                uid
                for uid, obj in alive.items()
                if "foregroundDeletion" in (obj["metadata"].get("finalizers") or [])
            }
            terminating = {
                obj["metadata"]["name"]
                for key, obj in objects
                if key == "namespaces" and obj["metadata"].get("deletionTimestamp")
            }
            owners_with_dependents: set[str] = set()
            for key, obj in objects:
                rt = self.registry.by_key(key)
                meta = obj["metadata"]
                owner_uids = [r.get("uid") for r in meta.get("ownerReferences") or []]
                owners_with_dependents.update(u for u in owner_uids if isinstance(u, str))
                if rt is None or meta.get("deletionTimestamp"):
                    continue
                doomed = bool(owner_uids) and (
                    not any(u in alive for u in owner_uids)
                    or any(u in foreground for u in owner_uids)
                )
                in_dying_ns = rt.namespaced and meta.get("namespace") in terminating
                current = self.store.get(key, meta.get("namespace", ""), meta["name"])
                if (doomed or in_dying_ns) and current is obj:
                    self._delete(rt, rt.storage_version, obj, "Background")
                    changed = True
            for uid in foreground - owners_with_dependents:
                self._drop_finalizer(alive[uid], "foregroundDeletion")
                changed = True
            for name in terminating:
                if not any(
                    o["metadata"].get("namespace") == name
                    for k, o in self.store.all_objects()
                    if k != "namespaces"
                ):
                    ns_obj = self.store.get("namespaces", "", name)
                    ns_rt = self.registry.by_key("namespaces")
                    if ns_obj is not None and ns_rt is not None:
                        self._remove(ns_rt, ns_obj)
                        changed = True

    def _drop_finalizer(self, obj: JSON, finalizer: str) -> None:
        for key, candidate in self.store.all_objects():
            if candidate is obj:
                rt = self.registry.by_key(key)
                if rt is None:
                    return
                new = copy.deepcopy(obj)
                new["metadata"]["finalizers"] = [
                    f for f in new["metadata"]["finalizers"] if f != finalizer
                ]
                self._update(
                    rt, rt.storage_version, obj, new, "", Options(field_validation="Ignore")
                )
                return

    async def _gc_loop(self) -> None:
        while True:
            await self._gc_wake.wait()
            self._gc_wake.clear()
            # Background deletion: dependents go shortly after, not inside the owner's request.
            await asyncio.sleep(0)
            self.collect()
