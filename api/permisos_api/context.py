"""What each request can reach on `app.state`, typed, as dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import stripe
from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .kube import ApiKube
from .mail import Mailer
from .metrics import Metrics
from .passwords import Hasher
from .ratelimit import RateLimiter
from .settings import ApiSettings
from .storage import PermitStorage


@dataclass
class Services:
    settings: ApiSettings
    engine: Engine
    hasher: Hasher
    mailer: Mailer
    limiter: RateLimiter
    metrics: Metrics
    stripe_reads: stripe.StripeClient  # short timeout: for reads under a row lock
    stripe: stripe.StripeClient
    storage: PermitStorage
    kube: ApiKube  # the admin console's reads (connects on first use)


def services(request: Request) -> Services:
    found = request.app.state.services
    assert isinstance(found, Services)
    return found


def get_db(request: Request) -> Iterator[Session]:
    """One ORM session per request; endpoints commit explicitly."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with factory() as session:
        yield session
