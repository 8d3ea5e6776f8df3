"""GET /v1/catalog: what an application may name (makes, their lines, service types with their
prices, model years), so a client never learns it from an error message."""

from __future__ import annotations

from fastapi import APIRouter, Response

from permisos import catalog

from ..deps import Svc
from ..schemas import CatalogLine, CatalogMake, CatalogOut, ModelYears, ServiceTypeOut

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get(
    "/catalog",
    response_model=CatalogOut,
    summary="The vehicle catalog and the prices",
    description="Public, no authentication. `make` and `line` of an application take either "
    "the `clave` or the `name` listed here (any case); `model_year` must lie within "
    "`model_years` (it moves with the calendar year); the price of a permit depends on its "
    "`service_type` only, in integer centavos of MXN.",
)
def get_catalog(svc: Svc, response: Response) -> CatalogOut:
    low, high = catalog.model_year_range()
    response.headers["Cache-Control"] = "public, max-age=300"
    return CatalogOut(
        makes=[
            CatalogMake(
                clave=make.clave,
                name=make.name,
                lines=[CatalogLine(clave=line.clave, name=line.name) for line in make.lines],
            )
            for make in catalog.MAKES
        ],
        service_types=[
            ServiceTypeOut(
                code=code, price_centavos=svc.settings.price_centavos(code), currency="MXN"
            )
            for code in catalog.SERVICE_TYPES
        ],
        model_years=ModelYears(min=low, max=high),
    )
