"""age encryption of backups, streaming both ways in bounded memory, in the format of the
standard `age` tool (anyone can decrypt a backup with stock tools, and we read what `age`
writes).

Recipients (`BACKUP_ENCRYPT_TO`) are `age1…` public keys or ssh public keys (ssh-ed25519,
ssh-rsa), so only public keys need to be where backups are written. Identities
(`BACKUP_IDENTITY_FILE`) are an age identity file (`AGE-SECRET-KEY-1…` lines) or an
unencrypted ssh private key.

Library: pyrage (bindings to rage, the Rust age). Its `encrypt_io`/`decrypt_io` pull from one
file object and push to another in 8-64 KiB steps, so each direction runs pyrage on a helper
thread joined to the caller by a bounded queue: the caller keeps a plain `write()` or `read()`
and memory stays at a few MiB whatever the size. Piping through the `age` binary works too but
needs a package on every host and a process per stream; pyrage comes from PyPI like the rest.

Authentication: age checks the header first and then each 64 KiB chunk as it is read. A wrong
or missing identity, or a file that is not age at all, fails inside `decrypting_reader`, before
any plaintext is returned. Damage or truncation later in the file fails the `read()` that
reaches it, after earlier chunks were returned: a restore must treat that like any other read
failure (roll back), never as the end of the data.
"""

from __future__ import annotations

import contextlib
import io
import queue
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from ops.core.config import Settings
from ops.core.errors import BadBackup, OpsError
from ops.core.output import Reporter

AGE_MAGIC = b"age-encryption.org/v1\n"
RECIPIENTS_VARIABLE = "BACKUP_ENCRYPT_TO"
IDENTITY_VARIABLE = "BACKUP_IDENTITY_FILE"
_PIECE = 1 << 20  # plaintext handed to the encrypting thread at a time
_QUEUED_PIECES = 4  # so at most ~4 MiB wait between the caller and the thread
_BATCH = 256 << 10  # decrypted data handed to the reader at a time
_QUEUED_BATCHES = 4  # so at most ~1 MiB waits for the reader
_IDENTITY_HINT = (f"Set {IDENTITY_VARIABLE} (or --identity) to the age identity file or ssh "
                  "private key whose public key the backup was encrypted to.")
_RECIPIENT_HINT = (f"Set {RECIPIENTS_VARIABLE} (or --encrypt-to) to age1… public keys or ssh "
                   "public keys (ssh-ed25519, ssh-rsa), separated by commas or new lines.")


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def is_encrypted(head: bytes) -> bool:
    """Whether a file starting with `head` is age-encrypted (its first 22 bytes suffice)."""
    return head.startswith(AGE_MAGIC)


# --- Keys --------------------------------------------------------------------------------------


def parse_recipients(text: str) -> list[Any]:
    """Recipients from `BACKUP_ENCRYPT_TO`: age or ssh public keys, separated by commas or new
    lines; blank entries and `#` comments are skipped."""
    from pyrage import RecipientError, ssh, x25519

    recipients: list[Any] = []
    for entry in text.replace(",", "\n").splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            if entry.startswith("age1"):
                recipients.append(x25519.Recipient.from_str(entry))
            elif entry.startswith(("ssh-ed25519 ", "ssh-rsa ")):
                recipients.append(ssh.Recipient.from_str(entry))
            else:
                raise RecipientError("not an age1… or ssh-ed25519/ssh-rsa public key")
        except RecipientError as exc:
            shown = entry if len(entry) <= 40 else entry[:37] + "..."
            raise OpsError(f"{shown!r} in {RECIPIENTS_VARIABLE} is not a usable recipient: "
                           f"{exc}", hint=_RECIPIENT_HINT) from None
    if not recipients:
        raise OpsError(f"{RECIPIENTS_VARIABLE} lists no recipient", hint=_RECIPIENT_HINT)
    return recipients


def load_identities(path: str | Path) -> list[Any]:
    """The private keys in an age identity file or an ssh private key file. Nothing of the
    file's content ever appears in an error."""
    from pyrage import IdentityError, ssh, x25519

    path = Path(path)
    try:
        content = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise OpsError(f"cannot read the identity file {path}: {exc.strerror or exc}",
                       hint=_IDENTITY_HINT) from None
    warn_if_shared(path, mode)
    if b"-----BEGIN" in content:
        try:
            return [ssh.Identity.from_buffer(content)]
        except IdentityError:
            raise OpsError(f"{path} is not an ssh private key age can use (passphrase-protected "
                           "keys are not supported)", hint=_IDENTITY_HINT) from None
    identities = []
    for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except IdentityError:
            raise OpsError(f"line {number} of the identity file {path} is not an age secret "
                           "key (AGE-SECRET-KEY-1…)", hint=_IDENTITY_HINT) from None
    if not identities:
        raise OpsError(f"the identity file {path} holds no key", hint=_IDENTITY_HINT)
    return identities


