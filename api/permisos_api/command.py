"""What the maintenance commands the chart runs as CronJobs (`permisos_api.cleanup`,
`permisos_api.reminders`) share: settings from the environment, plain logs, one engine for the
run, the report as one JSON line on stdout, and exit code 2 with a one-line message (the driver's
first line, never the URL) when the database cannot be reached at all.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .db import make_engine, make_sessionmaker
from .settings import ApiSettings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

DATABASE_UNREACHABLE = 2  # the exit code


def unreachable(prog: str, exc: OperationalError) -> str:
    """The one line an operator reads in the CronJob's log; the driver's first line, no URL."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    return f"{prog}: database unreachable: {detail}"


def run_command(prog: str, work: Callable[[ApiSettings, sessionmaker[Session]], R]) -> R | None:
    """Runs `work` on the configured database and prints its report; returns the report, or
    None when the database is unreachable (said on stderr; exit with `DATABASE_UNREACHABLE`)."""
    settings = ApiSettings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s %(message)s")
    engine = make_engine(settings)
    try:
        # Only a database that cannot be reached is exit code 2; any other error (a missing
        # table, a lock timeout) keeps its traceback, so nobody mistakes it for an outage.
        try:
            with engine.connect():
                pass
        except OperationalError as exc:
            print(unreachable(prog, exc), file=sys.stderr)
            return None
        report = work(settings, make_sessionmaker(engine))
    finally:
        engine.dispose()
    print(json.dumps(asdict(report), sort_keys=True))
    return report
