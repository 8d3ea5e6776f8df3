"""The portal's pages as PAGES.md describes them, walked with a plain HTTP client."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from permisos_sandbox.portal import PortalSimulator

from .conftest import VALID_CURP, Doc, PortalClient, applicant_form, vehicle_form


async def test_login_sets_an_http_only_session_cookie(portal_client: PortalClient) -> None:
    status, page, _ = await portal_client.get("/login")
    assert status == 200
    assert page.h1 == "Iniciar sesión"
    form = page.one("form", id="login")
    assert form.attrs["method"] == "post"
    assert page.all("input", name="usuario") and page.all("input", name="contrasena")
    assert page.one("button", type="submit").text.strip() == "Iniciar sesión"

    status, _, resp = await portal_client.post(
        "/login", {"usuario": "operador", "contrasena": "secreto", "csrf_token": page.csrf()}
    )
    assert status == 303
    assert resp.headers["Location"] == "/tramites"
    cookie = resp.cookies["sesion"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == "900"

    status, home, _ = await portal_client.get("/tramites")
    assert status == 200
    assert home.one("a", id="nuevo-tramite").attrs["href"] == "/tramites/nuevo/solicitante"
    assert home.one("a", id="consulta").attrs["href"] == "/consulta"
    assert home.one("a", id="salir").attrs["href"] == "/logout"


async def test_bad_credentials_show_the_form_again(portal_client: PortalClient) -> None:
    status, page, _ = await portal_client.submit(
        "/login", {"usuario": "operador", "contrasena": "incorrecta"}
    )
    assert status == 200
    assert page.one(cls="alerta-error").text.strip() == "Usuario o contraseña incorrectos"
    assert page.one("form", id="login")
    status, _, _ = await portal_client.get("/tramites")
    assert status == 303


async def test_full_walk_to_three_pdfs(portal_client: PortalClient) -> None:
    await portal_client.login()
    await portal_client.fill(
        applicant_form(referencia="app-walk"),
        vehicle_form(marca="TOY", linea="TOY-03", placas="xyz-987-6", ano_modelo="2021"),
    )
    _, review, _ = await portal_client.get("/tramites/nuevo/revision")
    resumen = review.one("dl", id="resumen").text
    for shown in ("app-walk", "Gabriela", VALID_CURP, "Toyota", "Hilux", "XYZ9876", "2021"):
        assert shown in resumen
    assert review.one("button", id="confirmar-envio").text.strip() == "Confirmar y enviar"
    assert review.one("form", id="confirmar").attrs["action"] == "/tramites/nuevo/confirmar"

    status_path = await portal_client.confirm()
    assert status_path.startswith("/tramites/") and status_path.endswith("/estado")
    _, processing, _ = await portal_client.get(status_path)
    assert processing.one(id="estado").attrs["data-estado"] == "procesando"
    assert "estado.json" in processing.all("script")[-1].text
    async with portal_client.http.get(portal_client.sim.url + status_path + ".json") as resp:
        assert await resp.json() == {
            "estado": "procesando",
            "folio": None,
            "mensaje": "Su trámite está en proceso",
        }

    done = await portal_client.wait_ready(status_path)
    assert done.one(id="estado").attrs["data-estado"] == "listo"
    folio = done.one(id="folio").text.strip()
    year = datetime.now(UTC).year
    assert folio.startswith(f"PC-{year}-") and len(folio) == len("PC-2026-000123")
    links = {a.attrs["data-tipo"]: a.attrs["href"] for a in done.all("a", cls="documento")}
    assert set(links) == {"permiso", "certificado", "placa"}

    today = datetime.now(UTC).date()
    for kind, href in links.items():
        assert href == f"{status_path.removesuffix('/estado')}/documentos/{kind}.pdf"
        async with portal_client.http.get(portal_client.sim.url + href) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/pdf"
            assert resp.headers["Content-Disposition"] == (
                f'attachment; filename="{kind}-{folio}.pdf"'
            )
            body = await resp.read()
        text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
        for expected in (folio, "XYZ9876", "Toyota", "Hilux", "2021", "Particular"):
            assert expected in text, (kind, expected)
        assert str(today) in text and str(today + timedelta(days=30)) in text


async def test_status_page_reloads_itself_until_ready(portal_client: PortalClient) -> None:
    """What the browser sees without clicking: estado.json flips, then the page shows the folio."""
    await portal_client.login()
    status_path = await portal_client.apply("app-poll")
    async with portal_client.http.get(portal_client.sim.url + status_path + ".json") as resp:
        assert (await resp.json())["estado"] == "procesando"
    await asyncio.sleep(0.35)
    async with portal_client.http.get(portal_client.sim.url + status_path + ".json") as resp:
        data = await resp.json()
    assert data["estado"] == "listo" and data["folio"].startswith("PC-")


async def test_post_without_the_session_token_is_rejected(portal_client: PortalClient) -> None:
    await portal_client.login()
    status, page, _ = await portal_client.post(
        "/tramites/nuevo/solicitante", {**applicant_form(), "csrf_token": "forjado"}
    )
    assert status == 403
    assert page.h1 == "Solicitud no válida"
    status, page, _ = await portal_client.post("/tramites/nuevo/solicitante", applicant_form())
    assert status == 403
    # A login form needs the token too.
    status, page, _ = await portal_client.post(
        "/login", {"usuario": "operador", "contrasena": "secreto"}
    )
    assert status == 403
    assert page.h1 == "Solicitud no válida"


async def test_every_form_carries_a_csrf_token(portal_client: PortalClient) -> None:
    _, login, _ = await portal_client.get("/login")
    await portal_client.login()
    await portal_client.fill(applicant_form(), vehicle_form())
    pages = [login]
    for path in ("/tramites/nuevo/solicitante", "/tramites/nuevo/vehiculo", "/consulta"):
        pages.append((await portal_client.get(path))[1])
    pages.append((await portal_client.get("/tramites/nuevo/revision"))[1])
    for page in pages:
        forms = page.all("form")
        tokens = [i.attrs["value"] for i in page.all("input", name="csrf_token", type="hidden")]
        assert forms and len(tokens) == len(forms), page.h1
        assert all(len(token) >= 20 for token in tokens)


async def test_session_expires_after_its_ttl(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    portal.config.session_ttl_seconds = 0.3
    await portal_client.login()
    assert (await portal_client.get("/tramites"))[0] == 200
    await asyncio.sleep(0.4)
    status, _, resp = await portal_client.get("/tramites/nuevo/solicitante")
    assert status == 303
    assert resp.headers["Location"] == "/login?expirada=1"
    _, login, _ = await portal_client.get("/login?expirada=1")
    assert login.one(id="sesion-expirada").text.strip().startswith("Su sesión ha expirado")
    assert "alerta-aviso" in login.one(id="sesion-expirada").classes


async def test_expire_sessions_now_ends_a_flow_half_way(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    await portal_client.login()
    status, _, location = await portal_client.submit(
        "/tramites/nuevo/solicitante", applicant_form()
    )
    assert location == "/tramites/nuevo/vehiculo"
    _, vehicle_page, _ = await portal_client.get("/tramites/nuevo/vehiculo")
    async with portal_client.http.put(
        portal.url + "/__control/config", json={"expire_sessions_now": True}
    ) as resp:
        assert resp.status == 200
    status, _, resp = await portal_client.post(
        "/tramites/nuevo/vehiculo", {**vehicle_form(), "csrf_token": vehicle_page.csrf()}
    )
    assert (status, resp.headers["Location"]) == (303, "/login?expirada=1")
    # Only once: logging in again works and the flag is spent.
    assert portal.config.expire_sessions_now is False
    assert await portal_client.login() == "/tramites"
    assert (await portal_client.get("/tramites"))[0] == 200


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("curp", "HEGG560427MVZRRL05", "La CURP no es válida"),  # wrong check digit
        ("curp", "HEGG561327MVZRRL04", "La CURP no es válida"),  # month 13
        ("curp", "HEGG56", "La CURP no es válida"),
        ("correo", "sin-arroba", "El correo electrónico no es válido"),
        ("telefono", "12345", "El teléfono debe tener 10 dígitos"),
        ("nombre", "", "Este campo es obligatorio"),
    ],
)
async def test_applicant_errors_next_to_the_field(
    portal_client: PortalClient, field: str, value: str, message: str
) -> None:
    await portal_client.login()
    form = applicant_form(**{field: value})
    status, page, _ = await portal_client.submit("/tramites/nuevo/solicitante", form)
    assert status == 200
    assert page.field_errors() == {field: message}
    # The form comes back with what was typed, so the user only fixes the bad field.
    assert page.one("form", id="solicitante")
    assert page.one("input", name="correo").attrs["value"] == form["correo"].lower()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"linea": "CHE-01"}, "linea", "La línea no corresponde a la marca"),
        ({"placas": "AAA-000-1"}, "placas", "Las placas ya cuentan con un permiso vigente"),
        ({"placas": "??"}, "placas", "Las placas no tienen un formato válido"),
        ({"ano_modelo": "1900"}, "ano_modelo", "Seleccione un año modelo válido"),
        ({"tipo_servicio": "militar"}, "tipo_servicio", "Seleccione un tipo de servicio"),
    ],
)
async def test_vehicle_errors_next_to_the_field(
    portal_client: PortalClient, overrides: dict[str, str], field: str, message: str
) -> None:
    await portal_client.login()
    await portal_client.submit("/tramites/nuevo/solicitante", applicant_form())
    status, page, _ = await portal_client.submit(
        "/tramites/nuevo/vehiculo", vehicle_form(**overrides)
    )
    assert status == 200
    assert page.field_errors() == {field: message}
    # The chosen make stays selected and its lines are there without any script.
    marca = page.one("select", name="marca")
    assert marca and page.one("option", value="NIS", selected="")
    assert {o.text for o in page.all("option") if o.attrs.get("value", "").startswith("NIS-")} == {
        "Versa",
        "Sentra",
        "March",
        "NP300",
    }


async def test_vehicle_page_options_and_lines_endpoint(portal_client: PortalClient) -> None:
    await portal_client.login()
    await portal_client.submit("/tramites/nuevo/solicitante", applicant_form())
    _, page, _ = await portal_client.get("/tramites/nuevo/vehiculo")
    assert page.one("form", id="vehiculo")
    makes = {o.text for o in page.all("option") if o.attrs["value"] in {"NIS", "CHE", "VW"}}
    assert makes == {"Nissan", "Chevrolet", "Volkswagen"}
    linea_index = page.elements.index(page.one("select", name="linea"))
    assert page.elements[linea_index + 1].tag != "option"  # empty until a make is chosen
    assert {o.attrs["value"] for o in page.all("option", value="particular")} == {"particular"}
    assert page.all("option", value="publico") and page.all("option", value="carga")
    assert page.all("option", value=str(datetime.now(UTC).year))
    assert page.one("input", name="placas") and page.one("input", name="niv")

    async with portal_client.http.get(
        portal_client.sim.url + "/catalogos/lineas", params={"marca": "KIA"}
    ) as resp:
        assert resp.status == 200
        lines = await resp.json()
    assert [line["nombre"] for line in lines] == ["Rio", "Forte", "Sportage", "Seltos"]
    assert all(set(line) == {"clave", "nombre"} for line in lines)


async def test_make_and_line_may_be_posted_by_visible_name(portal_client: PortalClient) -> None:
    await portal_client.login()
    await portal_client.fill(
        applicant_form(), vehicle_form(marca="volkswagen", linea="JETTA", placas="JET1234")
    )
    _, review, _ = await portal_client.get("/tramites/nuevo/revision")
    assert review.one("dd", **{"data-campo": "marca"}).text == "Volkswagen"
    assert review.one("dd", **{"data-campo": "linea"}).text == "Jetta"


async def test_issued_plates_block_other_references_but_not_the_same_one(
    portal_client: PortalClient,
) -> None:
    await portal_client.login()
    await portal_client.wait_ready(await portal_client.apply("app-first", placas="PLA1234"))
    await portal_client.submit("/tramites/nuevo/solicitante", applicant_form(referencia="other"))
    status, page, _ = await portal_client.submit(
        "/tramites/nuevo/vehiculo", vehicle_form(placas="PLA1234")
    )
    assert status == 200
    assert page.field_errors() == {"placas": "Las placas ya cuentan con un permiso vigente"}
    await portal_client.fill(applicant_form(referencia="app-first"), vehicle_form(placas="PLA1234"))


async def test_consulta_finds_earlier_submissions_by_reference_only(
    portal_client: PortalClient,
) -> None:
    await portal_client.login()
    mine = await portal_client.apply("app-mine", placas="MIN1234")
    await portal_client.apply("app-other", placas="OTH1234")
    await portal_client.wait_ready(mine)

    status, page, _ = await portal_client.get("/consulta")
    assert status == 200 and page.one("form", id="consulta").attrs["method"] == "get"
    assert not page.all(id="resultado") and not page.all(id="sin-resultados")

    _, found, _ = await portal_client.get("/consulta?referencia=app-mine")
    rows = found.one("table", id="resultado").text
    assert "MIN1234" in rows and "OTH1234" not in rows
    links = [a.attrs["href"] for a in found.all("a", cls="ver-tramite")]
    assert links == [mine]

    _, none, _ = await portal_client.get("/consulta?referencia=app-nadie")
    assert none.one(id="sin-resultados").text.strip() == (
        "No se encontró ningún trámite con esa referencia"
    )
    assert not none.all(id="resultado")


async def test_submissions_are_counted_per_reference(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    await portal_client.login()
    await portal_client.apply("app-count", placas="CNT1111")
    # Re-posting the spent confirmation does not submit again: it sends the user to step 1.
    _, review_page, _ = await portal_client.get("/tramites/nuevo/solicitante")
    status, _, resp = await portal_client.post(
        "/tramites/nuevo/confirmar", {"csrf_token": review_page.csrf()}
    )
    assert (status, resp.headers["Location"]) == (303, "/tramites/nuevo/solicitante")
    assert portal.submissions("app-count") == 1
    await portal_client.apply("app-count", placas="CNT2222")
    assert portal.submissions("app-count") == 2
    assert portal.submissions("app-nunca") == 0
    async with portal_client.http.get(
        portal.url + "/__control/submissions", params={"referencia": "app-count"}
    ) as resp:
        data = await resp.json()
    assert data["referencia"] == "app-count" and data["count"] == 2
    assert sorted(t["placas"] for t in data["tramites"]) == ["CNT1111", "CNT2222"]
    assert VALID_CURP not in str(data)  # the control API shows no personal data


async def test_reject_next_rejects_one_submission_asynchronously(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    portal.config.reject_next = "Los datos del vehículo no coinciden con el padrón"
    await portal_client.login()
    rejected = await portal_client.wait_ready(
        await portal_client.apply("app-rej", placas="REJ1234")
    )
    assert rejected.one(id="estado").attrs["data-estado"] == "rechazado"
    assert rejected.one(id="motivo").text == "Los datos del vehículo no coinciden con el padrón"
    assert not rejected.all("a", cls="documento")
    accepted = await portal_client.wait_ready(await portal_client.apply("app-ok", placas="OK1234"))
    assert accepted.one(id="estado").attrs["data-estado"] == "listo"
    # A rejected submission issued nothing: its plates are free.
    await portal_client.fill(applicant_form(referencia="x"), vehicle_form(placas="REJ1234"))


async def test_fail_plates_fails_that_many_confirmations_of_those_plates_only(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    async with portal_client.http.put(
        portal.url + "/__control/config", json={"fail_plates": {"FLT1234": 2}, "error_status": 503}
    ) as resp:
        assert resp.status == 200
    await portal_client.login()
    for left in (1, 0):
        await portal_client.fill(
            applicant_form(referencia="app-flt"), vehicle_form(placas="FLT1234")
        )
        _, review, _ = await portal_client.get("/tramites/nuevo/revision")
        status, page, _ = await portal_client.post(
            "/tramites/nuevo/confirmar", {"csrf_token": review.csrf()}
        )
        assert status == 503 and page.one("h1").text == "Servicio no disponible"
        assert portal.config.fail_plates == {"FLT1234": left}
    assert portal.submissions("app-flt") == 0
    # Other plates are untouched meanwhile, and the third confirmation goes through.
    await portal_client.apply("app-other", placas="OTR1234")
    await portal_client.apply("app-flt", placas="FLT1234")
    assert portal.submissions("app-flt") == 1


async def test_control_config_round_trip_validation_and_reset(
    portal: PortalSimulator, portal_client: PortalClient
) -> None:
    url = portal.url + "/__control/config"
    async with portal_client.http.get(portal.url + "/__control/health") as resp:
        assert resp.status == 200
    async with portal_client.http.put(url, json={"latency_ms": 5, "download": "slow"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["download"] == "slow"
    assert portal.config.latency_ms == 5  # the same object as sim.config
    async with portal_client.http.put(url, json={"error_rate": 2}) as resp:
        assert resp.status == 400
    async with portal_client.http.put(url, json={"no_such_knob": 1}) as resp:
        assert resp.status == 400
    async with portal_client.http.get(url) as resp:
        config = await resp.json()
    assert config["error_rate"] == 0 and config["processing_seconds"] == 0.3
    assert {"latency_ms", "error_status", "maintenance", "session_ttl_seconds"} <= set(config)
    assert {"expire_sessions_now", "download_delay_seconds", "modal_rate", "reject_next"} <= set(
        config
    )
    assert "seed" in config and "users" not in config

    await portal_client.login()
    await portal_client.apply("app-reset")
    async with portal_client.http.post(portal.url + "/__control/reset") as resp:
        assert (await resp.json())["download"] == "normal"
    assert portal.submissions("app-reset") == 0
    assert (await portal_client.get("/tramites"))[0] == 303  # sessions forgotten too


async def test_logs_carry_no_personal_data(
    portal_client: PortalClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="permisos_sandbox.portal")
    await portal_client.login()
    await portal_client.submit("/tramites/nuevo/solicitante", applicant_form(curp="MALA"))
    await portal_client.wait_ready(await portal_client.apply("app-logs"))
    await portal_client.get("/consulta?referencia=app-logs")
    lines = [r.getMessage() for r in caplog.records if r.name == "permisos_sandbox.portal"]
    assert "POST /tramites/nuevo/solicitante 200" in " ".join(lines)
    assert any(line.startswith("GET /tramites/{id}/estado ") for line in lines)
    text = "\n".join(lines)
    for secret in (VALID_CURP, "MALA", "Gabriela", "Hernández", "gabriela@", "5512345678"):
        assert secret not in text
    assert "referencia=" not in text


async def test_unknown_submission_is_a_spanish_404(portal_client: PortalClient) -> None:
    await portal_client.login()
    for path in ("/tramites/nadaqui/estado", "/no-existe"):
        status, page, _ = await portal_client.get(path)
        assert status == 404
        assert page.h1 == "Página no encontrada"


def test_doc_helper_reads_nested_text() -> None:
    doc = Doc('<div id="a"><p class="x">uno <b>dos</b></p></div>')
    assert doc.one(id="a").text == "uno dos"
    assert doc.one(cls="x").text == "uno dos"
