"""The applicant Secret: the only place outside the database where personal data lives.

The API writes one Secret per PermitRequest with these keys; the operator mounts it read-only into
the runner, which reads each key as a file. Nothing else ever holds these values.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

SECRET_KEYS = ("first_name", "last_name", "maternal_surname", "curp", "email", "phone")


class Applicant(BaseModel):
    first_name: str = Field(min_length=1)
    last_name: str = Field(min_length=1)
    maternal_surname: str = ""
    curp: str = Field(min_length=18, max_length=18)
    email: str = Field(min_length=3)
    phone: str = ""

    def __repr__(self) -> str:  # never print personal data by accident
        return "Applicant(<redacted>)"

    __str__ = __repr__

    @classmethod
    def from_directory(cls, directory: Path) -> Applicant:
        """Reads a mounted Secret: one file per key; missing optional keys are empty."""
        values = {}
        for key in SECRET_KEYS:
            path = directory / key
            if path.exists():
                values[key] = path.read_text(encoding="utf-8").strip()
        return cls.model_validate(values)

    def secret_data(self) -> dict[str, str]:
        """The Secret's stringData."""
        return {key: getattr(self, key) for key in SECRET_KEYS}
