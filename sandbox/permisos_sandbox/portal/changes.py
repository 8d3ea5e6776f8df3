"""The "changed portal" mode: pages as a redesign without notice leaves them, each change
renaming one element the runner's page objects look for (PAGES.md's contract broken on purpose).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Change = Literal["login", "consulta", "solicitante", "vehiculo", "confirmar"]

# Each change: the rendered text that goes, and what replaces it.
RENAMES: dict[Change, tuple[str, str]] = {
    "login": ('<form id="login"', '<form id="acceso"'),
    "consulta": ('<form id="consulta"', '<form id="busqueda"'),
    "solicitante": ('name="curp"', 'name="clave_curp"'),
    "vehiculo": ('name="placas"', 'name="matricula"'),
    "confirmar": ('id="confirmar-envio"', 'id="enviar-solicitud"'),
}


def apply(html: str, changes: Iterable[Change]) -> str:
    for change in changes:
        old, new = RENAMES[change]
        html = html.replace(old, new)
    return html
