"""Reading a submitted form: the fields as text, checked by the API's own request models."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..problems import FieldError, field_path

M = TypeVar("M", bound=BaseModel)


async def fields(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    form = await request.form()
    out = {}
    for name in (*names, "csrf_token"):
        value = form.get(name)
        out[name] = value if isinstance(value, str) else ""
    return out


def parse(model: type[M], values: dict[str, str]) -> M | list[FieldError]:
    """The model, or each field and the rule it broke (as the JSON API reports them)."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        return [
            FieldError(field=field_path(tuple(e["loc"])), rule=e["type"], detail=e["msg"])
            for e in error.errors()
        ]
