"""A backup in a bucket is downloaded before a restore locks anything.

A restore holds ACCESS EXCLUSIVE on every table it replaces from the first row to the commit;
reading the rows from a bucket meanwhile let a stalled server keep the application locked out
for as long as it stalled. So the stored bytes (still encrypted when the backup is) are copied
into this run's private scratch directory first (ops.core.scratch) - each request bounded by
STORAGE_TIMEOUT - and the restore reads that copy, which is removed on every exit (and by
the next run after a kill). It costs local disk space of the backup's stored size for the
restore's duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.backup.files import BackupRef, as_ref
from ops.core.errors import OpsError
from ops.core.output import Reporter, human_size
from ops.core.scratch import scratch_dir

_CHUNK = 8 << 20


@contextmanager
def fetched(ref: BackupRef, report: Reporter) -> Iterator[BackupRef]:
    """`ref` itself when it is a local file; otherwise a private local copy of it."""
    if ref.path is not None:
        yield ref
        return
    with scratch_dir() as directory:
        yield as_ref(_download(ref, directory / ref.name, report))


def _download(ref: BackupRef, local: Path, report: Reporter) -> Path:
    size = 0
    try:
        with report.progress(f"⬇️  {ref.name}", None) as advance, ref.open() as source, \
                local.open("xb") as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
                size += len(chunk)
                advance(len(chunk))
    except OSError as exc:
        raise OpsError(f"cannot keep a local copy of {ref} for the restore: "
                       f"{exc.strerror or exc}; nothing was changed",
                       hint="Free space in the temp directory (TMPDIR), or restore from a "
                       "local file.") from None
    report.line(f"⬇️  Downloaded {ref} ({human_size(size)}) before locking any table")
    return local