def warn_if_shared(path: Path, mode: int) -> None:
    """Say on stderr, every time it is used, that an identity file other users may read is
    exposed (as ssh does for its keys). A warning rather than a refusal: a Kubernetes secret
    volume (defaultMode 0644) or a bind mount keeps such modes inside a container that is
    itself the boundary, and refusing would break those deployments."""
    if mode & 0o077:
        Reporter().warn(
            f"⚠️  The identity file {path} is accessible to other users "
            f"(mode {stat.S_IMODE(mode):04o}): anyone who can read it can decrypt every "
            f"backup. Run `chmod 600 {path}`.")


def recipients_for(settings: Settings, encrypt_to: str | None = None) -> list[Any]:
    """The age recipients backups are written to: `encrypt_to`, else BACKUP_ENCRYPT_TO
    (none: backups are not encrypted)."""
    text = settings.backup_encrypt_to if encrypt_to is None else encrypt_to
    return parse_recipients(text) if text.strip() else []


# An identity file's path, or identities already loaded (a key held only in memory)
Identity = str | Path | list[Any] | None


def identities_for(settings: Settings, identity: Identity = None) -> list[Any]:
    """The identities that decrypt backups: `identity`, else BACKUP_IDENTITY_FILE (none:
    encrypted backups cannot be read, and say so when met)."""
    if isinstance(identity, list):
        return identity
    path = identity or settings.backup_identity_file
    return load_identities(path) if path else []


# --- Small values ------------------------------------------------------------------------------


def seal(value: Any, recipients: Sequence[Any]) -> str:
    """A small JSON value age-encrypted to `recipients`, as base64 text: what an encrypted
    backup's sidecar holds instead of a value it must not show (its tenant's name)."""
    import base64

    import orjson
    import pyrage

    return base64.b64encode(pyrage.encrypt(orjson.dumps(value), list(recipients))).decode()


def unseal(sealed: object, identities: Sequence[Any]) -> Any:
    """The value `seal` wrote; None when there is no identity, none fits, or it is not ours."""
    import base64
    import binascii

    import orjson
    import pyrage

    if not identities or not isinstance(sealed, str):
        return None
    try:
        return orjson.loads(pyrage.decrypt(base64.b64decode(sealed, validate=True),
                                           list(identities)))
    except (binascii.Error, pyrage.DecryptError, orjson.JSONDecodeError):
        return None


# --- Encrypting --------------------------------------------------------------------------------


class _Aborted(Exception):
    """Raised into pyrage's reads so it stops without finishing the stream."""


_END = object()  # no more data (a clean end)
_ABORT = object()  # stop without finishing


class _QueueSource:
    """What pyrage reads from: the pieces the caller wrote, in order, until the end marker."""

    def __init__(self, pieces: queue.Queue[object]) -> None:
        self._pieces = pieces
        self._current = memoryview(b"")
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._current and not self._ended:
            piece = self._pieces.get()
            if piece is _ABORT:
                raise _Aborted()
            if piece is _END:
                self._ended = True
            else:
                # the queue holds bytes or the _END sentinel, ruled out above:
                self._current = memoryview(piece)  # type: ignore[arg-type]
        size = len(self._current) if size < 0 else size
        out, self._current = bytes(self._current[:size]), self._current[size:]
        return out


