"""The three documents of an issued permit, drawn with reportlab (which ships no type hints)."""

from __future__ import annotations

import io

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import letter
from reportlab.lib.units import cm
from reportlab.pdfgen.canvas import Canvas

from . import catalog
from .store import Submission

KINDS = ("permiso", "certificado", "placa")
TITLES = {
    "permiso": "Permiso provisional de circulación",
    "certificado": "Certificado de registro vehicular",
    "placa": "Placa provisional (tarjetón)",
}
AUTHORITY = "Secretaría de Movilidad — Sistema de Permisos de Circulación"


def _vehicle_lines(submission: Submission) -> list[tuple[str, str]]:
    vehicle = submission.vehicle
    make = catalog.find_make(vehicle["marca"])
    line = catalog.find_line(make, vehicle["linea"]) if make else None
    return [
        ("Placas", submission.plates),
        ("Marca", make.nombre if make else vehicle["marca"]),
        ("Línea", line.nombre if line else vehicle["linea"]),
        ("Año modelo", vehicle["ano_modelo"]),
        ("Tipo de servicio", catalog.service_name(vehicle["tipo_servicio"]) or ""),
        ("NIV", vehicle.get("niv") or "—"),
    ]


def _qr(canvas: Canvas, value: str, x: float, y: float, size: float) -> None:
    widget = QrCodeWidget(value)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(widget)
    renderPDF.draw(drawing, canvas, x, y)


def render(submission: Submission, kind: str) -> bytes:
    if kind not in KINDS or submission.folio is None:
        raise ValueError(f"no document {kind!r} for this submission")
    folio = submission.folio
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=letter, invariant=True)
    canvas.setTitle(f"{TITLES[kind]} {folio}")
    canvas.setAuthor(AUTHORITY)
    width, height = letter
    y = height - 2.5 * cm
    canvas.setFont("Helvetica", 9)
    canvas.drawString(2 * cm, y, AUTHORITY)
    y -= 1.2 * cm
    canvas.setFont("Helvetica-Bold", 18)
    canvas.drawString(2 * cm, y, TITLES[kind])
    y -= 1.2 * cm
    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawString(2 * cm, y, f"Folio: {folio}")
    if kind == "placa":
        # The placard is read from across the street: the plates, big.
        y -= 3 * cm
        canvas.setFont("Helvetica-Bold", 64)
        canvas.drawCentredString(width / 2, y, submission.plates)
    y -= 1.2 * cm
    rows = _vehicle_lines(submission)
    if kind == "permiso":
        applicant = submission.applicant
        holder = " ".join(
            p
            for p in (
                applicant["nombre"],
                applicant["primer_apellido"],
                applicant.get("segundo_apellido", ""),
            )
            if p
        )
        rows.insert(0, ("Titular", holder))
    rows.append(("Vigencia desde", str(submission.valid_from)))
    rows.append(("Vigencia hasta", str(submission.valid_until)))
    for label, value in rows:
        canvas.setFont("Helvetica-Bold", 11)
        canvas.drawString(2 * cm, y, f"{label}:")
        canvas.setFont("Helvetica", 11)
        canvas.drawString(6.5 * cm, y, value)
        y -= 0.7 * cm
    _qr(
        canvas,
        f"{folio}|{submission.plates}|{submission.valid_until}",
        width - 6 * cm,
        2 * cm,
        4 * cm,
    )
    canvas.setFont("Helvetica", 8)
    canvas.drawString(
        2 * cm, 2 * cm, "Documento generado electrónicamente. Verifique con el folio."
    )
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
