"""How the operator's settings configure Kopf: named namespaces turn its cluster scanning off."""

from __future__ import annotations

import kopf
import pytest
from pydantic import ValidationError

from permisos_operator import handlers
from permisos_operator.settings import OperatorSettings


@pytest.mark.parametrize(
    ("namespaces", "scanning_disabled"),
    [([], False), (["permisos"], True), (["permisos", "team-2"], True)],
)
def test_named_namespaces_turn_kopf_scanning_off(
    namespaces: list[str], scanning_disabled: bool
) -> None:
    """Cluster-wide, Kopf keeps observing CRDs; in named namespaces it reads no namespaces and no
    CRDs, which is why the namespace-scoped chart grants neither (permisos_operator.rbac)."""
    settings = kopf.OperatorSettings()
    operator = OperatorSettings(namespaces=namespaces)
    handlers.kopf_settings(settings, operator)
    assert settings.scanning.disabled is scanning_disabled


@pytest.mark.parametrize("pattern", ["team-*", "!kube-system", "a,b", "Permisos", "", "a" * 64])
def test_namespaces_are_names_not_kopf_patterns(pattern: str) -> None:
    """Without scanning Kopf would silently serve no namespace for a glob: refused at start."""
    with pytest.raises(ValidationError, match="not namespace names"):
        OperatorSettings(namespaces=["permisos", pattern])


def test_namespaces_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERMISOS_OPERATOR_NAMESPACES", '["permisos"]')
    assert OperatorSettings().namespaces == ["permisos"]
