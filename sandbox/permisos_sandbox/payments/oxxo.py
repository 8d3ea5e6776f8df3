"""OXXO: amount limits, voucher numbers and expiry, and the hosted voucher page."""

from __future__ import annotations

import html
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .errors import invalid

MEXICO_CITY = ZoneInfo("America/Mexico_City")
# Stripe's OXXO limits: MX$10.00 to MX$10,000.00 per voucher (centavos).
MIN_AMOUNT = 1_000
MAX_AMOUNT = 1_000_000


def check_amount(amount: int) -> None:
    if amount < MIN_AMOUNT:
        raise invalid("Amount must be at least $10.00 mxn", code="amount_too_small", param="amount")
    if amount > MAX_AMOUNT:
        raise invalid(
            "Amount must be no more than $10,000.00 mxn", code="amount_too_large", param="amount"
        )


def check_expires_after_days(days: int, param: str) -> None:
    if not 1 <= days <= 7:
        raise invalid(
            "expires_after_days must be between 1 and 7.",
            code="parameter_invalid_integer",
            param=param,
        )


def expires_after(issued: datetime, days: int) -> int:
    """`days` calendar days after issue, at 23:59 Mexico City time, as a unix timestamp."""
    local = issued.astimezone(MEXICO_CITY)
    day = (local + timedelta(days=days)).date()
    end = datetime(day.year, day.month, day.day, 23, 59, tzinfo=MEXICO_CITY)
    return int(end.timestamp())


def voucher_number() -> str:
    """A 14-digit reference, like the ones printed on OXXO Pay vouchers."""
    return "".join(str(secrets.randbelow(10)) for _ in range(14))


def check_billing_details(name: str | None, email: str | None, prefix: str) -> None:
    """Stripe requires the customer's full name (first and last) and an email for OXXO."""
    if not name:
        raise invalid(
            f"Missing required param: {prefix}[name].",
            code="parameter_missing",
            param=f"{prefix}[name]",
        )
    parts = name.split()
    if len(parts) < 2 or any(len(p) < 2 for p in parts[:2]):
        raise invalid(
            "OXXO requires a full name: first and last name, each at least 2 characters.",
            code="parameter_invalid_string",
            param=f"{prefix}[name]",
        )
    if not email:
        raise invalid(
            f"Missing required param: {prefix}[email].",
            code="parameter_missing",
            param=f"{prefix}[email]",
        )
    if "@" not in email:
        raise invalid("Invalid email address.", code="email_invalid", param=f"{prefix}[email]")


def voucher_page(*, number: str, amount: int, currency: str, expires_after: int, state: str) -> str:
    """The hosted voucher: amount, reference and expiry (no customer data on it)."""
    expiry = datetime.fromtimestamp(expires_after, MEXICO_CITY).strftime("%d/%m/%Y %H:%M")
    pesos = f"${amount // 100:,}.{amount % 100:02d} {currency.upper()}"
    status = {
        "issued": "Pendiente de pago",
        "paid": "Pagado",
        "expired": "Vencido",
        "void": "Cancelado",
    }.get(state, state)
    return (
        '<!doctype html><html lang="es"><head><meta charset="utf-8">'
        "<title>Ficha de pago OXXO</title></head><body>"
        "<h1>Ficha de pago OXXO</h1>"
        f'<p>Monto a pagar: <strong id="amount">{html.escape(pesos)}</strong></p>'
        f'<p>Referencia: <strong id="number">{html.escape(number)}</strong></p>'
        f'<p>Vence: <span id="expires">{html.escape(expiry)}</span> (hora de la Ciudad de '
        "México)</p>"
        f'<p>Estado: <span id="state">{html.escape(status)}</span></p>'
        "<p>Presenta esta referencia en cualquier tienda OXXO y paga en efectivo.</p>"
        "</body></html>"
    )
