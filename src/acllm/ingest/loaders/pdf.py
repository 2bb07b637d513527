"""PDF with pdfplumber: each page's text, and its tables row by row with their header.

A table row is a Document of kind "table" located "page N, table M, row R" (R counts data rows,
the header being the table's first row); the rest of the page's text is one Document "page N".
A page with images but no text is OCR'd with tesseract. Encrypted or corrupt files, and pages
that fail, are LoadErrors; the other pages go on.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acllm.errors import MissingExtraError
from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders import ocr as ocr_engine
from acllm.ingest.loaders._common import column_names, file_source, reason, row_text


def _open_error(exc: BaseException) -> str:
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    seen: list[BaseException] = [exc, *(a for a in exc.args if isinstance(a, BaseException))]
    if exc.__cause__ is not None:
        seen.append(exc.__cause__)
    if any(isinstance(e, PDFPasswordIncorrect | PDFEncryptionError) for e in seen):
        return "encrypted: needs a password"
    return f"corrupt PDF: {reason(seen[-1])}"


def _cell(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _tables(page: Any, ids: tuple[str, str], meta: dict[str, Any]) -> tuple[list[Document], Any]:
    """Rows of the page's tables (first row = header), and the page without those tables."""
    docs: list[Document] = []
    rest = page
    number = 0
    for table in page.find_tables():
        rows = [[_cell(c) for c in row] for row in table.extract()]
        rows = [r for r in rows if any(r)]
        if len(rows) < 2:
            continue  # a one-row "table" is a layout box: its words stay in the page text
        number += 1
        header = column_names(rows[0], max(len(r) for r in rows))
        for r, values in enumerate(rows[1:], start=1):
            location = f"page {meta['page']}, table {number}, row {r}"
            row_meta = {**meta, "table": number, "row": r, "columns": list(header)}
            docs.append(
                Document(row_text(header, values), *ids, location, "table", header, row_meta)
            )
        rest = rest.outside_bbox(table.bbox, strict=False)
    return docs, rest


def _ocr(page: Any, options: dict[str, Any]) -> str:
    langs = ocr_engine.languages(options["ocr_languages"])
    image = page.to_image(resolution=options["ocr_resolution"])
    buf = io.BytesIO()
    image.original.save(buf, format="PNG")
    return ocr_engine.ocr_png(buf.getvalue(), langs, dpi=options["ocr_resolution"])


def _page(
    page: Any, ids: tuple[str, str], options: dict[str, Any]
) -> Iterator[Document | LoadError]:
    n = page.page_number
    meta: dict[str, Any] = {"format": "pdf", "page": n, "pages": options["pages"]}
    where = f"page {n}"
    try:
        docs, rest = _tables(page, ids, meta)
        text = (rest.extract_text() or "").strip()
        has_images = bool(page.images)
    except Exception as exc:  # pdfminer raises many types on broken page content
        yield LoadError(ids[0], f"{where}: {reason(exc)}", where)
        return
    yield from docs
    if text:
        yield Document(text, *ids, where, "text", metadata=meta)
    if text or docs or not has_images:
        return  # a page without images or text is blank on purpose
    if not options["ocr"]:
        yield LoadError(ids[0], f"{where}: image-only page (OCR disabled)", where)
        return
    try:
        text = _ocr(page, options).strip()
    except ocr_engine.OcrUnavailable:
        yield LoadError(ids[0], f"{where}: image-only page; {ocr_engine.INSTALL_HINT}", where)
        return
    except Exception as exc:  # rendering or tesseract failed on this page only
        yield LoadError(ids[0], f"{where}: image-only page, OCR failed: {reason(exc)}", where)
        return
    if not text:
        yield LoadError(ids[0], f"{where}: image-only page, OCR found no text", where)
        return
    yield Document(text, *ids, where, "text", metadata={**meta, "ocr": True})


def load(
    path: str | Path,
    *,
    password: str = "",
    ocr: bool = True,
    ocr_languages: str = "spa+eng",
    ocr_resolution: int = 200,
    **_options: object,
) -> Iterator[Document | LoadError]:
    try:
        import pdfplumber
    except ImportError:
        raise MissingExtraError("pdf", "docs") from None
    resolved, source_id, source = file_source(path)
    try:
        fh = resolved.open("rb")  # opened here so it is closed even when pdfplumber fails
    except OSError as exc:
        yield LoadError(source_id, f"cannot read: {exc.strerror or exc}")
        return
    with fh:
        try:
            pdf = pdfplumber.open(fh, password=password or None)
            pages = pdf.pages
        except Exception as exc:  # pdfminer's errors share no base class worth naming
            yield LoadError(source_id, _open_error(exc))
            return
        with pdf:
            options = {
                "ocr": ocr,
                "ocr_languages": ocr_languages,
                "ocr_resolution": ocr_resolution,
                "pages": len(pages),
            }
            for page in pages:
                try:
                    yield from _page(page, (source_id, source), options)
                finally:
                    page.close()  # pdfplumber caches each page's objects until closed
