"""Read uploaded documents (text, markdown, PDF) and split them into overlapping chunks."""

import io
from pathlib import PurePath

from backend.errors import StudioError
from backend.textfiles import decode_utf8

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".jsonl", ".html"}
DEFAULT_CHUNK_SIZE = 1000  # characters, as in the course's RecursiveCharacterTextSplitter example
DEFAULT_CHUNK_OVERLAP = 100  # characters shared by neighbouring chunks, so a sentence cut in two is in both


def read_document(name: str, data: bytes) -> str:
    """The text of an uploaded file: UTF-8 text/markdown, or the text layer of a PDF (via pypdf)."""
    suffix = PurePath(name).suffix.lower()
    if suffix == ".pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            text = "\n\n".join(page.extract_text() or "" for page in reader.pages)
        except (PdfReadError, ValueError, KeyError, OSError) as exc:
            raise StudioError(f"{name}: could not read this PDF ({exc}).") from None
        if not text.strip():
            raise StudioError(f"{name}: the PDF has no text layer (scanned pages need OCR first).")
        return text
    if suffix not in TEXT_SUFFIXES:
        raise StudioError(f"{name}: upload text (.txt, .md) or PDF files.")
    text = decode_utf8(data, name, "save it as UTF-8 and upload it again")
    if not text.strip():
        raise StudioError(f"{name} is empty.")
    return text


def split_text(text: str, chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP) -> list[str]:
    """Chunks of at most ``chunk_size`` characters, split at paragraphs, then lines, then words
    (langchain's ``RecursiveCharacterTextSplitter``), neighbours sharing up to ``chunk_overlap``."""
    if chunk_size < 50:
        raise StudioError("Chunks must be at least 50 characters.")
    if not 0 <= chunk_overlap < chunk_size:
        raise StudioError("The overlap must be at least 0 and smaller than the chunk size.")
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    return [c for c in splitter.split_text(text) if c.strip()]