class EncryptingWriter:
    """Encrypts what is written to it into `raw`. `close()` writes the final chunk (`raw`
    stays open: the caller commits or closes it); `abort()`, or leaving a `with` block on an
    exception, stops without finishing, so `raw` never holds a complete-looking file."""

    def __init__(self, raw: Writable, recipients: Sequence[Any]) -> None:
        import pyrage

        if not recipients:
            raise OpsError("no recipient to encrypt to", hint=_RECIPIENT_HINT)
        self._pieces: queue.Queue[object] = queue.Queue(maxsize=_QUEUED_PIECES)
        self._failure: BaseException | None = None
        self._finished = False
        self.size = 0  # plaintext bytes written
        destination = _Destination(raw)

        def run() -> None:
            try:
                pyrage.encrypt_io(_QueueSource(self._pieces), destination, list(recipients))
            except BaseException as exc:  # handed to the caller on its next call
                # pyrage wraps what the destination raised; the original says more
                self._failure = destination.failure or exc

        self._thread = threading.Thread(target=run, daemon=True, name="age-encrypt")
        self._thread.start()

    def _check(self) -> None:
        if self._failure is not None:
            self.abort()
            raise _encrypt_error(self._failure)

    def _put(self, piece: object) -> None:
        while self._thread.is_alive():
            try:
                self._pieces.put(piece, timeout=0.1)
                return
            except queue.Full:
                continue
        self._check()  # the thread died: its failure explains why

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._finished:
            raise ValueError("write to a finished encrypting writer")
        self._check()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _PIECE):
            self._put(bytes(view[start:start + _PIECE]))
        self.size += len(view)
        return len(view)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Data leaves in whole 64 KiB chunks; there is nothing to force out before close."""
        return None

    def close(self) -> None:
        """Finish the age stream (authenticating its last chunk) into `raw`."""
        if self._finished:
            return
        self._put(_END)
        self._thread.join()
        self._finished = True
        if self._failure is not None:
            raise _encrypt_error(self._failure)

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._failure = self._failure or _Aborted()
        while self._thread.is_alive():  # wake the thread with the abort marker
            with contextlib.suppress(queue.Empty):
                self._pieces.get_nowait()
            with contextlib.suppress(queue.Full):
                self._pieces.put_nowait(_ABORT)
            self._thread.join(0.05)

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encrypting_writer(raw: Writable, recipients: Sequence[Any]) -> EncryptingWriter:
    """A writer that age-encrypts to `recipients` into `raw` (see EncryptingWriter)."""
    return EncryptingWriter(raw, recipients)


class _Destination:
    """`raw`, remembering what its write() raised (a storage OpsError, typically)."""

    def __init__(self, raw: Writable) -> None:
        self._raw = raw
        self.failure: BaseException | None = None

    def write(self, data: bytes) -> Any:
        try:
            return self._raw.write(data)
        except BaseException as exc:
            self.failure = exc
            raise

    def flush(self) -> None:
        return None


def _encrypt_error(exc: BaseException) -> BaseException:
    if isinstance(exc, OpsError):
        return exc  # the destination failed (a storage error): that is the one line
    return OpsError(f"encrypting the backup failed: {exc}", hint=_RECIPIENT_HINT)


# --- Decrypting --------------------------------------------------------------------------------


class _QueueSink:
    """What pyrage writes decrypted data to (8 KiB at a time), passed on in batches: one queue
    hand-off per 8 KiB would cost more than the decryption. Stops pyrage once the reader is
    closed."""

    def __init__(self, chunks: queue.Queue[object], closed: threading.Event) -> None:
        self._chunks = chunks
        self._closed = closed
        self._batch = bytearray()

    def write(self, data: bytes) -> int:
        self._batch += data
        if len(self._batch) >= _BATCH:
            self.put(bytes(self._batch))
            self._batch.clear()
        return len(data)

    def put(self, item: object) -> None:
        while not self._closed.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Aborted()

    def finish(self, item: object) -> None:
        """Pass on what is batched (it was authenticated), then `item`: the end or a failure."""
        with contextlib.suppress(_Aborted):
            if self._batch:
                self.put(bytes(self._batch))
            self.put(item)

    def flush(self) -> None:
        return None


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _DecryptingStream(io.RawIOBase):
    def __init__(self, raw: Readable, identities: Sequence[Any], what: str) -> None:
        import pyrage

        self._what = what
        self._chunks: queue.Queue[object] = queue.Queue(maxsize=_QUEUED_BATCHES)
        self._closed_event = threading.Event()
        self._pending = memoryview(b"")
        self._eof = False
        self._error: BaseException | None = None  # raised again on every later read
        self.position = 0  # plaintext bytes returned so far

        sink = _QueueSink(self._chunks, self._closed_event)

        def run() -> None:
            try:
                pyrage.decrypt_io(raw, sink, list(identities))
                item: object = _END
            except BaseException as exc:
                item = _Failure(exc)
            sink.finish(item)

        self._thread = threading.Thread(target=run, daemon=True, name="age-decrypt")
        self._thread.start()
        self._fill()  # header and first chunk: a wrong identity fails here, before any data

    def _fill(self) -> None:
        if self._error is not None:
            raise self._error
        item = self._chunks.get()
        if isinstance(item, _Failure):
            self._error = _decrypt_error(item.exc, self._what, self.position)
            raise self._error
        if item is _END:
            self._eof = True
        else:
            # the queue holds bytes or the _END sentinel, ruled out above:
            self._pending = memoryview(item)  # type: ignore[arg-type]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._eof:
                return 0
            self._fill()
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.position += count
        return count

    def close(self) -> None:
        self._closed_event.set()  # a thread blocked on a full queue gives up
        super().close()


def decrypting_reader(raw: Readable, identities: Sequence[Any], *,
                      what: str = "the backup") -> BinaryIO:
    """A buffered stream of the plaintext of the age file `raw`. Refuses (OpsError) before
    returning when there is no identity, none of them fits, or `raw` is not age; later damage
    raises OpsError from read(). `what` names the file in messages."""
    if not identities:
        raise OpsError(f"{what} is encrypted and no identity was given to decrypt it",
                       hint=_IDENTITY_HINT)
    stream = _DecryptingStream(raw, identities, what)
    return io.BufferedReader(stream, 1 << 20)


def _decrypt_error(exc: BaseException, what: str, position: int) -> BaseException:
    if isinstance(exc, OpsError):
        return exc  # the source failed (a storage error): that is the one line
    text = str(exc)
    if "No matching keys" in text:
        return OpsError(f"{what} is encrypted to other keys: no identity given can decrypt it",
                        hint=_IDENTITY_HINT)
    if position == 0 and ("Header" in text or "fill whole buffer" in text):
        return BadBackup(what, "not an age-encrypted file, or its header is damaged",
                         hint=_IDENTITY_HINT)
    return BadBackup(what, "damaged or truncated: its encrypted data failed authentication "
                     f"after {position} bytes of plaintext",
                     hint="Use another backup; this one cannot be trusted past that point.")
