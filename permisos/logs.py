"""Structured JSON logs for every component: one object per line, never personal data.

Callers pass identifiers (the PermitRequest name, the attempt) through `extra=`; only the keys in
`FIELDS` are written, so an extra that happens to carry a whole object (Kopf attaches its
settings and the resource body) can never spill personal data into a log line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FIELDS = (
    "permitrequest",
    "attempt",
    "phase",
    "reason",
    "pool",
    "job",
    # An HTTP request's shape: the route template, never the path with its ids.
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        ref = record.__dict__.get("k8s_ref")
        if isinstance(ref, dict) and ref.get("name"):
            line.setdefault("object", f"{ref.get('kind', '')}/{ref['name']}")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
