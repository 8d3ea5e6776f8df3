"""Security headers on every answer, pages and API alike (a pure ASGI middleware).

The Content-Security-Policy allows only this origin's own scripts, styles, images and requests:
no inline script, no other site, no framing. The card page alone sets its own, which also allows
Stripe.js's origins (`stripe_js_policy`). A response that sets a header of its own keeps it.
HSTS is sent only when the cookies are Secure (behind TLS): over plain HTTP it would be ignored,
and on a developer's localhost it would pin HTTPS for the host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Stripe.js's origins as Stripe documents them for a page that runs it: the script, its frames
# (the card Element and the 3-D Secure challenge on hooks.stripe.com) and its API. Any other
# script address is a stand-in that serves all three from its own origin (the simulator's).
STRIPE_JS = "https://js.stripe.com"
# Elements load scripts and frames from subdomains of js.stripe.com too (Stripe's CSP guide).
STRIPE_SCRIPTS = (STRIPE_JS, "https://*.js.stripe.com")
STRIPE_FRAMES = (*STRIPE_SCRIPTS, "https://hooks.stripe.com")
STRIPE_API = "https://api.stripe.com"


def content_security_policy(
    *, scripts: tuple[str, ...] = (), frames: tuple[str, ...] = (), connect: tuple[str, ...] = ()
) -> str:
    """This origin's own resources only, plus the given origins for scripts, frames, requests."""
    directives = [
        "default-src 'self'",
        " ".join(("script-src 'self'", *scripts)),
        "style-src 'self'",
        "img-src 'self' data:",  # data: for the small SVG icons stylesheets carry
        "font-src 'self'",
        " ".join(("connect-src 'self'", *connect)),
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
    if frames:
        directives.insert(2, " ".join(("frame-src", *frames)))
    return "; ".join(directives)


def stripe_js_policy(stripe_js_url: str) -> str:
    """The policy of a page that loads Stripe.js from `stripe_js_url` (the card page only)."""
    parts = urlsplit(stripe_js_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin == STRIPE_JS:
        return content_security_policy(
            scripts=STRIPE_SCRIPTS, frames=STRIPE_FRAMES, connect=(STRIPE_API,)
        )
    return content_security_policy(scripts=(origin,), frames=(origin,), connect=(origin,))


CONTENT_SECURITY_POLICY = content_security_policy()
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), usb=(), payment=()"
HSTS = "max-age=63072000; includeSubDomains"


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        # Links carry tokens (email verification, password reset): never send the URL on.
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "permissions-policy": PERMISSIONS_POLICY,
        "cross-origin-opener-policy": "same-origin",
    }
    if hsts:
        headers["strict-transport-security"] = HSTS
    return [(name.encode(), value.encode()) for name, value in headers.items()]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = security_headers(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((n, v) for n, v in self.headers if n not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_wrapper)
