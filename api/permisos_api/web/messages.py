"""What the pages say when something is wrong, in Spanish: per problem, and per field rule."""

from __future__ import annotations

import math

from ..problems import FieldError, ProblemError

# Rules of `fields.py` and `passwords.py`, and pydantic's own, as a person reads them.
RULES = {
    "email_format": "Escribe un correo electrónico válido, por ejemplo nombre@dominio.mx.",
    "password_too_short": "La contraseña debe tener al menos 12 caracteres.",
    "password_too_long": "La contraseña es demasiado larga.",
    "password_one_class": "Combina al menos dos de estos: minúsculas, mayúsculas, números o "
    "símbolos.",
    "password_is_email": "La contraseña no puede ser tu correo.",
    "password_common": "Esa contraseña es muy común; elige otra.",
    "missing": "Este campo es obligatorio.",
    "string_too_short": "Este campo es obligatorio.",
    "string_too_long": "Es demasiado largo.",
    "passwords_differ": "Las contraseñas no coinciden.",
    "required": "Este campo es obligatorio.",
    "name_format": "Usa solo letras, espacios, apóstrofos, puntos y guiones (hasta 60).",
    "curp_format": "La CURP tiene 18 caracteres: 4 letras, tu fecha de nacimiento (AAMMDD), "
    "sexo, estado y 3 caracteres más. Cópiala tal como aparece en tu CURP.",
    "curp_check_digit": "La CURP no es válida: revisa que esté completa y sin errores (el "
    "último dígito no coincide).",
    "phone_format": "Escribe un teléfono de 10 dígitos.",
    "plates_format": "Las placas tienen de 5 a 8 letras y números.",
    "make_unknown": "Elige una marca de la lista.",
    "line_of_make": "Elige una línea de la marca que elegiste.",
    "model_year_range": "Elige un año modelo de la lista.",
    "int_type": "Elige un año modelo de la lista.",
    "int_parsing": "Elige un año modelo de la lista.",
    "literal_error": "Elige una opción de la lista.",
    "vin_format": "El NIV tiene 17 letras y números, sin I, O ni Q.",
    "vin_check_digit": "El NIV no es válido: revisa el noveno carácter.",
}
FALLBACK = "Revisa este campo."


def field_messages(errors: list[FieldError]) -> dict[str, str]:
    """The first message for each field."""
    out: dict[str, str] = {}
    for error in errors:
        out.setdefault(error.field, RULES.get(error.rule, FALLBACK))
    return out


def _minutes(problem: ProblemError) -> int:
    seconds = int(problem.headers.get("Retry-After", "60"))
    return max(1, math.ceil(seconds / 60))


def problem_message(problem: ProblemError) -> str:
    """A problem the page shows above its form."""
    slug = problem.slug
    if slug == "invalid-credentials":
        return "El correo o la contraseña no son correctos."
    if slug == "account-locked":
        return (
            "Por seguridad bloqueamos tu cuenta tras varios intentos fallidos. Intenta de nuevo "
            f"en {_minutes(problem)} min o restablece tu contraseña."
        )
    if slug == "rate-limited":
        return (
            f"Hubo demasiados intentos desde esta conexión. Espera {_minutes(problem)} min y "
            "vuelve a intentarlo."
        )
    if slug == "email-not-verified":
        return "Primero confirma tu correo: abre el enlace que te enviamos al registrarte."
    if slug == "account-disabled":
        return "Esta cuenta está desactivada. Escríbenos si crees que es un error."
    if slug == "invalid-token":
        return "El enlace no es válido o ya venció. Pide uno nuevo."
    if slug == "invalid-state":
        return "Esta solicitud ya no se puede pagar."
    if slug == "payment-provider-error":
        return (
            "No pudimos comunicarnos con el procesador de pagos. No se hizo ningún cargo; "
            "vuelve a intentarlo en unos minutos."
        )
    return "Algo salió mal. Vuelve a intentarlo en unos minutos."


EXPIRED_FORM = "La página caducó por seguridad. Vuelve a enviar el formulario."
