"""/v1/me: the applicant's ARCO rights (`arco.py` says what each one does).

- `GET /v1/me/export`: everything the service keeps about the caller's account, as JSON.
- `DELETE /v1/me`: deletes (anonymizes) the account; see `arco.delete_account`.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from .. import arco
from ..auth import clear_session_cookies
from ..deps import CurrentPrincipal, Db, Svc
from ..problems import problem_responses
from ..schemas import AccountExport, DeleteAccountIn

router = APIRouter(prefix="/v1/me", tags=["account"])


@router.get(
    "/export",
    response_model=AccountExport,
    summary="Export all my data (ARCO: access)",
    description="The account, its sessions, applications with their personal data, payments "
    "(no card data), payment event summaries, permit history and downloads.",
    responses=problem_responses(401, 403),
)
def export_account(principal: CurrentPrincipal, db: Db) -> AccountExport:
    return arco.export_account(db, principal.user)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete my account (ARCO: cancellation)",
    description="Requires the current password. Revokes every session and anonymizes the "
    "account and its applications; payments and payment events are kept, as the law requires. "
    "409 while a payment or a permit is in progress. A wrong password counts toward the "
    "lockout, as at login (429 `account-locked`).",
    responses=problem_responses(401, 403, 409, 422, 429),
)
def delete_account(
    body: DeleteAccountIn, principal: CurrentPrincipal, response: Response, db: Db, svc: Svc
) -> None:
    arco.delete_account(db, svc, principal.user, body.password)
    clear_session_cookies(response, svc.settings)
