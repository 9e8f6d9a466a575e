"""The one exception family every command raises for expected failures.

The CLI catches OpsError once (ops.cli) and prints `message`, then `hint` on the next line,
and exits with `exit_code`; the API maps each type to its status code once (api.errors).
Anything that is not an OpsError is a bug and shows a traceback only with --debug.
"""

from __future__ import annotations


class OpsError(Exception):
    """A failure the user can act on: one line of message, an optional hint, an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(OpsError):
    """An option or argument with a value the command cannot use (exit 2, like a typo)."""

    exit_code = 2


class Refused(OpsError):
    """The command will not act without being told more (a production target, no --confirm);
    nothing was touched (exit 2)."""

    exit_code = 2


class NotFound(OpsError):
    """Something named does not exist: a backup, a product, a tenant, a seed."""


class BadBackup(OpsError):
    """A backup file that cannot be read or restored; `detail` says what is wrong with it
    (the message adds which file and that nothing changed)."""

    def __init__(self, name: str, detail: str, hint: str | None = None) -> None:
        super().__init__(f"bad backup {name}: {detail}; nothing was changed", hint=hint)
        self.detail = detail


class BadSegment(OpsError):
    """A change segment that cannot be read or applied (corrupt, truncated, not ours, or not
    the range its name says); `detail` says what is wrong with it."""

    def __init__(self, name: str, detail: str, hint: str | None = None) -> None:
        super().__init__(f"bad change segment {name}: {detail}; nothing was changed",
                         hint=hint or "Restore to a time before this segment, or re-create "
                         "the changes it held with a new full backup.")
        self.name = name
        self.detail = detail
