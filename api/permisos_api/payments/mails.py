"""What the applicant's payment mails say (`mail_templates/payment_received.*`,
`oxxo_voucher.*`). No card data, ever: amount, method and reference."""

from __future__ import annotations

from typing import Any

from ..es_mx import mexico_city_clock, pesos
from ..models import Application, Payment

_METHOD = {"card": "tarjeta", "oxxo": "pago en efectivo en OXXO"}


def payment_received(app: Application) -> dict[str, Any]:
    return {
        "first_name": app.first_name,
        "amount": pesos(app.amount_centavos),
        "method": _METHOD.get(app.payment_method or "", "pago"),
        "plates": app.plates,
        "application_id": str(app.id),
    }


def oxxo_voucher(app: Application, payment: Payment) -> dict[str, Any]:
    expires = payment.voucher_expires_at
    return {
        "first_name": app.first_name,
        "plates": app.plates,
        "reference": payment.voucher_number,
        "amount": pesos(payment.amount_centavos),
        "expires": mexico_city_clock(expires) if expires else "la fecha que indica la ficha",
        "voucher_url": payment.voucher_url or "",
        "application_id": str(app.id),
    }
