"""Checks that a downloaded document is the permit the portal promised, before storing it."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass

from permisos.resources import ArtifactKind
from permisos_runner.errors import Retryable

# Quiet pypdf's recovery chatter; a broken file is reported by the check, once.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def load_reader() -> None:
    """Imports pypdf, which only the end of an attempt needs: the runner does it in a thread
    while the portal processes the submission, so neither start-up nor pages wait for it."""
    import pypdf  # noqa: F401


@dataclass(frozen=True)
class Document:
    kind: ArtifactKind
    data: bytes
    sha256: str


def check_pdf(kind: ArtifactKind, data: bytes, folio: str, max_bytes: int) -> Document:
    """A real PDF, complete, under the size limit, carrying the folio; else a retryable failure.

    A broken document is the portal's (or the network's) fault, never the applicant's, so every
    failure here is retryable.
    """
    if not data:
        raise Retryable("DownloadIncomplete", f"El documento {kind} llegó vacío")
    if len(data) > max_bytes:
        raise Retryable(
            "DocumentTooLarge", f"El documento {kind} mide {len(data)} bytes (límite {max_bytes})"
        )
    if not data.startswith(b"%PDF-"):
        raise Retryable("DocumentInvalid", f"El documento {kind} no es un PDF")
    # pypdf can rebuild a truncated file, so look for the end marker a complete PDF carries.
    if b"%%EOF" not in data[-1024:]:
        raise Retryable("DownloadIncomplete", f"El documento {kind} llegó incompleto")
    from pypdf import PdfReader  # loaded already by `load_reader`

    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception as error:  # pypdf raises many types on malformed input
        raise Retryable(
            "DocumentInvalid", f"El documento {kind} no se puede leer: {type(error).__name__}"
        ) from None
    if folio not in text and folio not in "".join(text.split()):
        raise Retryable("DocumentInvalid", f"El documento {kind} no lleva el folio {folio}")
    return Document(kind, data, hashlib.sha256(data).hexdigest())
