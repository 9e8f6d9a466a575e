"""The one error type every command raises for expected failures."""

from __future__ import annotations


class OpsError(Exception):
    """A failure the user can act on: one line of message, an optional hint, an exit code.

    The CLI prints `message` (and `hint` on the next line) and exits with `exit_code`;
    anything that is not an OpsError is a bug and shows a traceback only with --debug.
    """

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
