"""Kopf's diff base, built without copying what it throws away.

For every watch event Kopf builds an object's "essence" (spec, labels, annotations) to detect
changes, by deep-copying the whole object, status and managed fields included, then deleting
them: in the operator benchmark that was a third of the operator's CPU. This storage hands Kopf
only the parts the essence keeps; the essence itself, and where Kopf stores it, are Kopf's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import kopf


class LeanDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if extra_fields:  # fields of the status or metadata asked for: the whole object
            return super().build(body=body, extra_fields=extra_fields)
        meta = body.get("metadata") or {}
        lean: dict[str, Any] = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        lean["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
        return super().build(body=kopf.Body(cast(kopf.RawBody, lean)))
