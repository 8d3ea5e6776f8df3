"""/v1/applications/{id}/permits: the issued PDFs, through short-lived presigned S3 URLs.

Only the owner or an admin; anyone else gets 404, as for the application itself. Each URL handed
out is recorded in `permit_downloads`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse

from ..auth import client_address
from ..db import utcnow
from ..deps import CurrentPrincipal, Db, Svc
from ..models import Application, ApplicationStatus, PermitDownload
from ..problems import ProblemError, problem_responses
from ..schemas import ArtifactKind, PermitArtifactOut, PermitsOut
from .applications import _load

router = APIRouter(prefix="/v1/applications", tags=["permits"])


def _ready(app: Application) -> list[dict[str, Any]]:
    if app.status != ApplicationStatus.permit_ready or not app.permit_artifacts:
        raise ProblemError("invalid-state", "The permit is not ready yet.")
    return app.permit_artifacts


@router.get(
    "/{application_id}/permits",
    response_model=PermitsOut,
    summary="List an application's issued permit PDFs",
    description="The owner or an admin; 409 while the permit is not ready.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def list_permits(
    application_id: uuid.UUID, request: Request, principal: CurrentPrincipal, db: Db
) -> PermitsOut:
    app = _load(db, application_id, principal)
    artifacts = _ready(app)
    return PermitsOut(
        application_id=app.id,
        folio=app.folio,
        items=[
            PermitArtifactOut(
                kind=a["kind"],
                bytes=a["bytes"],
                sha256=a["sha256"],
                url=str(request.url_for("download_permit", application_id=app.id, kind=a["kind"])),
            )
            for a in artifacts
        ],
    )


@router.get(
    "/{application_id}/permits/{kind}",
    status_code=status.HTTP_307_TEMPORARY_REDIRECT,
    response_class=RedirectResponse,
    summary="Download one permit PDF",
    description="Redirects (307) to a presigned S3 URL valid for `permit_url_ttl_seconds`; "
    "each download is recorded.",
    responses={
        307: {"description": "Location: the presigned URL."},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
def download_permit(
    application_id: uuid.UUID,
    kind: ArtifactKind,
    request: Request,
    principal: CurrentPrincipal,
    db: Db,
    svc: Svc,
) -> RedirectResponse:
    app = _load(db, application_id, principal)
    artifact = next((a for a in _ready(app) if a.get("kind") == kind), None)
    if artifact is None:
        raise ProblemError("not-found", f"This permit has no {kind} document.")
    url = svc.storage.presigned_get(str(artifact["key"]))
    db.add(
        PermitDownload(
            application_id=app.id,
            user_id=principal.user.id,
            kind=kind,
            downloaded_at=utcnow(),
            client_address=client_address(request)[:64],
        )
    )
    db.commit()
    return RedirectResponse(
        url, status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers={"Cache-Control": "no-store"}
    )
