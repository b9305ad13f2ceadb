"""Read uploaded documents (text, markdown, PDF) and split them into overlapping chunks.

Caps (``backend.limits``): a file is at most ``MAX_DOCUMENT_BYTES`` and its text at most ``MAX_DOCUMENT_CHARS``
characters. A PDF is read page by page and stops at the cap, and its page streams may decompress to at most
``MAX_PDF_CONTENT_BYTES`` and ``MAX_PDF_PAGES`` pages: a few KB that expand to millions of characters (a PDF
"bomb") are refused, not embedded. Any pypdf failure (``PyPdfError``, its decompression limits, deep recursion in
a damaged file) becomes a one-line ``StudioError``.
"""

import io
from pathlib import PurePath

from backend.errors import StudioError
from backend.limits import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_CHARS, MB, check_chars, check_size, human_size
from backend.textfiles import decode_utf8

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".jsonl", ".html"}
DEFAULT_CHUNK_SIZE = 1000  # characters, as in the course's RecursiveCharacterTextSplitter example
DEFAULT_CHUNK_OVERLAP = 100  # characters shared by neighbouring chunks, so a sentence cut in two is in both
MAX_PDF_PAGES = 2000
MAX_PDF_CONTENT_BYTES = 16 * MB  # decompressed page streams, all pages together


def read_document(name: str, data: bytes) -> str:
    """The text of an uploaded file: UTF-8 text/markdown, or the text layer of a PDF (via pypdf)."""
    suffix = PurePath(name).suffix.lower()
    check_size(len(data), MAX_DOCUMENT_BYTES, name, "document")
    if not data:
        raise StudioError(f"{name} is empty.")
    if suffix == ".pdf":
        text = _pdf_text(name, data)
        if not text.strip():
            raise StudioError(f"{name}: the PDF has no text layer (scanned pages need OCR first).")
        return text
    if suffix not in TEXT_SUFFIXES:
        raise StudioError(f"{name}: upload text (.txt, .md) or PDF files.")
    text = decode_utf8(data, name, "save it as UTF-8 and upload it again")
    if not text.strip():
        raise StudioError(f"{name} is empty.")
    check_chars(text, MAX_DOCUMENT_CHARS, name)
    return text


def _pdf_text(name: str, data: bytes) -> str:
    """The text layer of a PDF, page by page, refused as soon as it passes a cap."""
    from pypdf import PdfReader

    parts: list[str] = []
    chars = content = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise StudioError(f"{name} has {len(reader.pages):,} pages: a document may have at most {MAX_PDF_PAGES:,}.")
        for page in reader.pages:
            stream = page.get_contents()
            content += len(stream.get_data()) if stream is not None else 0
            if content > MAX_PDF_CONTENT_BYTES:
                raise StudioError(f"{name}: its pages decompress to more than {human_size(MAX_PDF_CONTENT_BYTES)} "
                                  f"(the file is {human_size(len(data))}): refused as a likely PDF bomb.")
            text = page.extract_text() or ""
            chars += len(text)
            if chars > MAX_DOCUMENT_CHARS:
                raise StudioError(f"{name}: its text passes the limit of {MAX_DOCUMENT_CHARS:,} characters (the file "
                                  f"is {human_size(len(data))}): split the document, or upload a smaller one.")
            parts.append(text)
    except StudioError:
        raise
    except RecursionError:
        raise StudioError(f"{name}: could not read this PDF (its objects are nested too deeply).") from None
    except Exception as exc:  # noqa: BLE001 - pypdf raises PyPdfError and many others on damaged files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise StudioError(f"{name}: could not read this PDF ({reason}).") from None
    return "\n\n".join(parts)


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
