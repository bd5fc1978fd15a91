"""Raw text files, decoded the same way for every source: encoding, byte-order mark, line endings.

Every text reader goes through :func:`read_text` (a whole file) or :func:`text_blocks` (a large
JSON-lines file, block by block). Both hand back UTF-8 bytes without the byte-order mark, so the
parsers downstream (pyarrow, ``json``) see one encoding whatever the file's was:

- encoding: the dataset's ``encoding`` setting (UTF-8 by default, latin-1 for MovieLens). A byte
  sequence the encoding cannot decode is a :class:`DataError` naming the line and the byte offset
  (0-based, in the decompressed file, byte-order mark included).
- byte-order mark: a UTF-8 one is dropped whatever the declared encoding (so ``196`` stays ``196``);
  a UTF-16/32 one in a file declared otherwise is an error that names the setting to change.
- line endings: LF, CRLF or a mix are all accepted; the parsers strip the ``\\r``.

Facts about each file (encoding, BOM, line endings) go into ``ingest.json``.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reasoningrec.errors import DataError

UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 32 << 20


@functools.lru_cache(maxsize=1)
def _hasher() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")


@dataclass(frozen=True)
class Text:
    """One decoded file: its UTF-8 bytes (no BOM) and how they were stored."""

    path: Path
    data: bytes
    encoding: str
    bom: bool = False
    digest: Future | None = None  # SHA-256 of the file's bytes as stored (compressed, if gzipped)

    def facts(self) -> dict:
        """For ingest.json; ``sha256`` may still be a future (see :func:`file_digest`)."""
        facts = {"encoding": self.encoding, "bom": self.bom, "line_endings": line_endings(self.data)}
        return {**facts, "sha256": self.digest} if self.digest else facts


def file_digest(value) -> str | None:
    """A hex SHA-256 from :meth:`Text.facts`' ``sha256`` (a string, or the future of a hash)."""
    if isinstance(value, Future):
        return value.result().hexdigest()
    return value


def codec_name(encoding: str) -> str:
    """The canonical codec name (``utf8`` / ``UTF-8`` -> ``utf-8``, ``latin1`` -> ``iso8859-1``)."""
    return codecs.lookup(encoding).name


def is_utf8(encoding: str) -> bool:
    return codec_name(encoding) in ("utf-8", "utf-8-sig")


def _ascii_compatible(encoding: str) -> bool:
    """Whether ASCII bytes mean ASCII in this encoding (true of UTF-8 and the 8-bit code pages)."""
    return codecs.encode("\n,:\t0123456789azAZ", encoding, errors="strict") == b"\n,:\t0123456789azAZ"


def line_endings(data: bytes) -> str:
    """``lf``, ``crlf``, ``mixed``, or ``none`` (a single line)."""
    if data.find(b"\n") < 0:
        return "none"
    if data.find(b"\r") < 0:
        return "lf"
    newlines, crlf = data.count(b"\n"), data.count(b"\r\n")
    return "crlf" if crlf == newlines else "lf" if crlf == 0 else "mixed"


def line_at(data: bytes, offset: int) -> int:
    """1-based line of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


def read_raw(path: Path, digest: list | None = None) -> bytes:
    """The file's bytes, transparently gunzipped; a truncated or corrupt gzip stream is a DataError.

    ``digest`` (a list) receives a future of the SHA-256 of the bytes as stored, hashed in a thread
    (hashlib releases the GIL) while the caller parses: ingest.json gets it without a second read.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    raw = path.read_bytes()
    if digest is not None:
        import hashlib

        digest.append(_hasher().submit(hashlib.sha256, raw))
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(path, f"gzip stream is truncated or corrupt ({exc}); download the file again") from None
    return raw


def encoding_hint(setting: str | None) -> str:
    where = f"set {setting}" if setting else "set the dataset's `encoding`"
    return f"{where} in params.yaml if the file is in another encoding (e.g. latin-1, cp1252, utf-16)"


