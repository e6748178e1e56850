"""A small corpus with known facts, made by the tests: Markdown, PDF (written by hand,
one text object per page), DOCX (python-docx), HTML, Python code and plain text."""

from __future__ import annotations

from pathlib import Path


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    """A minimal valid PDF with Helvetica text lines on each page (no library)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    # 1: catalog, 2: pages, 3: font, then per page: page object + content stream
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(bytes(out))


def write_docx(path: Path, sections: list[tuple[str, list[str]]]) -> None:
    import docx

    d = docx.Document()
    for heading, paragraphs in sections:
        d.add_heading(heading, level=1)
        for p in paragraphs:
            d.add_paragraph(p)
    d.save(str(path))


FILLER = (
    "This paragraph talks about general matters of the organisation, its history and the "
    "people who work in it. Meetings are held regularly and notes are shared afterwards. "
    "Nothing in this paragraph answers a specific question about equipment or schedules."
)

# (question that shares words with the answer, question in other words, file name)
QUESTIONS: list[tuple[str, str, str]] = [
    ("What was the Zephyr telescope calibrated with?",
     "Which light source tuned the stargazing instrument?", "observatory.md"),
    ("How often is the coffee machine descaling done?",
     "When is limescale removed from the espresso appliance?", "kitchen.md"),
    ("At what speed does the reactor coolant pump run?",
     "How fast does the cooling circulator of the plant spin?", "plant.pdf"),
    ("How long are invoices archived?",
     "For how many years do we keep bills in storage?", "plant.pdf"),
    ("How do employees book train tickets?",
     "Where should staff reserve rail travel?", "handbook.docx"),
    ("When does the parking garage close on weekends?",
     "Until what hour can cars stay in the car park on Saturday?", "handbook.docx"),
    ("How is the shipping cost computed per kilogram?",
     "What is the delivery price for each unit of weight?", "shipping.py"),
    ("What water is used for the greenhouse tomatoes?",
     "How are the plants under glass irrigated?", "garden.html"),
    ("How often does the Osprey backup server copy the database?",
     "How frequently are records duplicated for disaster recovery?", "backups.txt"),
    ("What is the company mascot?",
     "Which animal represents the firm at events?", "culture.md"),
]  # fmt: skip


def make_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "observatory.md").write_text(
        "# Observatory\n\n"
        "## Calibration\n\nThe Zephyr telescope was calibrated with a sodium lamp in March. "
        "The mirror was cleaned the week before.\n\n"
        f"## History\n\n{FILLER}\n"
    )
    (root / "kitchen.md").write_text(
        "# Kitchen\n\n"
        "The office coffee machine descaling is done every Thursday, using citric acid.\n\n"
        f"## Rules\n\n{FILLER}\n\n```\nfridge_cleaning = 'friday'\n```\n"
    )
    write_pdf(
        root / "plant.pdf",
        [
            ["Records policy", "Invoices are archived for eleven years in the basement vault."],
            ["Machinery", "The reactor coolant pump runs at 1480 revolutions per minute."],
        ],
    )
    write_docx(
        root / "handbook.docx",
        [
            ("Travel", ["Employees book train tickets through the Railbird portal."]),
            ("Facilities", ["The parking garage closes at midnight on weekends."]),
            ("General", [FILLER]),
        ],
    )
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "shipping.py").write_text(
        "def compute_shipping_cost(weight_kg: float) -> float:\n"
        '    """The shipping cost is computed as 4 euros per kilogram, plus a 2 euro fee."""\n'
        "    return 4.0 * weight_kg + 2.0\n"
    )
    (root / "garden.html").write_text(
        "<html><head><style>p {color: red}</style><script>var x = 1;</script></head><body>"
        "<h1>Grounds</h1><h2>Garden</h2>"
        "<p>The greenhouse tomatoes are watered with rainwater from the cistern.</p>"
        f"<h2>Lawn</h2><p>{FILLER}</p></body></html>"
    )
    (root / "backups.txt").write_text(
        "The backup server named Osprey copies the database every six hours.\n"
    )
    (root / "culture.md").write_text(
        f"# Culture\n\nThe company mascot is a blue heron called Pemberton.\n\n{FILLER}\n"
    )
    notes = root / "notes"
    notes.mkdir(exist_ok=True)
    for i, (topic, thing, action) in enumerate(DISTRACTORS):
        (notes / f"note{i:02d}.md").write_text(
            f"# {topic.title()}\n\nThe {topic} group reviewed the {thing} and agreed to "
            f"{action}. Minutes were sent to everyone involved in the {topic} work.\n"
        )
    return root


DISTRACTORS = [
    ("marketing", "spring brochure", "print two thousand copies"),
    ("finance", "quarterly budget", "cut travel spending by ten percent"),
    ("security", "badge readers", "replace the lobby turnstiles"),
    ("design", "new logo sketches", "choose the green variant"),
    ("legal", "supplier contracts", "renew them for two more years"),
    ("hiring", "intern applications", "interview twelve candidates"),
    ("support", "ticket backlog", "add a weekend shift"),
    ("research", "battery prototype", "run another heat test"),
    ("sales", "northern region targets", "raise them slightly"),
    ("training", "safety course", "make it mandatory for new staff"),
    ("procurement", "laptop order", "buy forty machines in May"),
    ("events", "summer party venue", "book the river terrace"),
    ("quality", "defect reports", "audit the second assembly line"),
    ("logistics", "warehouse layout", "move the loading dock east"),
    ("IT", "email migration", "finish it before the holidays"),
    ("sustainability", "solar panel offer", "install panels on the roof"),
]
