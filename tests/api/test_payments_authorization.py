"""Who may pay and who may see payments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.payments_support import Pay


async def test_only_the_owner_pays_and_the_owner_or_an_admin_lists(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    owner = await make_user()
    other = await make_user()
    admin = await make_user("admin")
    app_id = await pay.new_application(owner)
    path = f"/v1/applications/{app_id}/payments"
    anonymous = pay.api.client(pay.app)

    r = await anonymous.post(path, json={"method": "oxxo"})
    assert r.status_code == 401 and r.json()["type"].endswith("/authentication-required")
    assert (await anonymous.get(path)).status_code == 401
    for method in ("post", "get"):
        kwargs: dict[str, Any] = {"json": {"method": "oxxo"}} if method == "post" else {}
        r = await getattr(other.client, method)(path, headers=other.bearer(), **kwargs)
        assert r.status_code == 404, r.text
    r = await admin.client.post(path, json={"method": "oxxo"}, headers=admin.bearer())
    assert r.status_code == 403
    # Cookie sessions need the CSRF token.
    r = await owner.client.post(path, json={"method": "oxxo"})
    assert r.status_code == 403 and r.json()["type"].endswith("/csrf-failed")
    assert pay.sql("SELECT count(*) FROM payments WHERE application_id = %s", app_id) == [(0,)]

    r = await owner.client.post(path, json={"method": "oxxo"}, headers={"X-CSRF-Token": owner.csrf})
    assert r.status_code == 201, r.text
    for user in (owner, admin):
        r = await user.client.get(path, headers=user.bearer())
        assert r.status_code == 200 and len(r.json()["items"]) == 1
    missing = "/v1/applications/00000000-0000-4000-8000-000000000000/payments"
    assert (await owner.client.get(missing, headers=owner.bearer())).status_code == 404


async def test_requests_that_cannot_be_paid(pay: Pay, make_user: Callable[..., Any]) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    for body, rule in (
        ({"method": "cash"}, "literal_error"),
        ({"method": "card", "payment_method": "4242424242424242"}, "string_pattern_mismatch"),
        ({"method": "oxxo", "payment_method": "pm_card_visa"}, "card_only"),
        ({"method": "card", "payment_method": "pm_no_such_method"}, None),
    ):
        r = await pay.pay(user, app_id, **body)
        assert r.status_code == 422, (body, r.text)
        if rule:
            assert r.json()["errors"][0]["rule"] == rule
    r = await user.client.post(f"/v1/applications/{app_id}/cancel", headers=user.bearer())
    assert r.status_code == 200
    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 409 and r.json()["type"].endswith("/invalid-state")
