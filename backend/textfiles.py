"""Read a user's text file (or uploaded bytes) as UTF-8, or say what to fix.

One message for every place that reads user text: ``"No file at data.jsonl."`` when the path
holds no file, ``"data.jsonl is not UTF-8 text: save it as UTF-8."`` when the bytes do not
decode. A byte-order mark (as Windows editors write) is dropped. Each caller can name what it
reads (``what``, e.g. "examples file") and add how to save it (``hint``, e.g. "save it as UTF-8
JSONL"). A file over its size cap (``max_bytes``, default ``backend.limits.MAX_TEXT_FILE_BYTES``) is refused
before it is read.
"""

from pathlib import Path

from backend.errors import StudioError
from backend.limits import MAX_TEXT_FILE_BYTES, check_size

DEFAULT_HINT = "save it as UTF-8"


def not_utf8_message(name: str, hint: str = DEFAULT_HINT) -> str:
    """The user message for text that does not decode as UTF-8 (pages that show it without raising)."""
    return f"{name} is not UTF-8 text: {hint}."


def decode_utf8(data: bytes, name: str, hint: str = DEFAULT_HINT, max_bytes: int | None = None) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark dropped).

    Args:
        data: the file's bytes (an upload's ``getvalue()``).
        name: how the user knows the file (its name or path), for the message.
        hint: how to fix it, after "is not UTF-8 text: ".
        max_bytes: refuse more bytes than this (None = no cap).

    Raises:
        StudioError: the bytes are not UTF-8, or more than ``max_bytes``.
    """
    if max_bytes is not None:
        check_size(len(data), max_bytes, name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StudioError(not_utf8_message(name, hint)) from None


def read_text_file(path: str | Path, what: str = "file", hint: str = DEFAULT_HINT,
                   max_bytes: int = MAX_TEXT_FILE_BYTES) -> str:
    """The text of the file at ``path`` (``~`` expanded), read as UTF-8.

    Args:
        path: the file, as the user gave it (messages show it so).
        what: what the file is, for "No <what> at <path>." (default "file").
        hint: how to fix a file that is not UTF-8.
        max_bytes: the size cap; a bigger file is refused before it is read.

    Raises:
        StudioError: no file at ``path``, it is over ``max_bytes``, or it is not UTF-8 text.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise StudioError(f"No {what} at {path}.")
    check_size(file.stat().st_size, max_bytes, str(path), what)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise StudioError(f"Could not read {path} ({exc.strerror or exc}).") from None
    return decode_utf8(data, str(path), hint)
