"""Server-side validation of the two form steps; messages are the portal's own (Spanish)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import catalog

CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
# The 32 states' codes, plus NE for people born abroad.
_STATES = (
    "AS|BC|BS|CC|CL|CM|CS|CH|DF|DG|GT|GR|HG|JC|MC|MN|MS|NT|NL|OC|PL"
    "|QT|QR|SP|SL|SR|TC|TS|TL|VZ|YN|ZS|NE"
)
CURP_RE = re.compile(
    r"^[A-Z][AEIOUX][A-Z]{2}\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])[HMX]"
    rf"({_STATES})[B-DF-HJ-NP-TV-Z]{{3}}[A-Z\d]\d$"
)
REFERENCIA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-zÁÉÍÓÚÜÑáéíóúüñ' .-]{1,60}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PLATES_RE = re.compile(r"^(?=.*[A-Z])(?=.*\d)[A-Z0-9]{5,8}$")
NIV_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")

APPLICANT_FIELDS = (
    "referencia",
    "nombre",
    "primer_apellido",
    "segundo_apellido",
    "curp",
    "correo",
    "telefono",
)
VEHICLE_FIELDS = ("marca", "linea", "tipo_servicio", "ano_modelo", "placas", "niv")

MSG_REQUIRED = "Este campo es obligatorio"
MSG_CURP = "La CURP no es válida"
MSG_LINE = "La línea no corresponde a la marca"
MSG_PLATES_ACTIVE = "Las placas ya cuentan con un permiso vigente"


def curp_check_digit(first17: str) -> int:
    """RENAPO's verifier: weights 18..2 over the first 17 characters' dictionary positions."""
    total = sum(CURP_ALPHABET.index(ch) * (18 - i) for i, ch in enumerate(first17))
    return (10 - total % 10) % 10


def curp_is_valid(curp: str) -> bool:
    if not CURP_RE.match(curp):
        return False
    return curp_check_digit(curp[:17]) == int(curp[17])


def normalize_plates(value: str) -> str:
    return re.sub(r"[\s-]", "", value).upper()


@dataclass
class Result:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _clean(form: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: str(form.get(name, "")).strip() for name in names}


def validate_applicant(form: Mapping[str, str]) -> Result:
    values = _clean(form, APPLICANT_FIELDS)
    values["curp"] = values["curp"].upper()
    values["correo"] = values["correo"].lower()
    values["telefono"] = re.sub(r"[\s()-]", "", values["telefono"])
    errors: dict[str, str] = {}
    for name in ("referencia", "nombre", "primer_apellido", "curp", "correo", "telefono"):
        if not values[name]:
            errors[name] = MSG_REQUIRED
    if "referencia" not in errors and not REFERENCIA_RE.match(values["referencia"]):
        errors["referencia"] = "La referencia sólo admite letras, números y . _ : -"
    for name in ("nombre", "primer_apellido", "segundo_apellido"):
        if name not in errors and values[name] and not NAME_RE.match(values[name]):
            errors[name] = "Sólo se admiten letras"
    if "curp" not in errors and not curp_is_valid(values["curp"]):
        errors["curp"] = MSG_CURP
    if "correo" not in errors and not EMAIL_RE.match(values["correo"]):
        errors["correo"] = "El correo electrónico no es válido"
    if "telefono" not in errors and not re.fullmatch(r"\d{10}", values["telefono"]):
        errors["telefono"] = "El teléfono debe tener 10 dígitos"
    return Result(values, errors)


def validate_vehicle(
    form: Mapping[str, str],
    plates_taken: Callable[[str], bool],
    years: list[int],
) -> Result:
    """`plates_taken` answers whether plates already hold an active permit for someone else."""
    values = _clean(form, VEHICLE_FIELDS)
    values["placas"] = normalize_plates(values["placas"])
    values["niv"] = values["niv"].upper()
    errors: dict[str, str] = {}
    for name in ("marca", "linea", "tipo_servicio", "ano_modelo", "placas"):
        if not values[name]:
            errors[name] = MSG_REQUIRED
    make = catalog.find_make(values["marca"]) if values["marca"] else None
    if values["marca"] and make is None:
        errors["marca"] = "Seleccione una marca del catálogo"
    if make is not None:
        values["marca"] = make.clave
        if values["linea"]:
            line = catalog.find_line(make, values["linea"])
            if line is None:
                errors["linea"] = MSG_LINE
            else:
                values["linea"] = line.clave
    elif values["linea"] and catalog.find_any_line(values["linea"]) is None:
        errors["linea"] = "Seleccione una línea del catálogo"
    if values["tipo_servicio"] and catalog.service_name(values["tipo_servicio"]) is None:
        errors["tipo_servicio"] = "Seleccione un tipo de servicio"
    if values["ano_modelo"] and (
        not values["ano_modelo"].isdigit() or int(values["ano_modelo"]) not in years
    ):
        errors["ano_modelo"] = "Seleccione un año modelo válido"
    if values["placas"]:
        if not PLATES_RE.match(values["placas"]):
            errors["placas"] = "Las placas no tienen un formato válido"
        elif plates_taken(values["placas"]):
            errors["placas"] = MSG_PLATES_ACTIVE
    if values["niv"] and not NIV_RE.match(values["niv"]):
        errors["niv"] = "El NIV debe tener 17 caracteres (sin I, O ni Q)"
    return Result(values, errors)
