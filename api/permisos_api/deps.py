"""What a route declares it needs, declared once: the request's database session, the services,
the principal, and the admin check (the shape of FastAPI's full-stack template's `deps.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from .auth import Principal, current_principal, require_role
from .context import Services, get_db, services
from .models import Role

Db = Annotated[Session, Depends(get_db)]
Svc = Annotated[Services, Depends(services)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(require_role(Role.admin, Role.superadmin))]
