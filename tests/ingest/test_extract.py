"""Text extraction and chunking (chatapp.ingest): every kind of file, and every kind of
bad input as one line."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from chatapp.ingest.chunk import chunk_sections
from chatapp.ingest.extract import ExtractError, Section, extract, markdown_sections
from tests.docs_corpus import make_corpus, write_docx, write_pdf


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "corpus")


def test_each_kind_gives_its_text_with_its_structure(corpus: Path) -> None:
    pdf = extract(corpus / "plant.pdf")
    assert [s.page for s in pdf.sections] == [1, 2]
    assert "1480 revolutions" in pdf.sections[1].text
    docx = extract(corpus / "handbook.docx")
    assert [s.heading for s in docx.sections] == ["Travel", "Facilities", "General"]
    assert "Railbird" in docx.sections[0].text
    html = extract(corpus / "garden.html")
    garden = [s for s in html.sections if "greenhouse" in s.text]
    assert garden and garden[0].heading == "Grounds > Garden"
    assert "var x" not in html.text and "color: red" not in html.text
    md = extract(corpus / "kitchen.md")
    assert any(s.code and "fridge_cleaning" in s.text for s in md.sections)
    code = extract(corpus / "src" / "shipping.py")
    assert code.kind == "code" and "4 euros per kilogram" in code.text


def test_chunks_follow_headings_and_overlap() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 60 for i in range(12)]
    text = (
        "# Top\n\n" + "\n\n".join(paragraphs[:6]) + "\n\n## Next\n\n" + "\n\n".join(paragraphs[6:])
    )
    chunks = chunk_sections(markdown_sections(text), size=700, overlap=120)
    assert {c.heading for c in chunks} == {"Top", "Top > Next"}
    assert not any("Paragraph 5" in c.text and "Paragraph 6" in c.text for c in chunks)
    top = [c for c in chunks if c.heading == "Top"]
    assert len(top) >= 2
    # the start of each later chunk repeats the end of the one before it
    assert top[0].text[-60:].split()[-1] in top[1].text[:200]
    assert all(len(c.text) <= 700 + 200 for c in chunks)


def test_a_code_block_is_never_cut_mid_line() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(400))
    chunks = chunk_sections([Section(code, code=True)], size=500, overlap=50)
    assert len(chunks) > 3
    for c in chunks:
        for line in c.text.splitlines():
            assert line.startswith("line_") and " = " in line


def test_bad_inputs_are_one_line_each(tmp_path: Path) -> None:
    import pypdf

    w = pypdf.PdfWriter()
    w.add_blank_page(612, 792)
    w.encrypt("secret")
    with open(tmp_path / "locked.pdf", "wb") as f:
        w.write(f)
    w = pypdf.PdfWriter()
    w.add_blank_page(612, 792)
    with open(tmp_path / "scanned.pdf", "wb") as f:
        w.write(f)
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf")
    (tmp_path / "broken.docx").write_bytes(b"PK not really")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (20 * 1024 * 1024))
    (tmp_path / "bomb.docx").write_bytes(bomb.getvalue())
    with open(tmp_path / "huge.txt", "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: larger than the limit, nothing written
    expected = {
        "locked.pdf": "encrypted PDF",
        "scanned.pdf": "no text; scanned pages need OCR",
        "binary.txt": "binary data, not text",
        "broken.pdf": "damaged PDF",
        "broken.docx": "damaged DOCX",
        "bomb.docx": "zip bomb",
        "huge.txt": "too large",
    }
    for name, words in expected.items():
        with pytest.raises(ExtractError) as e:
            extract(tmp_path / name)
        assert words in str(e.value), (name, str(e.value))
        assert "\n" not in str(e.value)


def test_a_latin1_text_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    assert extract(tmp_path / "old.txt").text == "Café crème"


def test_written_pdf_and_docx_round_trip(tmp_path: Path) -> None:
    write_pdf(tmp_path / "a.pdf", [["Hello (world)"], ["Second page"]])
    assert [s.text for s in extract(tmp_path / "a.pdf").sections] == [
        "Hello (world)",
        "Second page",
    ]
    write_docx(tmp_path / "a.docx", [("Head", ["Body text"])])
    assert extract(tmp_path / "a.docx").sections[0].heading == "Head"


def test_citations_resolve_numbers_to_passages() -> None:
    from chatapp.service.documents import citations, compose

    passages = [{"n": 1, "where": "a.md"}, {"n": 2, "where": "b.pdf, page 3"}]
    assert citations("It is blue [2], see also [1] and [2] and [7].", passages) == [
        passages[1],
        passages[0],
    ]
    assert citations("No sources.", passages) == []
    from chatapp.service.documents import Passage

    text = compose(
        "Why?",
        [
            Passage(1, "a.md, Intro", "Because.\n\nIt is.", "/a.md", "0" * 64),
            Passage(2, "b.py", "def f():\n    return 1", "/b.py", "1" * 64),
        ],
    )
    assert text.startswith(
        "Sources:\n[1] a.md, Intro: Because.\nIt is.\n[2] b.py: def f():\n    return 1\n\n"
        "Question: Why?\n\nAnswer the question from the sources above"
    )
