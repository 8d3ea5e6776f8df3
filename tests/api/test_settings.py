"""The API refuses to start in production on settings that would be unsafe there; each refusal
names the variable to fix and never echoes its value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from permisos_api.settings import ApiSettings

SAFE: dict[str, Any] = {
    "environment": "production",
    "signing_secret": "a-long-random-production-signing-secret",
    "cookie_secure": True,
    "stripe_webhook_secret": "whsec_production",
    "stripe_js_url": "https://js.stripe.com/v3/",
}


def test_safe_production_settings_are_accepted() -> None:
    assert ApiSettings(**SAFE).environment == "production"


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"signing_secret": ""}, "PERMISOS_API_SIGNING_SECRET"),
        ({"cookie_secure": False}, "PERMISOS_API_COOKIE_SECURE"),
        ({"stripe_webhook_secret": ""}, "PERMISOS_API_STRIPE_WEBHOOK_SECRET"),
        ({"stripe_js_url": "http://js.example.test/v3/"}, "PERMISOS_API_STRIPE_JS_URL"),
    ],
)
def test_unsafe_production_settings_are_refused(change: dict[str, Any], variable: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ApiSettings(**{**SAFE, **change})
    assert variable in str(refused.value)
    for value in change.values():
        if value:
            assert str(value) not in str(refused.value)


def test_development_may_load_stripe_js_from_a_local_stand_in() -> None:
    local = ApiSettings(stripe_js_url="http://127.0.0.1:8003/v3/")
    assert local.stripe_js_url.scheme == "http"
