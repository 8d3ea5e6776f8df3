"""The demo `make run` plays: one applicant from registration to three PDFs on disk."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .applicant import Applicant, DemoError, Progress
from .stack import Platform

# A fictional applicant (the CURP's check digit is valid); plates differ on every run.
DEMO_APPLICATION: dict[str, Any] = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "maternal_surname": "Díaz",
    "curp": "GODE561231HDFRRN00",
    "phone": "5512345678",
    "make": "nissan",
    "line": "versa",
    "service_type": "particular",
    "model_year": 2022,
    "vin": "1HGCM82633A004352",
}


def demo_plates() -> str:
    return f"DM{secrets.randbelow(100_000):05d}"


async def run_demo(
    platform: Platform,
    out_dir: Path,
    say: Callable[[str], None] = print,
    within: float = 240.0,
) -> list[Path]:
    """Registers, applies, pays at OXXO and follows the permit; returns the PDFs' paths."""
    address = f"demo-{secrets.token_hex(4)}@example.com"
    applicant = Applicant(
        platform.api_url,
        platform.outbox,
        address,
        {**DEMO_APPLICATION, "email": address, "plates": demo_plates()},
    )
    started = time.monotonic()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - started:6.1f}s] {text}")

    try:
        step("register a demo applicant and verify its email from the outbox")
        await applicant.register_and_verify()
        await applicant.login()
        app = await applicant.apply()
        step(f"applied: application {app['id']}, {app['amount_centavos'] / 100:.2f} MXN")
        payment = await applicant.pay_oxxo()
        voucher = payment.get("voucher") or {}
        step(f"OXXO voucher issued: reference {voucher.get('number', '?')}")
        await applicant.pay_voucher_at_store(platform.payments_url)
        step("voucher paid at the store; following the permit:")

        def show(change: Progress) -> None:
            phase = change.phase or "-"
            detail = f" ({change.reason})" if change.reason else ""
            attempt = f", attempt {change.attempts}" if change.attempts else ""
            step(f"    {change.status:<16} permit {phase}{detail}{attempt}")

        final = await applicant.follow(within, show)
        if final["status"] != "permit_ready":
            raise DemoError(
                f"the permit failed: {final['permit_reason']}: {final['permit_message']}"
            )
        history = await applicant.history()
        step("permit ready; its phases: " + " -> ".join(h["phase"] for h in history))
        paths = await applicant.download(out_dir / applicant.application_id)
        step("downloaded (checksums match the API's):")
        for path in paths:
            say(f"    {path}")
        return paths
    finally:
        await applicant.close()