def _undecodable(
    path: Path, raw: bytes, start: int, encoding: str, setting: str | None, base: int = 0, first_line: int = 1
) -> DataError:
    byte = raw[start : start + 1]
    return DataError(
        path,
        f"byte 0x{byte.hex()} at byte offset {base + start} is not valid {codec_name(encoding)} text; "
        + encoding_hint(setting),
        line=first_line - 1 + line_at(raw, start),
    )


def _check_utf8(
    path: Path, data: bytes, encoding: str, setting: str | None, base: int = 0, first_line: int = 1
) -> None:
    """Raise a DataError at the first byte that is not UTF-8 (fast: ASCII and Arrow's validator)."""
    if data.isascii():
        return
    import pyarrow as pa

    array = pa.Array.from_buffers(
        pa.large_string(), 1, [None, pa.py_buffer(np.array([0, len(data)], dtype=np.int64)), pa.py_buffer(data)]
    )
    try:
        array.validate(full=True)
        return
    except pa.ArrowInvalid:
        pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(path, data, exc.start, encoding, setting, base, first_line) from None


def _utf8_bom(path: Path, raw: bytes, encoding: str, setting: str | None) -> bool:
    """Whether ``raw`` starts with a UTF-8 BOM; a UTF-16/32 BOM in a file declared otherwise is an error."""
    for mark, wide in _WIDE_BOMS:
        if raw.startswith(mark) and not encoding.startswith(wide):
            where = f"set {setting}" if setting else "set the dataset's `encoding`"
            raise DataError(
                path,
                f"the file starts with a {wide.upper()} byte-order mark, so it is {wide.upper()} "
                f"text, not {encoding}; {where}: {wide} in params.yaml",
                line=1,
            )
    return raw.startswith(UTF8_BOM)


def decode(path: Path, raw: bytes, encoding: str, setting: str | None = None) -> Text:
    """UTF-8 bytes of ``raw`` read as ``encoding``, without a byte-order mark."""
    name = codec_name(encoding)
    bom = _utf8_bom(path, raw, name, setting)
    if bom:
        raw = raw[len(UTF8_BOM) :]
    if is_utf8(name):
        _check_utf8(path, raw, name, setting, len(UTF8_BOM) if bom else 0)
        return Text(path, raw, "utf-8", bom)
    if not _ascii_compatible(name):  # UTF-16/32: the codec reads its own BOM
        try:
            text = raw.decode(name)
        except UnicodeDecodeError as exc:
            raise DataError(
                path, f"bytes at offset {exc.start} are not valid {name} text; " + encoding_hint(setting)
            ) from None
        wide_bom = text.startswith("\ufeff") or raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        return Text(path, text.removeprefix("\ufeff").encode("utf-8"), name, wide_bom)
    if raw.isascii():
        return Text(path, raw, name, bom)
    try:
        return Text(path, raw.decode(name).encode("utf-8"), name, bom)
    except UnicodeDecodeError as exc:
        raise _undecodable(path, raw, exc.start, name, setting, len(UTF8_BOM) if bom else 0) from None


def read_text(path: Path, encoding: str = "utf-8", setting: str | None = None) -> Text:
    """Read, gunzip and decode a whole text file; an empty (or all-blank) file is a DataError."""
    digest: list[Future] = []
    text = decode(path, read_raw(path, digest), encoding, setting)
    text = Text(text.path, text.data, text.encoding, text.bom, digest[0])
    if not text.data or text.data.isspace():
        raise DataError(path, "file is empty")
    return text


def require_final_newline(text: Text) -> None:
    """A line-based file must end with a line ending: otherwise its last line may be cut short."""
    if not text.data.endswith(b"\n"):
        raise DataError(
            text.path,
            "the last line has no line ending, so the file looks cut short (an interrupted download or copy?); "
            "fetch it again, or end it with a newline if it is complete",
            line=text.data.count(b"\n") + 1,
        )


# ---------------------------------------------------------------------------------------------
# Line numbers of records (only computed on the error path)


