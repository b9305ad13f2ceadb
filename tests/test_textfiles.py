"""backend.textfiles: a user's text file read as UTF-8, or a StudioError that says what to fix."""

import pytest

from backend.errors import StudioError
from backend.textfiles import decode_utf8, not_utf8_message, read_text_file

LATIN1 = "café\n".encode("latin-1")


def test_read_text_file_reads_utf8_and_drops_a_byte_order_mark(tmp_path):
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("héllo\nwörld\n", encoding="utf-8")
    bom.write_bytes("\ufeffhéllo".encode())
    assert read_text_file(plain) == "héllo\nwörld\n"
    assert read_text_file(str(bom)) == "héllo"


def test_read_text_file_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    assert read_text_file("~/notes.txt") == "hi"


def test_read_text_file_missing_names_what_and_where(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(StudioError) as info:
        read_text_file(missing)
    assert str(info.value) == f"No file at {missing}."
    with pytest.raises(StudioError, match=r"^No examples file at "):
        read_text_file(str(missing), "examples file")
    with pytest.raises(StudioError, match="No file at"):
        read_text_file(tmp_path)  # a folder is not a file


def test_read_text_file_not_utf8_gives_the_hint(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(LATIN1)
    with pytest.raises(StudioError) as info:
        read_text_file(str(bad), hint="save it as UTF-8 JSONL")
    assert str(info.value) == f"{bad} is not UTF-8 text: save it as UTF-8 JSONL."
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_decode_utf8_shares_the_message():
    assert decode_utf8("ok ✓".encode(), "up.txt") == "ok ✓"
    assert decode_utf8(b"\xef\xbb\xbfok", "up.txt") == "ok"
    with pytest.raises(StudioError) as info:
        decode_utf8(LATIN1, "up.txt")
    assert str(info.value) == "up.txt is not UTF-8 text: save it as UTF-8." == not_utf8_message("up.txt")
    with pytest.raises(StudioError, match=r"^up\.pdf is not UTF-8 text: save it as UTF-8 and upload it again\.$"):
        decode_utf8(LATIN1, "up.pdf", "save it as UTF-8 and upload it again")
