"""`python -m permisos_api.migrate [upgrade|downgrade] [REVISION]`: the schema, by Alembic.

Used by the tests and, later, by the Helm pre-upgrade hook. Without a revision, upgrade goes to
`head` and downgrade to `base`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from .settings import ApiSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is ConfigParser's interpolation character; an escaped URL survives it.
    url = database_url or ApiSettings().database_url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m permisos_api.migrate")
    parser.add_argument("action", choices=["upgrade", "downgrade"])
    parser.add_argument("revision", nargs="?")
    args = parser.parse_args(argv)
    if args.action == "upgrade":
        upgrade(revision=args.revision or "head")
    else:
        downgrade(revision=args.revision or "base")


if __name__ == "__main__":
    main()
