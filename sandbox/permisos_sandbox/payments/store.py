"""The simulator's objects, kept as Stripe-shaped JSON dicts, and list pagination."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import invalid

Json = dict[str, Any]

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """Ids like Stripe's: a type prefix and random alphanumerics (`pi_3Mtw…`)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


@dataclass
class Voucher:
    """An issued OXXO voucher; `state` is issued, paid, expired or void (intent canceled)."""

    intent_id: str
    number: str
    expires_after: int
    state: str = "issued"


@dataclass
class Store:
    intents: dict[str, Json] = field(default_factory=dict)
    charges: dict[str, Json] = field(default_factory=dict)
    refunds: dict[str, Json] = field(default_factory=dict)
    payment_methods: dict[str, Json] = field(default_factory=dict)
    events: dict[str, Json] = field(default_factory=dict)
    vouchers: dict[str, Voucher] = field(default_factory=dict)
    # Intents waiting on a 3-D Secure challenge.
    challenges: set[str] = field(default_factory=set)

    def clear(self) -> None:
        for table in (self.intents, self.charges, self.refunds, self.payment_methods, self.events):
            table.clear()
        self.vouchers.clear()
        self.challenges.clear()


def paginate(objects: Mapping[str, Json], query: Mapping[str, Any], url: str) -> Json:
    """A Stripe list: newest first, `limit` 1..100 (default 10), starting_after/ending_before."""
    raw_limit = query.get("limit", "10")
    if not isinstance(raw_limit, str) or not raw_limit.isdigit():
        raise invalid(
            f"Invalid integer: {raw_limit}", code="parameter_invalid_integer", param="limit"
        )
    limit = int(raw_limit)
    if not 1 <= limit <= 100:
        raise invalid(
            "This value must be greater than or equal to 1 and less than or equal to 100.",
            param="limit",
        )
    # Insertion order breaks ties between objects created in the same second.
    ordered = list(enumerate(objects.values()))
    items = [o for _, o in sorted(ordered, key=lambda p: (p[1]["created"], p[0]), reverse=True)]
    start, end = query.get("starting_after"), query.get("ending_before")
    ids = [o["id"] for o in items]
    if start:
        if start not in ids:
            raise invalid(
                f"No such object: '{start}'", code="resource_missing", param="starting_after"
            )
        items = items[ids.index(start) + 1 :]
    elif end:
        if end not in ids:
            raise invalid(
                f"No such object: '{end}'", code="resource_missing", param="ending_before"
            )
        items = items[: ids.index(end)][-limit:]
    page = items[:limit]
    return {
        "object": "list",
        "data": [public(o) for o in page],
        "has_more": len(items) > limit,
        "url": url,
    }


def public(obj: Json) -> Json:
    """The object without bookkeeping keys (those starting with `_`)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}
