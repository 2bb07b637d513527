"""Loaders on real files made here: every source and location is asserted exactly (citations)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from acllm.errors import MissingExtraError, UserError
from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders import iter_files, load_file, load_path, load_sql
from acllm.ingest.loaders._encoding import decode_bytes


def split(items: Iterable[Document | LoadError]) -> tuple[list[Document], list[LoadError]]:
    got = list(items)  # a generator: read it once
    return [i for i in got if isinstance(i, Document)], [i for i in got if isinstance(i, LoadError)]


def where(docs: list[Document]) -> list[str]:
    return [d.location for d in docs]


# --- text and Markdown ---------------------------------------------------------------------------

MARKDOWN = """Preámbulo sin título.

# Intro

Bienvenida.

## Pricing

Café 3 €.

```bash
# a comment, not a heading
```

### Details

Letra pequeña.

## Pricing

Otra vez precios.

Setext title
============

Under setext.
"""


def test_markdown_sections_by_heading_path(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    docs, errors = split(load_path(path))
    assert errors == []
    assert where(docs) == [
        "",
        "section Intro",
        "section Intro > Pricing",
        "section Intro > Pricing > Details",
        "section Intro > Pricing (2)",
        "section Setext title",
    ]
    assert {d.source for d in docs} == {"guide.md"}
    assert {d.source_id for d in docs} == {str(path.resolve())}
    assert {d.kind for d in docs} == {"text"}
    pricing = docs[2]
    assert pricing.text.startswith("Pricing\n\nCafé 3 €.")
    assert "# a comment, not a heading" in pricing.text
    assert pricing.metadata["section"] == "Intro > Pricing"
    assert [d.metadata["heading"] for d in docs[1:4]] == ["Intro", "Pricing", "Details"]
    assert docs[0].text == "Preámbulo sin título."


def test_text_encodings_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "utf8.txt").write_text("Año de la niña\n", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("Año de la niña, pingüino\n".encode("latin-1"))
    (tmp_path / "win.txt").write_bytes("Precio: 5€ — oferta\n".encode("cp1252"))
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "garbage.txt").write_bytes(bytes(range(256)) * 8)
    docs, errors = split(load_path(tmp_path))
    by_name = {d.source: d for d in docs}
    assert by_name["utf8.txt"].text == "Año de la niña"
    assert by_name["latin.txt"].text == "Año de la niña, pingüino"
    assert by_name["win.txt"].text == "Precio: 5€ — oferta"
    assert by_name["utf8.txt"].location == ""
    assert "empty.txt" not in by_name
    assert [(Path(e.source).name, e.location) for e in errors] == [("garbage.txt", "")]
    assert "not a text file" in errors[0].reason


def test_decode_bytes_boms_and_cyrillic() -> None:
    assert decode_bytes("\ufeffhola".encode()) == ("hola", "utf-8-sig")
    assert decode_bytes("hola ñ".encode("utf-16")) == ("hola ñ", "utf-16")
    if importlib.util.find_spec("charset_normalizer"):  # asked only when cp1252 looks wrong
        cyrillic = decode_bytes("Привет мир, как дела сегодня".encode("cp1251"))
        assert cyrillic is not None and cyrillic[0] == "Привет мир, как дела сегодня"
    assert decode_bytes(b"\x00\x01\x02binary") is None


# --- CSV / TSV -----------------------------------------------------------------------------------


def test_csv_latin1_semicolon_with_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "clientes.csv"
    rows = "nombre;ciudad;saldo\nJosé;Málaga;3,50\nMaría;Cádiz\n\nÁngel;León;4\n"
    path.write_bytes(rows.encode("latin-1"))
    docs, errors = split(load_path(path))
    assert where(docs) == ["row 1", "row 3"]
    assert docs[0].text == "nombre: José; ciudad: Málaga; saldo: 3,50"
    assert docs[0].header == ("nombre", "ciudad", "saldo")
    assert docs[0].kind == "table"
    assert docs[1].source == "clientes.csv"
    assert docs[1].metadata["delimiter"] == ";"
    assert errors == [
        LoadError(str(path.resolve()), "row 2: expected 3 fields, got 2", "row 2"),
    ]


def test_csv_utf8_bom_comma_quotes(tmp_path: Path) -> None:
    path = tmp_path / "notas.csv"
    path.write_bytes('\ufeffid,texto\n1,"Hola, mundo"\n2,"Línea\nnueva"\n'.encode())
    docs, errors = split(load_path(path))
    assert errors == []
    assert docs[0].header == ("id", "texto")  # no BOM in the first column's name
    assert [d.text for d in docs] == ["id: 1; texto: Hola, mundo", "id: 2\ntexto: Línea\nnueva"]
    assert where(docs) == ["row 1", "row 2"]


def test_tsv_and_headerless_csv(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("producto\tprecio\ncafé\t3\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("1,2,3\n4,5,6\n", encoding="utf-8")
    docs, errors = split(load_path(tmp_path))
    assert errors == []
    assert [(d.source, d.location, d.text, d.header) for d in docs] == [
        ("a.tsv", "row 1", "producto: café; precio: 3", ("producto", "precio")),
        ("b.csv", "row 1", "1; 2; 3", ()),
        ("b.csv", "row 2", "4; 5; 6", ()),
    ]


# --- JSON / JSON Lines ---------------------------------------------------------------------------


def test_json_shapes_and_text_field(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(
        json.dumps([{"a": {"b": 1}, "tags": ["x", "y"]}, {"q": "z"}]), encoding="utf-8"
    )
    (tmp_path / "wrapped.json").write_text(
        json.dumps({"version": 2, "items": [{"body": "uno", "id": 7}, {"body": "dos"}]}),
        encoding="utf-8",
    )
    (tmp_path / "single.json").write_text(json.dumps({"name": "Ana", "age": 30}), encoding="utf-8")
    docs, errors = split(load_path(tmp_path))
    assert errors == []
    got = {(d.source, d.location): d.text for d in docs}
    assert got == {
        ("list.json", "record 1"): "a.b: 1\ntags: x, y",
        ("list.json", "record 2"): "q: z",
        ("single.json", "record 1"): "name: Ana\nage: 30",
        ("wrapped.json", "record 1"): "body: uno\nid: 7",
        ("wrapped.json", "record 2"): "body: dos",
    }
    assert {d.kind for d in docs} == {"record"}
    picked, errors = split(load_path(tmp_path / "wrapped.json", text_field="body"))
    assert [d.text for d in picked] == ["uno", "dos"]
    assert picked[0].metadata["fields"] == {"id": 7}
    missing, errors = split(load_path(tmp_path / "list.json", text_field="body"))
    assert missing == [] and [e.location for e in errors] == ["record 1", "record 2"]


def test_json_invalid_and_jsonl_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,}', encoding="utf-8")
    docs, errors = split(load_path(bad))
    assert docs == [] and len(errors) == 1
    assert errors[0].reason.startswith("invalid JSON:") and "line 1" in errors[0].reason
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"msg": "a"}\n{bad\n\n{"msg": "b"}\n[1, 2\n', encoding="utf-8")
    docs, errors = split(load_path(lines))
    assert [(d.location, d.text) for d in docs] == [("record 1", "msg: a"), ("record 4", "msg: b")]
    assert [e.location for e in errors] == ["record 2", "record 5"]
    assert errors[0].reason.startswith("line 2: invalid JSON")


# --- PDF -----------------------------------------------------------------------------------------


def make_table_pdf(path: Path) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    styles = getSampleStyleSheet()
    table = Table([["Producto", "Precio"], ["Café", "3,50"], ["Té verde", "2,00"]])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    SimpleDocTemplate(str(path), pagesize=A4).build(
        [
            Paragraph("Lista de precios del almacén.", styles["Normal"]),
            table,
            Paragraph("Precios con IVA.", styles["Normal"]),
            PageBreak(),
            Paragraph("Segunda página.", styles["Normal"]),
        ]
    )


def make_image_pdf(path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    image = Image.new("L", (1400, 320), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=60)
    draw.text((40, 60), "Factura de electricidad", fill=0, font=font)
    draw.text((40, 180), "Total a pagar: 45 euros", fill=0, font=font)
    pdf = canvas.Canvas(str(path))
    pdf.drawImage(ImageReader(image), 40, 500, width=520, height=119)
    pdf.save()


def test_pdf_text_and_table_rows(tmp_path: Path) -> None:
    path = tmp_path / "precios.pdf"
    make_table_pdf(path)
    docs, errors = split(load_path(path))
    assert errors == []
    assert [(d.location, d.kind, d.text) for d in docs] == [
        ("page 1, table 1, row 1", "table", "Producto: Café; Precio: 3,50"),
        ("page 1, table 1, row 2", "table", "Producto: Té verde; Precio: 2,00"),
        ("page 1", "text", "Lista de precios del almacén.\nPrecios con IVA."),
        ("page 2", "text", "Segunda página."),
    ]
    assert docs[0].header == ("Producto", "Precio")
    assert docs[0].metadata == {
        "format": "pdf",
        "page": 1,
        "pages": 2,
        "table": 1,
        "row": 1,
        "columns": ["Producto", "Precio"],
    }
    assert {d.source for d in docs} == {"precios.pdf"}


def test_pdf_image_only_page_is_ocrd(tmp_path: Path) -> None:
    assert shutil.which("tesseract"), "run scripts/system-deps.sh (tesseract-ocr, spa, eng)"
    path = tmp_path / "escaneo.pdf"
    make_image_pdf(path)
    docs, errors = split(load_path(path))
    assert errors == []
    assert [d.location for d in docs] == ["page 1"]
    assert "electricidad" in docs[0].text.lower()
    assert docs[0].metadata["ocr"] is True


def test_pdf_image_only_without_tesseract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "escaneo.pdf"
    make_image_pdf(path)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    docs, errors = split(load_path(path))
    assert docs == []
    assert errors == [
        LoadError(
            str(path.resolve()),
            "page 1: image-only page; install tesseract-ocr tesseract-ocr-spa",
            "page 1",
        )
    ]


def test_pdf_encrypted_and_corrupt(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    plain = tmp_path / "plain.pdf"
    make_table_pdf(plain)
    writer = PdfWriter(clone_from=plain)
    writer.encrypt(user_password="secreto", owner_password="dueño", algorithm="AES-128")
    locked = tmp_path / "locked.pdf"
    with locked.open("wb") as fh:
        writer.write(fh)
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(plain.read_bytes()[:600])
    assert list(load_path(locked)) == [
        LoadError(str(locked.resolve()), "encrypted: needs a password")
    ]
    docs, errors = split(load_path(corrupt))
    assert docs == [] and len(errors) == 1
    assert errors[0].reason.startswith("corrupt PDF")
    unlocked, errors = split(load_path(locked, password="secreto"))
    assert errors == [] and unlocked[0].location == "page 1, table 1, row 1"


# --- XLSX, DOCX, HTML ----------------------------------------------------------------------------


def test_xlsx_sheets_rows(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Precios"
    sheet.append(["Producto", "Precio", "Alta"])
    sheet.append(["Café", 3.5, dt.date(2024, 1, 2)])
    sheet.append([None, None, None])
    sheet.append(["Té", 2, None])
    other = book.create_sheet("Notas")
    other.append([10, 20])
    book.create_sheet("Vacía")
    path = tmp_path / "libro.xlsx"
    book.save(path)
    docs, errors = split(load_path(path))
    assert errors == []
    assert [(d.location, d.text) for d in docs] == [
        ("sheet Precios, row 1", "Producto: Café; Precio: 3.5; Alta: 2024-01-02"),
        ("sheet Precios, row 2", "Producto: Té; Precio: 2"),
        ("sheet Notas, row 1", "10; 20"),
    ]
    assert docs[0].header == ("Producto", "Precio", "Alta")
    assert docs[1].metadata["sheet_row"] == 4
    assert docs[1].metadata["sheet"] == "Precios"
    broken = tmp_path / "roto.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    docs, errors = split(load_path(broken))
    assert docs == [] and [e.reason.split(":")[0] for e in errors] == [
        "not a readable .xlsx workbook"
    ]


def test_docx_headings_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Texto inicial.")
    document.add_heading("Intro", level=1)
    document.add_paragraph("Hola.")
    document.add_heading("Pricing", level=2)
    document.add_paragraph("Café a 3 €.")
    table = document.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Producto", "Precio"), ("Café", "3,50"), ("Té", "2,00")]):
        table.rows[r].cells[0].text = a
        table.rows[r].cells[1].text = b
    document.add_heading("Otro", level=1)
    document.add_paragraph("Fin.")
    path = tmp_path / "manual.docx"
    document.save(str(path))
    docs, errors = split(load_path(path))
    assert errors == []
    assert [(d.location, d.kind) for d in docs] == [
        ("", "text"),
        ("section Intro", "text"),
        ("table 1, row 1", "table"),
        ("table 1, row 2", "table"),
        ("section Intro > Pricing", "text"),
        ("section Otro", "text"),
    ]
    assert docs[2].text == "Producto: Café; Precio: 3,50"
    assert docs[2].metadata["section"] == "Intro > Pricing"
    assert docs[4].text == "Pricing\n\nCafé a 3 €."


HTML = """<!doctype html><html><head><title>Tienda</title><style>p {color: red}</style>
<script>var secret = "no";</script></head><body>
<nav><a href="/">Inicio</a> menú</nav>
<h1>Catálogo</h1><p>Nuestros <b>productos</b>&nbsp;frescos.</p>
<table><tr><th>Producto</th><th>Precio</th></tr><tr><td>Café</td><td>3,50</td></tr>
<tr><td>Té</td><td>2,00</td></tr></table>
<h2>Envíos</h2><ul><li>Gratis &gt; 50 €</li><li>24 h</li></ul>
<table><tr><td>layout only</td></tr></table>
</body></html>"""


def test_html_sections_tables_and_dropped_elements(tmp_path: Path) -> None:
    path = tmp_path / "tienda.html"
    path.write_text(HTML, encoding="utf-8")
    docs, errors = split(load_path(path))
    assert errors == []
    assert [(d.location, d.text) for d in docs] == [
        ("table 1, row 1", "Producto: Café; Precio: 3,50"),
        ("table 1, row 2", "Producto: Té; Precio: 2,00"),
        ("section Catálogo", "Catálogo\n\nNuestros productos frescos."),
        ("section Catálogo > Envíos", "Envíos\n\nGratis > 50 €\n24 h\nlayout only"),
    ]
    assert docs[2].metadata["title"] == "Tienda"
    joined = " ".join(d.text for d in docs)
    assert "secret" not in joined and "menú" not in joined and "color" not in joined


# --- SQL -----------------------------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE products (sku INTEGER PRIMARY KEY, name TEXT, price REAL)")
        db.executemany("INSERT INTO products VALUES (?, ?, ?)", [(7, "Café", 3.5), (3, "Té", 2.0)])
        db.execute("CREATE TABLE notes (body TEXT)")
        db.executemany("INSERT INTO notes VALUES (?)", [("hola",), (None,), ("adiós",)])
    db.close()
    return path


def test_sql_table_with_primary_key(shop: Path) -> None:
    url = f"sqlite:///{shop}"
    docs, errors = split(load_sql(url, table="products"))
    assert errors == []
    assert [(d.source_id, d.source, d.location, d.text) for d in docs] == [
        (f"{url}#products", "products", "sku=3", "sku: 3; name: Té; price: 2"),
        (f"{url}#products", "products", "sku=7", "sku: 7; name: Café; price: 3.5"),
    ]
    assert docs[0].header == ("sku", "name", "price")
    assert docs[0].kind == "table"
    named, _ = split(load_sql(url, table="products", text_columns=["name"]))
    assert [d.text for d in named] == ["name: Té", "name: Café"]


def test_sql_table_without_key_and_query(shop: Path) -> None:
    url = f"sqlite:///{shop}"
    docs, errors = split(load_sql(url, table="notes"))
    assert errors == []
    assert [(d.location, d.text) for d in docs] == [
        ("row 1", "body: hola"),
        ("row 3", "body: adiós"),
    ]
    query = "SELECT name, price FROM products WHERE price > :p ORDER BY name"
    docs, errors = split(load_sql(url, query=query, key="name", params={"p": 1}))
    assert errors == []
    assert [(d.source, d.location) for d in docs] == [("query", "name=Café"), ("query", "name=Té")]
    assert docs[0].source_id.startswith(f"{url}#query-")


def test_sql_failures_are_load_errors(shop: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{shop}"
    bad = list(load_sql(url, query="SELECT * FROM missing_table"))
    assert len(bad) == 1 and isinstance(bad[0], LoadError)
    assert bad[0].reason == "query failed: no such table: missing_table"
    assert list(load_sql(url, table="nope")) == [LoadError(f"{url}#nope", "no such table: nope")]
    missing = tmp_path / "missing.db"
    errors = list(load_sql(f"sqlite:///{missing}", table="t"))
    assert len(errors) == 1 and isinstance(errors[0], LoadError)
    assert not missing.exists()  # read-only: never creates a database
    with pytest.raises(UserError):
        list(load_sql(url))


def test_sql_is_read_only(shop: Path) -> None:
    url = f"sqlite:///{shop}"
    errors = list(load_sql(url, query="DELETE FROM products"))
    assert len(errors) == 1 and isinstance(errors[0], LoadError)
    assert "readonly" in errors[0].reason.replace("read-only", "readonly")
    with sqlite3.connect(shop) as db:
        assert db.execute("SELECT count(*) FROM products").fetchone() == (2,)
    db.close()


def test_sql_password_never_shown() -> None:
    url = "postgresql://bob:s3cr3t-pw@127.0.0.1:9/shop"
    errors = list(load_sql(url, table="products"))
    assert len(errors) == 1 and isinstance(errors[0], LoadError)
    assert errors[0].source == "postgresql://bob:***@127.0.0.1:9/shop#products"
    assert "s3cr3t-pw" not in errors[0].reason
    assert list(load_sql("not a url", table="t")) == [
        LoadError("not a url", "invalid database URL")
    ]


# --- folders, dispatch, extras -------------------------------------------------------------------


def test_folder_walk_ignores_and_filters(tmp_path: Path) -> None:
    for rel in [
        "a.md",
        "sub/b.txt",
        "sub/deeper/c.csv",
        "sub/picture.png",
        ".git/config.txt",
        "__pycache__/x.txt",
        "notes.tmp",
        "drafts/d.txt",
        "~$lock.txt",
    ]:
        file = tmp_path / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("# T\n\nx\n" if rel.endswith(".md") else "k,v\n1,2\n", encoding="utf-8")
    names = [p.relative_to(tmp_path).as_posix() for p in iter_files(tmp_path, ignore=["drafts"])]
    assert names == ["a.md", "sub/b.txt", "sub/deeper/c.csv"]
    flat = [p.name for p in iter_files(tmp_path, recursive=False)]
    assert flat == ["a.md"]
    only_csv = [p.name for p in iter_files(tmp_path, include=["csv"])]
    assert only_csv == ["c.csv"]
    globbed = [p.name for p in iter_files(tmp_path, include=["sub/*.txt", ".md"])]
    assert globbed == ["a.md", "b.txt"]
    docs, errors = split(load_path(tmp_path, ignore=["drafts/*"]))
    assert errors == []
    assert [(d.source, d.location) for d in docs] == [
        ("a.md", "section T"),
        ("b.txt", ""),
        ("c.csv", "row 1"),
    ]


def test_unsupported_and_missing_paths(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG")
    assert list(load_file(png)) == [LoadError(str(png.resolve()), "unsupported file type '.png'")]
    gone = tmp_path / "gone"
    assert list(load_path(gone)) == [LoadError(str(gone.resolve()), "no such file or folder")]


def test_missing_extra_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(b"%PDF-1.4")
    monkeypatch.setitem(sys.modules, "pdfplumber", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match="acllm\\[docs\\]"):
        list(load_path(path))
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(MissingExtraError, match="acllm\\[sql\\]"):
        list(load_sql("sqlite://", table="t"))


def test_importing_loaders_stays_light() -> None:
    code = (
        "import sys, acllm.ingest.loaders, acllm.ingest.chunking\n"
        "heavy = {'pdfplumber', 'openpyxl', 'docx', 'sqlalchemy', 'charset_normalizer'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
