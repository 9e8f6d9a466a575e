"""What was found out about a backup after it was written, kept beside it in its store.

The scheduler verifies every backup it writes and now and then restores one into a scratch
database (a drill); the outcome is a small JSON object named after the backup:

    backup-2024-01-08T03-00-00-000Z.json.zst.verified   streamed and checked: good
    backup-2024-01-08T03-00-00-000Z.json.zst.bad        failed verification (`problem` says why)
    backup-2024-01-08T03-00-00-000Z.json.zst.drilled    restored into a scratch database: good

A store never overwrites an object, so each is written once; one listing of the store
gives every verdict (no reads), which is what retention, `backups check` and the scheduler's
metrics need (ops.backup.archive sorts them out of its listing). They are not backups and go
when their backup is pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from ops.backup.files import BackupRef, utc_now
from ops.backup.storage.interface import ObjectExistsError
from ops.core.masking import mask_secrets

VERIFIED = "verified"
BAD = "bad"
DRILLED = "drilled"
KINDS = (VERIFIED, BAD, DRILLED)


@dataclass(frozen=True)
class Verdicts:
    """Per backup name, the kinds of verdict it has and when each was recorded."""

    found: dict[str, dict[str, datetime]]

    def of(self, name: str) -> dict[str, datetime]:
        return self.found.get(name, {})

    def is_bad(self, name: str) -> bool:
        return BAD in self.of(name)

    def last(self, kind: str) -> tuple[str, datetime] | None:
        """The backup with the most recent verdict of `kind`, and when it was recorded."""
        dated = [(when[kind], name) for name, when in self.found.items() if kind in when]
        return (max(dated)[1], max(dated)[0]) if dated else None


def record_verdict(ref: BackupRef, kind: str, **details: object) -> None:
    """Write `kind` for the backup (once: a verdict that exists already is kept as it is)."""
    # masked: a problem may quote a store's error, and with it a signed URL
    body = mask_secrets(orjson.dumps({"backup": ref.name, "verdict": kind,
                                      "recorded": utc_now().isoformat(), **details}).decode()
                        ).encode() + b"\n"
    try:
        with ref.store.open_writer(f"{ref.name}.{kind}") as writer:
            writer.write(body)
            writer.commit()
    except ObjectExistsError:
        pass
