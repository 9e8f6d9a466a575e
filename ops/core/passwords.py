"""bcrypt hashes of passwords: the seeds' users and the anonymizer's sample password."""

from __future__ import annotations

import base64

import bcrypt

from ops.core.vocabulary import BCRYPT_ROUNDS

_STANDARD64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def hash_password(password: str, *, rounds: int = BCRYPT_ROUNDS,
                  salt: bytes | None = None) -> str:
    """A `$2b$` bcrypt hash that Node's bcrypt and bcryptjs verify too.

    Every call draws a fresh random salt unless one is given (reproducible output - volume
    data, anonymized snapshots - passes one made by `salt_from_bytes`).
    """
    return bcrypt.hashpw(password.encode(), salt or bcrypt.gensalt(rounds, prefix=b"2b")).decode()


def salt_from_bytes(raw: bytes, rounds: int = BCRYPT_ROUNDS) -> bytes:
    """A valid `$2b$` bcrypt salt made from 16 given bytes (for a deterministic hash)."""
    # bcrypt's base64 is standard base64 with its own alphabet and no padding.
    encoded = base64.b64encode(raw[:16]).decode()[:22].translate(
        str.maketrans(_STANDARD64, _BCRYPT64))
    return f"$2b${rounds:02d}${encoded}".encode()
