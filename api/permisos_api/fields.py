"""Field rules for applications. Each failure names its rule, which the problem document carries.

The rules match the government portal's own, so an application the API accepts is one the portal
accepts: a permit that fails after payment is the costliest kind of error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.mx import curp as stdnum_curp

from permisos import catalog

from . import vin as vin_rules

_STATES = (
    "AS|BC|BS|CC|CL|CM|CS|CH|DF|DG|GT|GR|HG|JC|MC|MN|MS|NT|NL|OC|PL"
    "|QT|QR|SP|SL|SR|TC|TS|TL|VZ|YN|ZS|NE"
)
# The portal's shape: stdnum checks the date, state and check digit, this also the letters.
CURP_RE = re.compile(
    r"^[A-Z][AEIOUX][A-Z]{2}\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])[HMX]"
    rf"({_STATES})[B-DF-HJ-NP-TV-Z]{{3}}[A-Z\d]\d$"
)
NAME_RE = re.compile(r"^[A-Za-zÁÉÍÓÚÜÑáéíóúüñ' .-]{1,60}$")
PLATES_RE = re.compile(r"^(?=.*[A-Z])(?=.*\d)[A-Z0-9]{5,8}$")


def _fail(rule: str, detail: str) -> PydanticCustomError:
    return PydanticCustomError(rule, detail)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("string_type", "Must be a string")
    return value.strip()


def name(value: Any) -> str:
    text = re.sub(r"\s+", " ", _text(value))
    if not text:
        raise _fail("required", "Must not be empty")
    if not NAME_RE.match(text):
        raise _fail("name_format", "Letters, spaces, apostrophes, dots and dashes; at most 60")
    return text


def optional_name(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    return name(value)


def curp(value: Any) -> str:
    text = _text(value).upper()
    if not CURP_RE.match(text):
        raise _fail("curp_format", "18 characters: 4 letters, birth date, sex, state, ...")
    try:
        stdnum_curp.validate(text)
    except InvalidChecksum:
        raise _fail("curp_check_digit", "The CURP's check digit does not match") from None
    except ValidationError:
        raise _fail("curp_format", "The CURP's date, sex or state is not valid") from None
    return text


def email(value: Any) -> str:
    text = _text(value)
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise _fail("email_format", "Not a valid email address") from None
    return result.normalized.lower()


def phone(value: Any) -> str:
    digits = re.sub(r"[\s().-]", "", _text(value))
    if digits.startswith("+52"):
        digits = digits[3:]
    if not re.fullmatch(r"\d{10}", digits):
        raise _fail("phone_format", "A Mexican phone number: 10 digits")
    return digits


def plates(value: Any) -> str:
    text = re.sub(r"[\s-]", "", _text(value)).upper()
    if not PLATES_RE.match(text):
        raise _fail("plates_format", "5 to 8 letters and digits, with at least one of each")
    return text


def make(value: Any) -> str:
    found = catalog.find_make(_text(value))
    if found is None:
        names = ", ".join(m.name for m in catalog.MAKES)
        raise _fail("make_unknown", f"Not a make of the catalog ({names})")
    return found.name


def line(value: Any) -> str:
    """Only shape here; whether the line belongs to the make is `line_of_make`."""
    text = _text(value)
    if not text:
        raise _fail("required", "Must not be empty")
    return text


def line_of_make(make_name: str, line_name: str) -> str | None:
    """The catalog's spelling of the line, or None when the make has no such line."""
    found_make = catalog.find_make(make_name)
    found = catalog.find_line(found_make, line_name) if found_make else None
    return found.name if found else None


def model_year(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail("int_type", "Must be a year")
    try:
        year = int(value)
    except ValueError:
        raise _fail("int_type", "Must be a year") from None
    low, high = catalog.model_year_range(datetime.now(UTC))
    if not low <= year <= high:
        raise _fail("model_year_range", f"Between {low} and {high}")
    return year


def vin(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = _text(value).upper()
    broken = vin_rules.problem(text)
    if broken:
        raise _fail(*broken)
    return text


Name = Annotated[str, BeforeValidator(name)]
OptionalName = Annotated[str, BeforeValidator(optional_name)]
Curp = Annotated[str, BeforeValidator(curp)]
Email = Annotated[str, BeforeValidator(email)]
Phone = Annotated[str, BeforeValidator(phone)]
Plates = Annotated[str, BeforeValidator(plates)]
Make = Annotated[str, BeforeValidator(make)]
Line = Annotated[str, BeforeValidator(line)]
ModelYear = Annotated[int, BeforeValidator(model_year)]
Vin = Annotated[str | None, BeforeValidator(vin)]
