"""The security suite drives the same real app, PostgreSQL and payments simulator as tests/api:
its fixtures, re-exported here so pytest finds them for this folder too."""

from tests.api.conftest import (  # noqa: F401 (fixtures, found by name)
    api,
    database_url,
    engine,
    make_user,
    outbox,
    pay,
    settings,
)
