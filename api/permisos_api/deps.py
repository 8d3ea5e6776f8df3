"""What a route declares it needs, declared once: the request's database session, the services,
the principal, and the admin check (the shape of FastAPI's full-stack template's `deps.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from .auth import Credentials, Principal, current_principal, presented_credentials, require_role
from .context import Services, get_db, services
from .models import Role

Db = Annotated[Session, Depends(get_db)]
Svc = Annotated[Services, Depends(services)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
# For routes that look the principal up inside their own `in_worker` hop.
Presented = Annotated[Credentials, Depends(presented_credentials)]
Admin = Annotated[Principal, Depends(require_role(Role.admin, Role.superadmin))]
