"""Floor plans: an uploaded image or one page of a PDF, rendered here to a PNG.

What a file is comes from its first bytes, never from its name or declared type: a "PDF" that
does not start with ``%PDF-`` is refused, and so is anything Pillow cannot decode. The result is
always a fresh PNG (no metadata, no scripts), at most ``MAX_SIDE`` pixels on its longer side.
Runs in a worker thread (it is CPU work and reads nothing from disk).
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from rtcc.errors import RtccError

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE = 2400
MAX_SOURCE_PIXELS = 60_000_000
"""More than a 6000 x 10000 scan: a larger image is a decompression bomb, refused undecoded."""


class PlanRefused(RtccError):
    pass


def render_plan(data: bytes, declared_type: str = "", page: int = 1) -> tuple[bytes, int, int]:
    """(PNG bytes, width, height) of ``data``: a PNG/JPEG/GIF/WebP image or page ``page`` of a
    PDF. Raises PlanRefused saying what is wrong and what to send instead."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PlanRefused(f"the floor plan is {len(data)} bytes; the most accepted is"
                          f" {MAX_UPLOAD_BYTES} bytes: export it smaller or at a lower"
                          " resolution")
    if not data:
        raise PlanRefused("the floor plan is empty; send a PNG or JPEG image or a PDF")
    if data.startswith(b"%PDF-"):
        image = _pdf_page(data, page)
    elif "pdf" in declared_type.lower():
        raise PlanRefused("the file is declared a PDF but is not one (it does not start with"
                          " %PDF-); export the floor plan again as a PDF or an image")
    else:
        image = _image(data)
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=False)
    return out.getvalue(), image.width, image.height


def _image(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in {"PNG", "JPEG", "GIF", "WEBP"}:
                raise PlanRefused(f"a {probe.format} image is not accepted; send PNG, JPEG or"
                                  " a PDF")
            if probe.width * probe.height > MAX_SOURCE_PIXELS:
                raise PlanRefused(f"the image is {probe.width} x {probe.height} pixels; the most"
                                  f" accepted is {MAX_SOURCE_PIXELS} pixels in all")
            probe.load()
            return probe.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise PlanRefused("the file is neither an image nor a PDF (its content was not"
                          " recognised); send a PNG or JPEG image or a PDF") from None


def _pdf_page(data: bytes, page: int) -> Image.Image:
    import pypdfium2  # type: ignore[import-untyped]

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        raise PlanRefused("the PDF could not be read (damaged or encrypted); export it"
                          " again") from None
    try:
        if not 1 <= page <= len(document):
            raise PlanRefused(f"the PDF has {len(document)} page(s); page {page} does not"
                              " exist")
        pdf_page = document[page - 1]
        width, height = pdf_page.get_size()
        scale = min(4.0, MAX_SIDE / max(width, height, 1.0))
        bitmap = pdf_page.render(scale=scale)
        image: Image.Image = bitmap.to_pil().copy()
        return image
    finally:
        document.close()
