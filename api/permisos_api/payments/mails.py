"""The applicant's payment mails, in Spanish. No card data, ever: amount, method and reference."""

from __future__ import annotations

from ..es_mx import pesos
from ..models import Application

_METHOD = {"card": "tarjeta", "oxxo": "pago en efectivo en OXXO"}


def payment_received(app: Application) -> tuple[str, str]:
    method = _METHOD.get(app.payment_method or "", "pago")
    subject = "Pago recibido — Permisos Digitales"
    body = (
        f"Hola {app.first_name}:\n\n"
        f"Recibimos tu pago de {pesos(app.amount_centavos)} por {method} para el permiso del "
        f"vehículo con placas {app.plates}.\n\n"
        "Ya estamos tramitando tu permiso; te avisaremos por correo en cuanto esté listo para "
        "descargar.\n\n"
        f"Referencia de tu solicitud: {app.id}\n\n"
        "Permisos Digitales\n"
    )
    return subject, body
