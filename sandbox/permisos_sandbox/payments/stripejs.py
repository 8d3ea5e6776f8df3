"""The browser side of Stripe, as the simulator serves it: a Stripe.js stand-in at `/v3/` (the
subset the applicant's card page uses, with Stripe.js's names and result shapes), the card
Element's iframe, and what the 3-D Secure page answers inside Stripe.js's modal.

The card number is typed into the iframe, which is this origin's page: it creates the
PaymentMethod itself (POST /v1/payment_methods with the publishable key) and hands the
merchant's page only the PaymentMethod's id, as Stripe's own Elements do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent
FILES = {
    "/v3/": ("stripe-v3.js", "text/javascript"),
    "/v3/elements/card": ("card-element.html", "text/html"),
    "/v3/elements/card.js": ("card-element.js", "text/javascript"),
}


def add_routes(app: web.Application) -> None:
    for path, (name, kind) in FILES.items():
        app.router.add_get(path, _serve((HERE / name).read_text(), kind))
    app.router.add_get("/v3", _to_slash)


async def _to_slash(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/v3/")


def _serve(text: str, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            text=text,
            content_type=kind,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    return handle


def challenge_done(ok: bool) -> str:
    """The 3-D Secure page's answer in a browser: it tells the page that framed it (Stripe.js,
    which then reads the PaymentIntent for the outcome; the message itself carries nothing)."""
    said = "Authentication complete." if ok else "Authentication failed."
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>3D Secure 2 Test Page</title></head><body><p>{said}</p><script>"
        'if (window.parent !== window) window.parent.postMessage({type: "stripe-3ds-result"}, "*");'
        "</script></body></html>"
    )
