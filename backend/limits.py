"""Caps on what a user can hand the studio, and the folders user-named files may come from or go to.

Every file, line and text a user gives has a size cap, so a huge or hostile input is refused with a message
naming the cap instead of filling memory or stalling a page:

| what | cap |
|---|---|
| a dataset file (upload or path: JSONL, CSV, Parquet) | ``MAX_DATASET_BYTES`` (100 MB) |
| a Parquet file's decompressed size (a "zip bomb") | ``MAX_PARQUET_UNCOMPRESSED_BYTES`` (1 GB) |
| a ranking import or prompt-set file | ``MAX_IMPORT_BYTES`` (50 MB) |
| one line (row) of a JSONL import | ``MAX_LINE_CHARS`` (1,000,000 characters) |
| a prompt (playground, ``studio generate``, imported prompts and completions) | ``MAX_PROMPT_CHARS`` (100,000) |
| a document for a RAG collection | ``MAX_DOCUMENT_BYTES`` (20 MB) and ``MAX_DOCUMENT_CHARS`` (500,000) of text |
| a YAML job spec | ``MAX_SPEC_FILE_BYTES`` (1 MB) |
| any other text file a command reads | ``MAX_TEXT_FILE_BYTES`` (100 MB) |

A PDF's text is counted while it is extracted, so a few KB that decompress to millions of characters stop at the
cap. Deeply nested JSON or YAML (Python's ``RecursionError``) is reported as a malformed file.

Paths: a dataset path in a job spec, and an output path (exported pairs, GGUF files, merged models), must lie inside
the data dir (``STUDIO_DATA_DIR``) or one of the folders listed in ``STUDIO_ALLOWED_PATHS`` (separated by ``:``
on Linux and macOS, ``;`` on Windows). ``..`` is resolved before the check (symbolic links too), so neither a
traversal nor an absolute system path (``/etc/passwd``) gets through. File names built from user strings
(uploads, model names, exports) go through :func:`safe_file_name` and never leave their folder.
"""

import os
import re
from pathlib import Path
from typing import BinaryIO

from backend.errors import StudioError
from backend.settings import get_settings

MB = 1024 * 1024
MAX_DATASET_BYTES = 100 * MB
MAX_PARQUET_UNCOMPRESSED_BYTES = 1024 * MB
MAX_IMPORT_BYTES = 50 * MB
MAX_LINE_CHARS = 1_000_000
MAX_PROMPT_CHARS = 100_000
MAX_DOCUMENT_BYTES = 20 * MB
MAX_DOCUMENT_CHARS = 500_000
MAX_SPEC_FILE_BYTES = 1 * MB
MAX_TEXT_FILE_BYTES = 100 * MB
MAX_FILE_NAME_CHARS = 120


def human_size(n: int) -> str:
    """``104857600`` → ``"100 MB"`` (binary units, as file managers show them)."""
    for unit, size in (("GB", 1024 * MB), ("MB", MB), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) or value >= 10 else f"{value:.1f} {unit}"
    return f"{n} bytes"


def check_size(size: int, cap: int, name: str, what: str = "file") -> None:
    """Refuse ``size`` bytes over ``cap``, naming the cap.

    Raises:
        StudioError: ``"<name> is 200 MB: a <what> may be at most 100 MB."``
    """
    if size > cap:
        raise StudioError(f"{name} is {human_size(size)}: a {what} may be at most {human_size(cap)} "
                          "(split it into smaller files).")


def check_chars(text: str, cap: int, name: str) -> None:
    """Refuse a text longer than ``cap`` characters, naming the cap."""
    if len(text) > cap:
        raise StudioError(f"{name} has {len(text):,} characters: the limit is {cap:,} characters.")


def read_capped(source: bytes | BinaryIO, cap: int, name: str, what: str = "file") -> bytes:
    """The bytes of an upload (bytes, or a binary stream read in chunks), refused once they pass ``cap``.

    A stream is never read much past the cap, so a 200 MB upload costs at most ``cap`` bytes of memory.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        check_size(len(source), cap, name, what)
        return bytes(source)
    chunks, total = [], 0
    while chunk := source.read(min(8 * MB, cap + 1 - total) or 1):
        total += len(chunk)
        if total > cap:
            raise StudioError(f"{name} is over {human_size(cap)}: a {what} may be at most {human_size(cap)} "
                              "(split it into smaller files).")
        chunks.append(chunk)
    return b"".join(chunks)


def safe_file_name(name: str, default: str = "file", max_chars: int = MAX_FILE_NAME_CHARS) -> str:
    """A file name made from a user string that stays in its folder.

    Only the last path component is kept, characters other than letters, digits, ``.``, ``-`` and ``_``
    become ``-``, leading/trailing dots and dashes go (no ``..``, no hidden files), and the result is cut to
    ``max_chars``. An empty result becomes ``default``.
    """
    base = re.split(r"[\\/]", name or "")[-1]
    safe = re.sub(r"[^\w.-]+", "-", base).strip("-.")
    safe = re.sub(r"\.{2,}", ".", safe)[:max_chars].strip("-.")
    return safe or default


def allowed_roots() -> list[Path]:
    """The data dir and every folder of ``STUDIO_ALLOWED_PATHS``, resolved."""
    settings = get_settings()
    roots = [settings.resolved_data_dir]
    for part in re.split(rf"[{re.escape(os.pathsep)},]", settings.allowed_paths or ""):
        if part.strip():
            roots.append(Path(part.strip()).expanduser().resolve())
    return roots


def confine(path: str | Path, what: str = "file") -> Path:
    """``path`` resolved (``~``, ``..`` and links), checked to lie inside the data dir or an allowed folder.

    Args:
        path: what the user gave (a dataset path in a spec, an output file or folder).
        what: what it is, for the message (``"dataset"``, ``"output"``).

    Raises:
        StudioError: the path points outside every allowed folder.
    """
    given = str(path)
    if "\x00" in given:
        raise StudioError(f"The {what} path contains a NUL character.")
    resolved = Path(given).expanduser().resolve()
    roots = allowed_roots()
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    shown = given if len(given) <= 120 else given[:117] + "…"
    raise StudioError(f"The {what} path {shown} is outside the data dir ({roots[0]}): put the file there, or add "
                      "its folder to STUDIO_ALLOWED_PATHS.")
