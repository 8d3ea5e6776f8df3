"""`python -m permisos_api.admin create-admin EMAIL [--role superadmin]`: bootstrap an admin.

The password comes from PERMISOS_ADMIN_PASSWORD or, without it, from stdin (first line), never
from the command line, where `ps` would show it. An existing account is promoted and its password
replaced, so a Helm hook can run this on every install.
"""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy import func, select

from .db import make_engine, make_sessionmaker, utcnow
from .models import Role, User
from .passwords import Hasher, policy_violation
from .settings import ApiSettings


def create_admin(settings: ApiSettings, email: str, password: str, role: Role) -> User:
    email = email.strip().lower()
    broken = policy_violation(password, email)
    if broken:
        raise ValueError(f"password: {broken[1]}")
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as db:
            user = db.scalars(select(User).where(func.lower(User.email) == email)).first()
            if user is None:
                user = User(email=email, failed_logins=0)
                db.add(user)
            user.password_hash = Hasher(settings).hash(password)
            user.role = role.value
            user.email_verified_at = user.email_verified_at or utcnow()
            user.locked_until = None
            db.commit()
            return user
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m permisos_api.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-admin", help="create or promote an admin account")
    create.add_argument("email")
    create.add_argument(
        "--role", choices=[Role.admin.value, Role.superadmin.value], default="admin"
    )
    args = parser.parse_args(argv)
    password = os.environ.get("PERMISOS_ADMIN_PASSWORD") or sys.stdin.readline().rstrip("\n")
    try:
        user = create_admin(ApiSettings(), args.email, password, Role(args.role))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{user.role} {user.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
