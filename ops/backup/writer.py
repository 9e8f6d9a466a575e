"""The writing side of a backup: optional compression, optional age encryption, into a store.

The bytes go, as they are produced, through zstd or gzip (on a thread of its own) and age into a
store's writer (ops.backup.storage), which publishes the object only at `commit()`: a local
directory through a private temp file and a hard link, a bucket through a multipart upload.
A backup killed at any point therefore leaves nothing that `backups` or `restore latest` could
take for a good one, and two runs aimed at one name never share a temp file. Publishing never
overwrites: a backup that appeared under the name meanwhile (another run's) is kept, and this
run takes the next free name (where the store allows it) or stops with one line. Any
exception discards what was written.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from ops.backup.compression import FrameWriter, frame_writer
from ops.backup.encryption import EncryptingWriter, decrypting_reader, encrypting_writer
from ops.backup.files import BackupRef
from ops.backup.integrity import HashingWriter
from ops.backup.storage.interface import ObjectExistsError, Writer
from ops.core.errors import OpsError
from ops.core.scratch import scratch_dir

_COPY_BUFFER = 1 << 20
_QUEUED_WRITES = 16  # ~16 MB in flight at most: memory stays flat
_NEW_MEMBER = object()
_DONE = object()
_NAME_ATTEMPTS = 1000


class _Splice:
    def __init__(self, path: Path) -> None:
        self.path = path


class PartOutput:
    """Where one part's bytes go: its file, through age to this run's in-memory key when the
    backup is encrypted (so no row reaches the disk in the clear)."""

    def __init__(self, path: Path, recipients: Sequence[Any]) -> None:
        self.path = path
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self._encrypting = encrypting_writer(self._file, recipients) if recipients else None

    def write(self, data: bytes) -> None:
        (self._encrypting or self._file).write(data)

    def flush(self) -> None:
        """The compressors flush at frame ends; the file is flushed when closed."""
        return None

    def close(self) -> None:
        try:
            if self._encrypting is not None:
                self._encrypting.close()
        finally:
            self._file.close()


class BackupWriter:
    """Write bytes to `ref` atomically, compressed with `compression` (None: plain);
    `new_member()` starts a fresh zstd frame / gzip member.

    Compression runs on a thread of its own (zstd and zlib release the GIL), so it overlaps with
    reading the next rows from PostgreSQL instead of adding to it; encryption (age, to
    `recipients`) runs below it. `next_name` gives the name to try when the name turns out
    taken at commit time (default-named backups); without it a taken name is an error.
    """

    def __init__(self, ref: BackupRef, *, compression: str | None,
                 recipients: Sequence[Any] = (),
                 next_name: Callable[[str], str] | None = None) -> None:
        self.ref = ref
        self.next_name = next_name
        self.compression = compression
        self._store_writer: Writer = ref.store.open_writer(ref.name)
        self._hashing = HashingWriter(self._store_writer)  # for the sidecar (ops.backup.integrity)
        self._encrypting: EncryptingWriter | None = None
        self._raw: HashingWriter | EncryptingWriter = self._hashing
        if recipients:
            self._encrypting = encrypting_writer(self._hashing, recipients)
            self._raw = self._encrypting
        self._scratch = contextlib.ExitStack()
        self._parts_dir: Path | None = None
        self._parts_lock = threading.Lock()  # the streams ask for parts at the same time
        # Parts of an encrypted backup are encrypted to a key that lives only in this process:
        # whatever becomes of the files, nobody can read them once it is gone.
        self._part_identity: Any = None
        if recipients:
            from pyrage import x25519

            self._part_identity = x25519.Identity.generate()
        self._gz: FrameWriter | None = None
        self._queue: queue.Queue[object] | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        if compression:
            # the raw writer is a binary file without BinaryIO's whole surface:
            self._gz = frame_writer(compression, self._raw)  # type: ignore[arg-type]
            self._queue = queue.Queue(maxsize=_QUEUED_WRITES)
            self._thread = threading.Thread(target=self._compress_loop, daemon=True,
                                            name=f"backup-{compression}")
            self._thread.start()

    def _compress_loop(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not _DONE:
            if self._failure is not None:
                continue  # keep draining so the producer never blocks
            try:
                assert self._gz is not None
                if item is _NEW_MEMBER:
                    self._gz.end_frame()  # writes the frame's end; the raw file stays open
                elif isinstance(item, _Splice):  # finished frames, copied as they are
                    self._gz.end_frame()
                    self._append_part(item.path)
                else:
                    # items are bytes once parts (Path) are handled above:
                    self._gz.write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # handed to the producer on its next call
                self._failure = exc

    def _put(self, item: object) -> None:
        assert self._queue is not None
        if self._failure is not None:
            raise self._failure
        self._queue.put(item)

    def _finish_thread(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def write(self, data: bytes) -> None:
        if self._queue is not None:
            self._put(data)
        else:
            self._raw.write(data)

    def splice(self, path: Path) -> None:
        """Append, then delete, a part written by the parallel backup (whole frames if
        compressed); with compression this happens on the writer's thread, in order."""
        if self._queue is not None:
            self._put(_Splice(path))
        else:
            self._append_part(path)

    def new_member(self) -> None:
        """End the current frame (gzip member) and start another (no-op for plain files)."""
        if self._queue is not None:
            self._put(_NEW_MEMBER)

    def part(self, index: int) -> PartOutput:
        """A new file for the parallel backup's part `index`, in this run's private scratch
        directory (ops.core.scratch): beside the backups in a local directory (the same disk
        as the backup), in the system's temp directory for a bucket."""
        with self._parts_lock:
            if self._parts_dir is None:
                self._parts_dir = self._scratch.enter_context(
                    scratch_dir(self.ref.store.local_directory))
        recipients = [self._part_identity.to_public()] if self._part_identity else []
        return PartOutput(self._parts_dir / f"part{index}", recipients)

    def _append_part(self, path: Path) -> None:
        with path.open("rb") as raw:
            if self._part_identity is None:
                shutil.copyfileobj(raw, self._raw, _COPY_BUFFER)
            else:
                with decrypting_reader(raw, [self._part_identity],
                                       what=f"part {path.name}") as part:
                    shutil.copyfileobj(part, self._raw, _COPY_BUFFER)
        path.unlink()

    def commit(self) -> int:
        """Finish the stream and publish it (never over another backup); returns the size.
        `ref` is the name finally used."""
        self._finish_thread()
        if self._failure is not None:
            raise self._failure
        if self._gz is not None:
            self._gz.close()
        if self._encrypting is not None:
            self._encrypting.close()  # the final age chunk; the store's writer stays open
        try:
            size = self._store_writer.commit_first_free(self._later_names())
        except ObjectExistsError as exc:
            raise OpsError(f"{self.ref} already exists (written meanwhile by another run?); it "
                           "was left as it is and this backup was discarded",
                           hint="Choose another --output name, or remove that one first."
                           ) from exc
        self.ref = BackupRef(self.ref.store, self._store_writer.name)
        self._remove_parts_dir()
        return size

    @property
    def sha256(self) -> str:
        """The sha256 of the bytes written to the store (known once committed)."""
        return self._hashing.digest.hexdigest()

    def _later_names(self) -> Iterator[str]:
        name = self.ref.name
        for _ in range(_NAME_ATTEMPTS if self.next_name else 0):
            # no attempts are made when next_name is None:
            name = self.next_name(name)  # type: ignore[misc]
            yield name

    def discard(self) -> None:
        """Stop and remove everything written, swallowing errors (we are already failing)."""
        if self._failure is None:
            self._failure = OSError("backup discarded")  # the thread stops writing
        self._finish_thread()
        if self._gz is not None:
            with contextlib.suppress(Exception):  # we are failing already
                self._gz.close()
        if self._encrypting is not None:
            self._encrypting.abort()
        self._store_writer.abort()
        self._remove_parts_dir()

    def _remove_parts_dir(self) -> None:
        self._scratch.close()  # the directory, with any part not spliced yet
        self._parts_dir = None

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.discard()
