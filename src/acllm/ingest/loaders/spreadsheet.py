"""Excel workbooks (.xlsx, .xlsm) with openpyxl in read-only mode: every sheet's rows like CSV.

Each data row is a Document of kind "table" located "sheet S, row N" (N counts the sheet's data
rows from 1, blank rows skipped); the Excel row number is in metadata["sheet_row"]. Formulas give
the values Excel last saved.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acllm.errors import MissingExtraError
from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import (
    cell_text,
    column_names,
    file_source,
    plausible_header,
    reason,
    row_text,
)


def _sheet(sheet: Any, ids: tuple[str, str], header: bool | None) -> Iterator[Document | LoadError]:
    names: tuple[str, ...] | None = None
    number = 0
    for cells in sheet.iter_rows():
        values = [cell_text(c.value) for c in cells]
        while values and not values[-1]:
            values.pop()
        if not values:
            continue
        if names is None:
            has_header = plausible_header(values) if header is None else header
            names = column_names(values, len(values)) if has_header else ()
            if has_header:
                continue
        number += 1
        excel_row = next((c.row for c in cells if getattr(c, "row", None)), None)
        meta = {
            "format": "xlsx",
            "sheet": sheet.title,
            "row": number,
            "sheet_row": excel_row,
            "columns": list(names),
        }
        location = f"sheet {sheet.title}, row {number}"
        yield Document(row_text(names, values), *ids, location, "table", names, meta)


def load(
    path: str | Path, *, header: bool | None = None, **_options: object
) -> Iterator[Document | LoadError]:
    """``header`` forces whether each sheet's first row names the columns (default: detected)."""
    try:
        import openpyxl
    except ImportError:
        raise MissingExtraError("xlsx", "docs") from None
    resolved, source_id, source = file_source(path)
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it ignores; they carry no text.
            warnings.simplefilter("ignore", UserWarning)
            book = openpyxl.load_workbook(resolved, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl errors: the file is not a workbook
        yield LoadError(source_id, f"not a readable .xlsx workbook: {reason(exc)}")
        return
    try:
        for sheet in book.worksheets:
            try:
                yield from _sheet(sheet, (source_id, source), header)
            except Exception as exc:  # a broken sheet: report it, read the next one
                where = f"sheet {sheet.title}"
                yield LoadError(source_id, f"{where}: {reason(exc)}", where)
    finally:
        book.close()  # read-only mode keeps the zip file open until closed
