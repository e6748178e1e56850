"""Documents in: text extraction (PDF, DOCX, HTML, Markdown, text and code) and chunking
that follows a document's structure. Pure Python over pypdf and python-docx: no Qt, no
llama.cpp, no database; the service indexes what this returns (service/documents.py)."""