def nonblank_line_numbers(data: bytes) -> np.ndarray:
    """1-based numbers of the lines of ``data`` that are not empty (``\\r`` alone counts as empty)."""
    view = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(view == 10)
    if len(data) and data[-1:] != b"\n":
        ends = np.r_[ends, len(data)]
    starts = np.r_[0, ends[:-1] + 1] if len(ends) else np.array([], dtype=np.int64)
    length = ends - starts
    cr_only = (length == 1) & (view[np.minimum(starts, max(len(view) - 1, 0))] == 13)
    return np.flatnonzero((length > 0) & ~cr_only) + 1


def csv_record_line(text: Text, record: int, header: bool, delimiter: str) -> int:
    """The line on which data record ``record`` (0-based, after the header) of a quoted CSV starts."""
    import csv
    import io

    if b'"' not in text.data:
        lines = nonblank_line_numbers(text.data)
        index = record + (1 if header else 0)
        return int(lines[index]) if index < len(lines) else int(lines[-1])
    reader = csv.reader(io.StringIO(text.data.decode("utf-8"), newline=""), delimiter=delimiter)
    previous, seen = 0, -1 if header else 0
    for fields in reader:
        start = previous + 1
        previous = reader.line_num
        if not fields:
            continue
        if seen == record:
            return start
        seen += 1
    return previous


# ---------------------------------------------------------------------------------------------
# Large files, block by block


@dataclass(frozen=True)
class Block:
    """Whole lines of a file as UTF-8 bytes; ``first_line`` is the 1-based line of the first, ``offset``
    the byte offset of the block in the decompressed file. Only the file's last block may lack a final
    line ending (then its last line may be cut short)."""

    data: bytes
    first_line: int
    offset: int


def _open_binary(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def text_blocks(
    path: Path, encoding: str = "utf-8", setting: str | None = None, block_bytes: int = BLOCK_BYTES
) -> Iterator[Block]:
    """Blocks of whole lines of a (possibly gzipped) file, decoded to UTF-8, BOM dropped.

    Memory stays at about two blocks whatever the file's size. Encodings whose newline is not the
    byte ``\\n`` (UTF-16/32) are decoded whole, as one block. Empty files, truncated gzip streams and
    undecodable bytes are DataErrors.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    name = codec_name(encoding)
    if not _ascii_compatible(name):
        yield Block(read_text(path, name, setting).data, 1, 0)
        return
    offset, line, carry, anything = 0, 1, b"", False

    def block(data: bytes) -> Block:
        nonlocal offset, line, anything
        out = Block(_block_utf8(path, data, name, setting, offset, line), line, offset)
        anything = anything or not data.isspace()
        offset, line = offset + len(data), line + data.count(b"\n")
        return out

    try:
        with _open_binary(path) as handle:
            while chunk := handle.read(block_bytes):
                if offset == 0 and not carry and _utf8_bom(path, chunk, name, setting):
                    chunk, offset = chunk[len(UTF8_BOM) :], len(UTF8_BOM)
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a block: keep reading
                    carry = data
                    continue
                carry = data[cut:]
                yield block(data[:cut])
            if carry:
                yield block(carry)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(path, f"gzip stream is truncated or corrupt ({exc}); download the file again") from None
    if not anything:
        raise DataError(path, "file is empty")


def _block_utf8(path: Path, block: bytes, encoding: str, setting: str | None, offset: int, line: int) -> bytes:
    if is_utf8(encoding):
        _check_utf8(path, block, encoding, setting, offset, line)
        return block
    if block.isascii():
        return block
    try:
        return block.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(path, block, exc.start, encoding, setting, offset, line) from None


def file_text_facts(path: Path, encoding: str) -> dict:
    """Encoding, BOM and line endings of a file read in blocks (judged on its first 64 KiB)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head[:2] == GZIP_MAGIC:  # a partial inflate: damage is reported when the blocks are read
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, 1 << 16)
        except zlib.error:
            head = b""
    return {"encoding": codec_name(encoding), "bom": head.startswith(UTF8_BOM), "line_endings": line_endings(head)}
