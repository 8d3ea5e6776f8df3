"""Security headers on every answer, pages and API alike (a pure ASGI middleware).

The Content-Security-Policy allows only this origin's own scripts, styles, images and requests:
no inline script, no other site, no framing. A response that sets a header of its own keeps it.
HSTS is sent only when the cookies are Secure (behind TLS): over plain HTTP it would be ignored,
and on a developer's localhost it would pin HTTPS for the host.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # data: for the small SVG icons stylesheets carry
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
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
