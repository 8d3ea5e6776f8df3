"""Security headers on every answer, and the interactive docs working with no internet in a
real browser (Debian's Chromium) under the API's own Content-Security-Policy."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import async_playwright

from permisos_api.security import stripe_js_policy
from tests.api.conftest import Api
from tests.api.serving import serving

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


async def test_every_answer_carries_the_security_headers(api: Api) -> None:
    client = api.client()
    answers = [
        await client.get("/v1/catalog"),  # JSON
        await client.get("/v1/applications"),  # a 401 problem document
        await client.get("/no/such/page"),  # a 404 from the router
        await client.get("/docs"),
        await client.get("/openapi.json"),
        await client.get("/healthz"),
    ]
    for answer in answers:
        for name, value in EXPECTED.items():
            assert answer.headers.get(name) == value, (answer.url, name)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert "camera=()" in answer.headers["permissions-policy"]


async def test_hsts_only_when_cookies_are_secure(api: Api) -> None:
    """Secure cookies mean the API is served over TLS; over plain HTTP (a developer's
    localhost) HSTS would pin HTTPS for the host, so it is left out."""
    secure = await api.client(api.app(cookie_secure=True)).get("/healthz")
    assert secure.headers["strict-transport-security"].startswith("max-age=63072000")
    plain = await api.client(api.app(cookie_secure=False)).get("/healthz")
    assert "strict-transport-security" not in plain.headers


async def test_docs_assets_are_served_here_and_nothing_else(api: Api) -> None:
    client = api.client()
    page = (await client.get("/docs")).text
    assert "cdn" not in page.lower() and "https://" not in page
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200
    # Only the files the page loads; never a path out of the package.
    for name in ("index.html", "swagger-ui-bundle.js.map", "..%2F..%2F__init__.py"):
        missing = await client.get(f"/docs/assets/{name}")
        assert missing.status_code == 404, name
        assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.get("/redoc")).status_code == 404  # it would load from a CDN


async def test_the_docs_work_offline_in_a_browser_under_the_policy(api: Api) -> None:
    app = api.app()
    operations = sum(
        1
        for path in app.openapi()["paths"].values()
        for method in path
        if method in ("get", "post", "put", "patch", "delete")
    )
    async with serving(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            elsewhere: list[str] = []
            violations: list[str] = []

            async def only_here(route: object) -> None:
                request = route.request  # type: ignore[attr-defined]
                if urlsplit(request.url).netloc != urlsplit(base).netloc:
                    elsewhere.append(request.url)
                    await route.abort()  # type: ignore[attr-defined]
                else:
                    await route.continue_()  # type: ignore[attr-defined]

            await page.route("**/*", only_here)
            page.on(
                "console",
                lambda msg: (
                    violations.append(msg.text) if "Content Security Policy" in msg.text else None
                ),
            )
            await page.goto(f"{base}/docs")
            shown = page.locator(".opblock")
            await shown.nth(operations - 1).wait_for(timeout=30_000)
            assert await shown.count() == operations
            title = await page.locator(".information-container .title").inner_text()
            assert "Permisos Digitales API" in title
            assert elsewhere == []
            assert violations == []
        finally:
            await browser.close()


def test_the_card_page_policy_for_stripes_own_script_lists_stripes_documented_origins() -> None:
    """With Stripe.js from js.stripe.com, the card page allows what Stripe's CSP guide lists:
    scripts from js.stripe.com and its subdomains, frames from those and hooks.stripe.com (3-D
    Secure), requests to api.stripe.com; and nothing else from elsewhere."""
    policy = stripe_js_policy("https://js.stripe.com/v3/")
    directives = {name: value for name, _, value in (p.partition(" ") for p in policy.split("; "))}
    assert directives["script-src"] == "'self' https://js.stripe.com https://*.js.stripe.com"
    assert directives["frame-src"] == (
        "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
    )
    assert directives["connect-src"] == "'self' https://api.stripe.com"
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
