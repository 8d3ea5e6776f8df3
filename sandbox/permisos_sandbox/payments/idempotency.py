"""Idempotency keys as Stripe documents them.

The first request that starts executing under a key has its status and body saved; a retry with
the same endpoint and parameters gets them back (`Idempotent-Replayed: true`), a reuse with other
parameters or another endpoint is a 400 idempotency_error. Validation failures are not saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .errors import StripeError

MAX_KEY_LENGTH = 255
# Stripe prunes keys after at least 24 hours.
TTL_SECONDS = 24 * 3600


@dataclass
class Saved:
    endpoint: str
    fingerprint: tuple[tuple[str, str], ...]
    status: int
    body: bytes
    request_id: str
    at: float = field(default_factory=time.monotonic)


class IdempotencyCache:
    def __init__(self) -> None:
        self._saved: dict[tuple[str, str], Saved] = {}
        self._running: set[tuple[str, str]] = set()

    def clear(self) -> None:
        self._saved.clear()
        self._running.clear()

    @staticmethod
    def fingerprint(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(pairs))

    def lookup(
        self, account: str, key: str, endpoint: str, pairs: list[tuple[str, str]]
    ) -> Saved | None:
        """The saved response to replay, None to execute, or an idempotency_error."""
        if len(key) > MAX_KEY_LENGTH:
            raise StripeError(
                400,
                f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters long.",
                type="idempotency_error",
            )
        scope = (account, key)
        if scope in self._running:
            raise StripeError(
                409,
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still going "
                "through): " + key + ". Please try again later.",
                code="idempotency_key_in_use",
                type="invalid_request_error",
            )
        saved = self._saved.get(scope)
        if saved is not None and time.monotonic() - saved.at > TTL_SECONDS:
            del self._saved[scope]
            saved = None
        if saved is None:
            return None
        if saved.endpoint != endpoint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used for the same endpoint they "
                f"were first used for ('{saved.endpoint}' vs '{endpoint}'). Try using a key "
                "other than '" + key + "' if you meant to execute a different request.",
                type="idempotency_error",
            )
        if saved.fingerprint != self.fingerprint(pairs):
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with. Try using a key other than '" + key + "' if you "
                "meant to execute a different request.",
                type="idempotency_error",
            )
        return saved

    def begin(self, account: str, key: str) -> None:
        self._running.add((account, key))

    def finish(
        self,
        account: str,
        key: str,
        endpoint: str,
        pairs: list[tuple[str, str]],
        result: tuple[int, bytes, str] | None,
    ) -> None:
        """Release the key; save (status, body, request id) when the endpoint executed."""
        self._running.discard((account, key))
        if result is not None:
            status, body, request_id = result
            self._saved[(account, key)] = Saved(
                endpoint, self.fingerprint(pairs), status, body, request_id
            )
