"""Server-rendered Spanish HTML. Every interpolated value goes through `esc`."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping

from . import catalog
from .store import LISTO, PROCESANDO, Submission

SITE = "Sistema de Permisos de Circulación"

CSS = """
*{box-sizing:border-box}body{margin:0;font-family:Arial,Helvetica,sans-serif;color:#222;
background:#f4f4f4}header{background:#611232;color:#fff;padding:.8rem 1.5rem;display:flex;
justify-content:space-between;align-items:center}header a{color:#fff;margin-left:1rem}
.marca-gob{font-weight:bold}.barra{height:6px;background:#a57f2c}
main{max-width:52rem;margin:1.5rem auto;background:#fff;padding:1.5rem 2rem;
border:1px solid #ddd}h1{color:#611232;font-size:1.6rem;margin-top:0}
.campo{margin-bottom:1rem}label{display:block;font-weight:bold;margin-bottom:.25rem}
input,select{width:100%;padding:.45rem;border:1px solid #999;font-size:1rem}
.campo-error{color:#b00020;margin:.25rem 0 0;font-size:.9rem}
.con-error input,.con-error select{border-color:#b00020}
.alerta-error{background:#fde7ea;border-left:4px solid #b00020;padding:.75rem;margin-bottom:1rem}
.alerta-aviso{background:#fff6dd;border-left:4px solid #a57f2c;padding:.75rem;margin-bottom:1rem}
button,.boton{background:#611232;color:#fff;border:0;padding:.6rem 1.2rem;font-size:1rem;
cursor:pointer;text-decoration:none;display:inline-block}
.pasos{color:#666;font-size:.9rem}dl{display:grid;grid-template-columns:14rem 1fr;gap:.4rem}
dt{font-weight:bold}dd{margin:0}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.4rem;text-align:left}
.modal{position:fixed;inset:0;background:rgba(0,0,0,.55);display:flex;align-items:center;
justify-content:center;z-index:1000}.modal[hidden]{display:none}
.modal-caja{background:#fff;max-width:28rem;padding:1.5rem;border-top:6px solid #a57f2c}
footer{text-align:center;color:#777;font-size:.8rem;padding:1rem}
"""

MODAL = """
<div id="aviso" class="modal" role="dialog" aria-modal="true" aria-labelledby="aviso-titulo">
  <div class="modal-caja">
    <h2 id="aviso-titulo">Aviso importante</h2>
    <p>Le recordamos que los permisos provisionales tienen una vigencia de 30 días naturales
    y no son prorrogables. Verifique sus datos antes de enviar su solicitud.</p>
    <button type="button" id="cerrar-aviso">Entendido</button>
  </div>
</div>
<script>
document.getElementById("cerrar-aviso").addEventListener("click", function () {
  document.getElementById("aviso").hidden = true;
});
</script>
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, usuario: str | None = None, modal: bool = False) -> str:
    nav = ""
    if usuario:
        nav = (
            f'<nav><span class="usuario">{esc(usuario)}</span>'
            '<a href="/tramites">Inicio</a><a href="/consulta">Consulta</a>'
            '<a id="salir" href="/logout">Cerrar sesión</a></nav>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="es"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} | {esc(SITE)}</title><style>{CSS}</style></head><body>"
        f'<header><span class="marca-gob">Gobierno del Estado · {esc(SITE)}</span>{nav}</header>'
        f'<div class="barra"></div><main><h1>{esc(title)}</h1>{body}</main>'
        "<footer>Secretaría de Movilidad. Todos los derechos reservados.</footer>"
        f"{MODAL if modal else ''}</body></html>"
    )


def csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{esc(token)}">'


def _error(name: str, errors: Mapping[str, str]) -> str:
    if name not in errors:
        return ""
    return f'<p class="campo-error" data-campo="{esc(name)}">{esc(errors[name])}</p>'


def text_field(
    name: str,
    label: str,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    kind: str = "text",
    extra: str = "",
) -> str:
    cls = "campo con-error" if name in errors else "campo"
    return (
        f'<div class="{cls}"><label for="{esc(name)}">{esc(label)}</label>'
        f'<input type="{esc(kind)}" id="{esc(name)}" name="{esc(name)}" '
        f'value="{esc(values.get(name, ""))}" {extra}>{_error(name, errors)}</div>'
    )


def select_field(
    name: str,
    label: str,
    options: Iterable[tuple[str, str]],
    selected: str,
    errors: Mapping[str, str],
    placeholder: str | None = "Seleccione una opción",
) -> str:
    cls = "campo con-error" if name in errors else "campo"
    opts = [f'<option value="">{esc(placeholder)}</option>'] if placeholder is not None else []
    for value, text in options:
        sel = " selected" if value == selected else ""
        opts.append(f'<option value="{esc(value)}"{sel}>{esc(text)}</option>')
    return (
        f'<div class="{cls}"><label for="{esc(name)}">{esc(label)}</label>'
        f'<select id="{esc(name)}" name="{esc(name)}">{"".join(opts)}</select>'
        f"{_error(name, errors)}</div>"
    )


def summary_errors(errors: Mapping[str, str]) -> str:
    if not errors:
        return ""
    return (
        '<div class="alerta-error" role="alert">La solicitud tiene errores. '
        "Corrija los campos señalados.</div>"
    )


def login(token: str, *, bad_credentials: bool, expired: bool, usuario: str = "") -> str:
    notices = ""
    if expired:
        notices += (
            '<div class="alerta-aviso" id="sesion-expirada">Su sesión ha expirado. '
            "Inicie sesión nuevamente.</div>"
        )
    if bad_credentials:
        notices += '<div class="alerta-error" role="alert">Usuario o contraseña incorrectos</div>'
    return (
        f'{notices}<form id="login" method="post" action="/login">{csrf(token)}'
        '<div class="campo"><label for="usuario">Usuario</label>'
        f'<input id="usuario" name="usuario" autocomplete="username" value="{esc(usuario)}">'
        '</div><div class="campo"><label for="contrasena">Contraseña</label>'
        '<input id="contrasena" name="contrasena" type="password" '
        'autocomplete="current-password"></div>'
        '<button type="submit">Iniciar sesión</button></form>'
    )


def home() -> str:
    return (
        "<p>Seleccione el trámite que desea realizar.</p><ul>"
        '<li><a id="nuevo-tramite" href="/tramites/nuevo/solicitante">'
        "Solicitar permiso provisional de circulación</a></li>"
        '<li><a id="consulta" href="/consulta">Consulta de trámite</a></li></ul>'
    )


def applicant_form(token: str, values: Mapping[str, str], errors: Mapping[str, str]) -> str:
    fields = [
        text_field("referencia", "Referencia del solicitante", values, errors),
        text_field("nombre", "Nombre(s)", values, errors),
        text_field("primer_apellido", "Primer apellido", values, errors),
        text_field("segundo_apellido", "Segundo apellido (opcional)", values, errors),
        text_field("curp", "CURP", values, errors, extra='maxlength="18"'),
        text_field("correo", "Correo electrónico", values, errors, kind="email"),
        text_field("telefono", "Teléfono (10 dígitos)", values, errors, kind="tel"),
    ]
    return (
        '<p class="pasos">Paso 1 de 3: datos del solicitante</p>'
        f"{summary_errors(errors)}"
        f'<form id="solicitante" method="post" action="/tramites/nuevo/solicitante" novalidate>'
        f'{csrf(token)}{"".join(fields)}<button type="submit">Continuar</button></form>'
    )


LINES_SCRIPT = """
<script>
(function () {
  var marca = document.querySelector("select[name=marca]");
  var linea = document.querySelector("select[name=linea]");
  marca.addEventListener("change", function () {
    linea.innerHTML = "";
    if (!marca.value) { return; }
    linea.setAttribute("aria-busy", "true");
    fetch("/catalogos/lineas?marca=" + encodeURIComponent(marca.value),
          {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) {
        var type = r.headers.get("Content-Type") || "";
        // Redirected to the login form: the session ended, so show it.
        if (r.redirected || (r.ok && type.indexOf("json") < 0)) {
          window.location.reload(); return null;
        }
        return r.ok ? r.json() : null;
      })
      .then(function (items) {
        var first = document.createElement("option");
        first.value = "";
        first.textContent = items ? "Seleccione una línea" : "No fue posible cargar las líneas";
        linea.appendChild(first);
        items = items || [];
        items.forEach(function (item) {
          var option = document.createElement("option");
          option.value = item.clave; option.textContent = item.nombre;
          linea.appendChild(option);
        });
        linea.removeAttribute("aria-busy");
      });
  });
})();
</script>
"""


def vehicle_form(
    token: str, values: Mapping[str, str], errors: Mapping[str, str], years: list[int]
) -> str:
    make = catalog.find_make(values.get("marca", "")) if values.get("marca") else None
    makes = [(m.clave, m.nombre) for m in catalog.MAKES]
    # After a failed POST the chosen make's lines are rendered server-side, the value kept.
    lines = [(ln.clave, ln.nombre) for ln in make.lineas] if make else []
    fields = [
        select_field("marca", "Marca", makes, make.clave if make else "", errors),
        select_field(
            "linea",
            "Línea",
            lines,
            values.get("linea", ""),
            errors,
            placeholder="Seleccione una línea" if make else None,
        ),
        select_field(
            "tipo_servicio",
            "Tipo de servicio",
            [(e.clave, e.nombre) for e in catalog.SERVICE_TYPES],
            values.get("tipo_servicio", ""),
            errors,
        ),
        select_field(
            "ano_modelo",
            "Año modelo",
            [(str(y), str(y)) for y in years],
            values.get("ano_modelo", ""),
            errors,
        ),
        text_field("placas", "Placas", values, errors, extra='maxlength="10"'),
        text_field("niv", "NIV (opcional)", values, errors, extra='maxlength="17"'),
    ]
    return (
        '<p class="pasos">Paso 2 de 3: datos del vehículo</p>'
        f"{summary_errors(errors)}"
        '<form id="vehiculo" method="post" action="/tramites/nuevo/vehiculo" novalidate>'
        f"{csrf(token)}{''.join(fields)}"
        '<a href="/tramites/nuevo/solicitante">Regresar</a> '
        '<button type="submit">Continuar</button></form>'
        f"{LINES_SCRIPT}"
    )


def vehicle_names(vehicle: Mapping[str, str]) -> tuple[str, str, str]:
    make = catalog.find_make(vehicle["marca"])
    line = catalog.find_line(make, vehicle["linea"]) if make else None
    return (
        make.nombre if make else vehicle["marca"],
        line.nombre if line else vehicle["linea"],
        catalog.service_name(vehicle["tipo_servicio"]) or vehicle["tipo_servicio"],
    )


def review(token: str, applicant: Mapping[str, str], vehicle: Mapping[str, str]) -> str:
    marca, linea, servicio = vehicle_names(vehicle)
    rows = [
        ("referencia", "Referencia", applicant["referencia"]),
        ("nombre", "Nombre(s)", applicant["nombre"]),
        ("primer_apellido", "Primer apellido", applicant["primer_apellido"]),
        ("segundo_apellido", "Segundo apellido", applicant.get("segundo_apellido", "")),
        ("curp", "CURP", applicant["curp"]),
        ("correo", "Correo electrónico", applicant["correo"]),
        ("telefono", "Teléfono", applicant["telefono"]),
        ("marca", "Marca", marca),
        ("linea", "Línea", linea),
        ("tipo_servicio", "Tipo de servicio", servicio),
        ("ano_modelo", "Año modelo", vehicle["ano_modelo"]),
        ("placas", "Placas", vehicle["placas"]),
        ("niv", "NIV", vehicle.get("niv", "")),
    ]
    items = "".join(
        f'<dt>{esc(label)}</dt><dd data-campo="{esc(key)}">{esc(value)}</dd>'
        for key, label, value in rows
    )
    return (
        '<p class="pasos">Paso 3 de 3: revise la información antes de enviarla</p>'
        f'<dl id="resumen">{items}</dl>'
        f'<form id="confirmar" method="post" action="/tramites/nuevo/confirmar">{csrf(token)}'
        '<a href="/tramites/nuevo/vehiculo">Modificar</a> '
        '<button type="submit" id="confirmar-envio">Confirmar y enviar</button></form>'
    )


POLL_SCRIPT = """
<script>
(function () {
  var url = %s;
  function poll() {
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) {
        var type = r.headers.get("Content-Type") || "";
        if (r.redirected || (r.ok && type.indexOf("json") < 0)) { window.location.reload(); }
        return r.ok && type.indexOf("json") >= 0 ? r.json() : null;
      })
      .then(function (data) {
        if (data && data.estado !== "procesando") { window.location.reload(); return; }
        setTimeout(poll, %d);
      })
      .catch(function () { setTimeout(poll, %d); });
  }
  setTimeout(poll, %d);
})();
</script>
"""

STATE_TEXT = {
    PROCESANDO: "Su trámite está en proceso. Esta página se actualizará automáticamente.",
    LISTO: "Su permiso ha sido emitido.",
    "rechazado": "Su trámite fue rechazado.",
}
DOC_NAMES = {
    "permiso": "Permiso provisional",
    "certificado": "Certificado de registro",
    "placa": "Placa provisional",
}


def status(submission: Submission, poll_ms: int) -> str:
    marca, linea, _ = vehicle_names(submission.vehicle)
    body = (
        f'<div id="estado" data-estado="{esc(submission.estado)}">'
        f"<p>{esc(STATE_TEXT[submission.estado])}</p></div>"
        f'<dl><dt>Referencia</dt><dd id="referencia">{esc(submission.referencia)}</dd>'
        f"<dt>Placas</dt><dd>{esc(submission.plates)}</dd>"
        f"<dt>Vehículo</dt><dd>{esc(marca)} {esc(linea)} "
        f"{esc(submission.vehicle['ano_modelo'])}</dd></dl>"
    )
    if submission.estado == LISTO:
        docs = "".join(
            f'<li><a class="documento" data-tipo="{kind}" '
            f'href="/tramites/{esc(submission.id)}/documentos/{kind}.pdf">'
            f"{esc(name)} (PDF)</a></li>"
            for kind, name in DOC_NAMES.items()
        )
        body += (
            f'<p>Folio: <strong id="folio">{esc(submission.folio)}</strong></p>'
            f"<p>Vigencia: del {esc(submission.valid_from)} al {esc(submission.valid_until)}</p>"
            f'<ul id="documentos">{docs}</ul>'
        )
    elif submission.estado == PROCESANDO:
        url = json.dumps(f"/tramites/{submission.id}/estado.json")
        body += POLL_SCRIPT % (url, poll_ms, poll_ms, poll_ms)
    else:
        body += f'<p>Motivo: <span id="motivo">{esc(submission.reject_reason)}</span></p>'
    return body


def consulta(token: str, referencia: str | None, results: list[Submission]) -> str:
    # PAGES.md puts the token on every form; a GET search ignores it.
    body = (
        f'<form id="consulta" method="get" action="/consulta">{csrf(token)}'
        '<div class="campo"><label for="referencia">Referencia</label>'
        f'<input id="referencia" name="referencia" value="{esc(referencia or "")}"></div>'
        '<button type="submit">Buscar</button></form>'
    )
    if referencia is None:
        return body
    if not results:
        return body + (
            '<p id="sin-resultados" class="alerta-aviso">'
            "No se encontró ningún trámite con esa referencia</p>"
        )
    rows = "".join(
        f'<tr data-estado="{esc(s.estado)}" data-folio="{esc(s.folio or "")}">'
        f"<td>{esc(s.created_at.strftime('%Y-%m-%d %H:%M'))} UTC</td>"
        f"<td>{esc(s.referencia)}</td><td>{esc(s.plates)}</td><td>{esc(s.estado)}</td>"
        f"<td>{esc(s.folio or '—')}</td>"
        f'<td><a class="ver-tramite" href="/tramites/{esc(s.id)}/estado">Ver trámite</a></td></tr>'
        for s in results
    )
    return body + (
        '<table id="resultado"><thead><tr><th>Fecha</th><th>Referencia</th><th>Placas</th>'
        f"<th>Estado</th><th>Folio</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    )


def message(text: str, link: tuple[str, str] | None = None) -> str:
    body = f"<p>{esc(text)}</p>"
    if link:
        body += f'<p><a href="{esc(link[0])}">{esc(link[1])}</a></p>'
    return body
