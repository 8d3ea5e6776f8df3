"""The account page in a real browser at both sizes: download my data (ARCO access) and delete
my account (ARCO cancellation), its confirmations first."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import APPLICATION, CURP, PASSWORD, Api
from tests.api.test_web_applying import logged_in
from tests.api.web import SIZES, Visit


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_applicant_downloads_their_data_and_deletes_the_account(
    api: Api, make_user: Callable[..., Any], size: str, tmp_path: Path
) -> None:
    user = await make_user()
    r = await user.client.post("/v1/applications", json=APPLICATION, headers=user.bearer())
    assert r.status_code == 201, r.text
    async with logged_in(api, user, size) as (base, page):
        visit = Visit(page, "cuenta-arco", size)
        await page.goto(base + "/")
        async with page.expect_navigation() as navigation:
            await page.get_by_role("link", name=user.email).click()
        await visit.check("mi-cuenta", await navigation.value)

        async with page.expect_download() as info:
            await page.get_by_role("link", name="Descargar mis datos (JSON)").click()
        download = await info.value
        assert download.suggested_filename == "mis-datos-permisos-digitales.json"
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        exported = json.loads(saved.read_text())
        assert exported["account"]["email"] == user.email
        assert [a["curp"] for a in exported["applications"]] == [CURP]

        # Each confirmation is asked for, next to its field.
        delete = page.get_by_role("button", name="Eliminar mi cuenta")
        await page.get_by_label("Tu contraseña").fill(PASSWORD)
        async with page.expect_navigation():
            await delete.click()
        assert "Marca la casilla" in await page.locator("#confirm-error").inner_text()
        await page.get_by_label("Tu contraseña").fill(PASSWORD + "x")
        await page.get_by_label("Entiendo que mi cuenta").check()
        async with page.expect_navigation() as navigation:
            await delete.click()
        assert "no es correcta" in await page.locator("#password-error").inner_text()
        await visit.check("eliminar-con-error", await navigation.value)

        await page.get_by_label("Tu contraseña").fill(PASSWORD)
        await page.get_by_label("Entiendo que mi cuenta").check()
        async with page.expect_navigation() as navigation:
            await delete.click()
        heading = await page.get_by_role("heading", level=1).inner_text()
        assert heading == "Tu cuenta fue eliminada"
        await visit.check("cuenta-eliminada", await navigation.value)
        # Logged out, and the old password opens nothing.
        await page.goto(base + "/cuenta")
        assert page.url.endswith("/entrar")
    r = await api.client().post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 401
