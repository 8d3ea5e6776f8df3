"""The list endpoints' page parameters, one definition for all of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# Far past any real list, and within PostgreSQL's bigint (a larger OFFSET is a 500, not a 422).
MAX_OFFSET = 1_000_000

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items skipped.")]
