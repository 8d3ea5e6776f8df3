"""Session-wide pieces shared by every test folder."""

from __future__ import annotations

import pytest

from tests.databases import stop_server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_server()
