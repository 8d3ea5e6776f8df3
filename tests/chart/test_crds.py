"""The chart's CRDs are the generated ones, beside Kopf's peering CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest

from permisos import crdgen

from .conftest import CHART, ROOT

CHART_CRDS = CHART / "crds"


@pytest.mark.parametrize("name", list(crdgen.CRDS))
def test_chart_crds_equal_the_generated_and_top_level_ones(name: str) -> None:
    generated = crdgen.render(name)
    assert (CHART_CRDS / name).read_text() == generated, (
        f"charts/permisos/crds/{name} is stale: run `python -m permisos.crdgen`"
    )
    assert (ROOT / "crds" / name).read_text() == generated


def test_the_chart_ships_exactly_our_crds_and_kopfs() -> None:
    assert sorted(p.name for p in CHART_CRDS.iterdir()) == sorted(
        [*crdgen.CRDS, "kopf-peerings.yaml"]
    )


def test_crdgen_writes_both_folders_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert crdgen.main(["crdgen"]) == 0
    for folder in ("crds", "charts/permisos/crds"):
        for name in crdgen.CRDS:
            assert (tmp_path / folder / name).read_text() == crdgen.render(name)
