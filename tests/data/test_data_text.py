"""The text layer: encodings, byte-order marks, line endings, line numbers, blocks of large files."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from reasoningrec.data.text import (
    csv_record_line,
    decode,
    file_digest,
    nonblank_line_numbers,
    read_text,
    require_final_newline,
    text_blocks,
)
from reasoningrec.errors import DataError


def test_utf8_bom_is_dropped_whatever_the_declared_encoding(tmp_path):
    for encoding in ("utf-8", "latin-1", "cp1252"):
        text = decode(tmp_path / "f", b"\xef\xbb\xbf196\t242\n", encoding)
        assert text.data == b"196\t242\n" and text.bom


def test_line_endings_are_reported(tmp_path):
    assert decode(tmp_path, b"a\nb\n", "utf-8").facts()["line_endings"] == "lf"
    assert decode(tmp_path, b"a\r\nb\r\n", "utf-8").facts()["line_endings"] == "crlf"
    assert decode(tmp_path, b"a\r\nb\n", "utf-8").facts()["line_endings"] == "mixed"
    assert decode(tmp_path, b"a", "utf-8").facts()["line_endings"] == "none"


def test_undecodable_byte_names_line_and_offset_counting_the_bom(tmp_path):
    raw = b"\xef\xbb\xbfline one\nline two\nbad \xff here\n"
    with pytest.raises(DataError) as err:
        decode(tmp_path / "f.csv", raw, "utf-8", "datasets.x.encoding")
    offset = raw.index(b"\xff")
    assert err.value.line == 3
    assert f"byte 0xff at byte offset {offset}" in str(err.value)
    assert "set datasets.x.encoding in params.yaml" in str(err.value)


def test_non_utf8_encodings_become_utf8(tmp_path):
    assert decode(tmp_path, "Mis\u00e9rables\n".encode("latin-1"), "latin-1").data == "Mis\u00e9rables\n".encode()
    assert decode(tmp_path, "\u201cq\u201d\n".encode("cp1252"), "cp1252").data == "\u201cq\u201d\n".encode()
    with pytest.raises(DataError, match="byte 0x81 at byte offset 2 is not valid cp1252"):
        decode(tmp_path, b"ab\x81\n", "cp1252")


def test_utf16_needs_its_setting(tmp_path):
    raw = "1\t2\n".encode("utf-16")
    with pytest.raises(DataError, match=r"UTF-16 byte-order mark.*set datasets.m.encoding: utf-16") as err:
        decode(tmp_path, raw, "latin-1", "datasets.m.encoding")
    assert err.value.line == 1
    text = decode(tmp_path, raw, "utf-16")
    assert text.data == b"1\t2\n" and text.bom


def test_empty_files_and_cut_last_lines(tmp_path):
    (tmp_path / "blank").write_bytes(b" \n\n")
    with pytest.raises(DataError, match="file is empty"):
        read_text(tmp_path / "blank")
    (tmp_path / "cut").write_bytes(b"a\nb\nc")
    with pytest.raises(DataError, match="looks cut short") as err:
        require_final_newline(read_text(tmp_path / "cut"))
    assert err.value.line == 3


def test_gzipped_text_and_its_digest(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(b"x\n"))
    text = read_text(path)
    assert text.data == b"x\n" and file_digest(text.facts()["sha256"]) == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(gzip.compress(b"x\n" * 1000)[:30])
    with pytest.raises(DataError, match="gzip stream is truncated"):
        read_text(path)


def test_record_lines_skip_blank_lines_and_follow_quoted_newlines(tmp_path):
    assert nonblank_line_numbers(b"a\n\n\r\nb\nc").tolist() == [1, 4, 5]
    plain = decode(tmp_path, b"h\na\n\nb\n", "utf-8")
    assert [csv_record_line(plain, i, True, ",") for i in (0, 1)] == [2, 4]
    quoted = decode(tmp_path, b'h,r\n1,"two\nlines"\n\n2,x\n', "utf-8")
    assert [csv_record_line(quoted, i, True, ",") for i in (0, 1)] == [2, 5]


def test_blocks_keep_whole_lines_and_count_them(tmp_path):
    lines = [f"line {i} " + "x" * (i % 7) for i in range(200)]
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(("\ufeff" + "\n".join(lines) + "\n").encode()))
    blocks = list(text_blocks(path, block_bytes=97))
    assert len(blocks) > 10
    assert b"".join(b.data for b in blocks).decode().splitlines() == lines
    for block in blocks:
        assert block.data.endswith(b"\n")
        assert block.data.split(b"\n")[0].decode() == lines[block.first_line - 1]


def test_blocks_name_the_line_of_a_bad_byte_in_a_later_block(tmp_path):
    path = tmp_path / "r.jsonl"
    body = b"".join(b'{"a": %d}\n' % i for i in range(100))
    path.write_bytes(body + b'{"a": "\xe9"}\n')
    with pytest.raises(DataError) as err:
        list(text_blocks(path, block_bytes=64))
    assert err.value.line == 101 and f"byte offset {len(body) + 7}" in str(err.value)


def test_blocks_of_a_line_longer_than_a_block_and_of_empty_files(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"a" * 500 + b"\nb\n")
    blocks = list(text_blocks(path, block_bytes=64))
    assert b"".join(b.data for b in blocks) == b"a" * 500 + b"\nb\n" and blocks[0].data.startswith(b"a" * 500 + b"\n")
    path.write_bytes(b"\n\n")
    with pytest.raises(DataError, match="file is empty"):
        list(text_blocks(path))
