"""Password policy and Argon2id hashing."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .settings import ApiSettings

MIN_LENGTH = 12
MAX_LENGTH = 128  # bounds the hashing work one request can ask for

# A short list of the most common passwords of at least MIN_LENGTH characters (English and
# Spanish); the length and class rules already exclude the shorter classics.
COMMON = frozenset(
    {
        "123456789012",
        "1234567890ab",
        "qwertyuiop12",
        "qwerty123456",
        "password1234",
        "password123!",
        "passw0rd1234",
        "iloveyou1234",
        "abc123456789",
        "a1b2c3d4e5f6",
        "contraseña123",
        "contrasena123",
        "contrasena1234",
        "contraseña1234",
        "micontraseña1",
        "micontrasena1",
        "administrador1",
        "admin1234567",
        "bienvenido123",
        "welcome12345",
        "changeme1234",
        "letmein12345",
        "mexico123456",
        "mexico2024!!",
        "permisos1234",
        "permisosdigitales",
        "permisos12345",
        "teamo1234567",
        "qwertyuiop123",
        "1q2w3e4r5t6y",
        "zaq12wsxcde3",
    }
)


def policy_violation(password: str, email: str) -> tuple[str, str] | None:
    """(rule, detail) of the first rule the password breaks, or None."""
    if len(password) < MIN_LENGTH:
        return "password_too_short", f"At least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return "password_too_long", f"At most {MAX_LENGTH} characters"
    classes = (
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    )
    if sum(classes) < 2:
        return "password_one_class", "Mix at least two of: lower case, upper case, digits, symbols"
    folded = password.casefold()
    local = email.casefold().split("@", 1)[0]
    if folded in (email.casefold(), local):
        return "password_is_email", "The password cannot be the email address"
    if folded in COMMON or len(set(folded)) <= 2:
        return "password_common", "This password is too common"
    return None


class Hasher:
    def __init__(self, settings: ApiSettings) -> None:
        self._ph = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
        )  # argon2-cffi's default type is Argon2id
        # Verified against when the account does not exist, so timing does not tell.
        self._dummy = self._ph.hash("not-a-real-password-0")

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._ph.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._ph.check_needs_rehash(stored)
