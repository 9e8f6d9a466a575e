"""Backup compression: zstd (the default) or gzip, told apart by magic bytes, never by name.

Both are written as a sequence of independent units (zstd frames, gzip members): the stock
tools (`zstd -d`, `gunzip`) read the concatenation as one stream, while the parallel backup
can compress its parts separately and splice them, and the meta line can sit in a unit of its
own that `read_meta` decompresses from the file's tail alone.

Reading is bounded whatever the input: zstd is fed a little compressed input at a time (a
zstd bomb inflates at most ~32000x, so one feed cannot flood memory), its window is capped,
and a file that ends inside a frame is an error rather than a silent short read.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO, Protocol

import zstandard

GZIP, ZSTD = "gzip", "zstd"  # the names ops.core.defaults.COMPRESSIONS lists
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SUFFIXES = {ZSTD: ".zst", GZIP: ".gz"}  # file name suffix, before any .age
# gzip level 1: higher levels cost far more time than the few percent they save on JSON.
# zstd level 3 (its default): smaller than gzip -1 and pg_dump -Fc, in under half gzip's time.
GZIP_LEVEL = 1
ZSTD_LEVEL = 3
_ZSTD_MAX_WINDOW = 1 << 27  # what `zstd -d` accepts by default; level 3 uses far less
_ZSTD_FEED = 1024  # compressed bytes per decompression step: at most ~32 MB of output each
# Errors of a damaged compressed stream (gzip's are OSError/EOFError subclasses too).
READ_ERRORS = (zstandard.ZstdError, zlib.error, gzip.BadGzipFile, EOFError)


def detect(head: bytes) -> str | None:
    """The compression a stream starting with `head` (4 bytes or more) uses, None if plain."""
    if head.startswith(ZSTD_MAGIC):
        return ZSTD
    return GZIP if head.startswith(GZIP_MAGIC) else None


def from_name(name: str) -> str | None:
    """The compression a file name asks for (`….json.zst[.age]`), None for any other name."""
    stem = name.removesuffix(".age")
    return next((kind for kind, suffix in SUFFIXES.items() if stem.endswith(suffix)), None)


class FrameWriter(Protocol):
    def write(self, data: bytes) -> object: ...

    def end_frame(self) -> None:
        """Finish the current zstd frame / gzip member; later bytes start a new one."""

    def close(self) -> None:
        """Finish the last frame (the underlying file stays open)."""


class _GzipMembers:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._gz: gzip.GzipFile | None = None  # opened at the first write: that writes a header

    def write(self, data: bytes) -> object:
        if self._gz is None:
            # mtime=0 and no file name: the same data gives the same bytes.
            self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                     compresslevel=GZIP_LEVEL, mtime=0)
        return self._gz.write(data)

    def end_frame(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._gz = None

    def close(self) -> None:
        self.end_frame()


class _ZstdFrames:
    def __init__(self, raw: BinaryIO) -> None:
        # A checksum per frame: `zstd -d` and our reader then catch corruption, as gzip's CRC.
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        self._zst = compressor.stream_writer(raw, closefd=False)

    def write(self, data: bytes) -> object:
        return self._zst.write(data)

    def end_frame(self) -> None:
        self._zst.flush(zstandard.FLUSH_FRAME)

    def close(self) -> None:
        # ends the frame; closefd=False leaves `raw` open (zstandard leaves close() untyped)
        self._zst.close()  # type: ignore[no-untyped-call]


def frame_writer(compression: str, raw: BinaryIO) -> FrameWriter:
    """A compressing writer into `raw` (any object with `write`)."""
    return _ZstdFrames(raw) if compression == ZSTD else _GzipMembers(raw)


class ZstdReader(io.RawIOBase):
    """Concatenated zstd frames, decompressed as they are read.

    Not zstandard's stream_reader: that one ends quietly when the input stops inside a frame,
    and a truncated backup must say so. Closing it closes `source`.
    """

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self._context = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._input = memoryview(b"")  # compressed bytes read but not yet fed
        self._output = memoryview(b"")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()

    # typeshed's Buffer is wider than what BufferedReader hands us:
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._output:
            if not self._step():
                return 0
        count = min(len(buffer), len(self._output))
        buffer[:count] = self._output[:count]
        self._output = self._output[count:]
        return count

    def _step(self) -> bool:
        """Decompress the next few bytes of input; False at the end of the last frame."""
        if not self._input:
            self._input = memoryview(self._source.read(64 * 1024))
            if not self._input:
                if self._frame is not None:
                    raise zstandard.ZstdError("the file ends inside a zstd frame (truncated)")
                return False
        if self._frame is None:
            self._frame = self._context.decompressobj()
        feed, self._input = self._input[:_ZSTD_FEED], self._input[_ZSTD_FEED:]
        self._output = memoryview(self._frame.decompress(feed))
        if self._frame.eof:  # the rest of this feed belongs to the next frame
            self._input = memoryview(self._frame.unused_data + bytes(self._input))
            self._frame = None
        return True


def decompressing(stream: BinaryIO, compression: str) -> BinaryIO:
    """`stream`'s decompressed bytes, as a file to close before `stream` (zstd closes it)."""
    if compression == ZSTD:
        return io.BufferedReader(ZstdReader(stream), 1 << 16)
    # a GzipFile is a binary file; typeshed does not say BinaryIO:
    return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]


def last_frame(tail: bytes, limit: int, tries: int) -> bytes | None:
    """The decompressed last frame/member in `tail` (the end of a file), if it is complete and
    at most `limit` bytes; found by trying the last `tries` magic numbers from the end."""
    for magic, kind in ((ZSTD_MAGIC, ZSTD), (GZIP_MAGIC + b"\x08", GZIP)):
        start = len(tail)
        for _ in range(tries):
            start = tail.rfind(magic, 0, start)
            if start < 0:
                break
            data = _whole_frame(tail[start:], kind, limit)
            if data is not None:
                return data
    return None


def _whole_frame(data: bytes, kind: str, limit: int) -> bytes | None:
    """`data` decompressed if it is whole (a gzip member exactly, zstd frames to its end) and
    inflates to at most `limit` bytes."""
    if kind == GZIP:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(data, limit)
        except zlib.error:
            return None
        return out if inflater.eof and not inflater.unused_data else None
    reader = ZstdReader(io.BytesIO(data))
    try:
        out = reader.read(limit + 1) or b""
        while len(out) <= limit and (more := reader.read(limit + 1 - len(out))):
            out += more
    except zstandard.ZstdError:
        return None
    return out if len(out) <= limit else None
