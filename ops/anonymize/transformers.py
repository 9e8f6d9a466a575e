"""Transformers: each turns an original value into a fake one, derived from a keyed hash.

Every fake comes from HMAC-SHA256(key, kind + value), so the same value gets the same fake
wherever it appears (a user's email in `users` and in `clients`), two runs with the same key
give identical output, and without the key nothing leads back from a fake to its original.
Fakes are picked from plain word lists (ops.anonymize.words): Faker seeded per value measured
about 190 µs a name against under 3 µs for a word-list pick, hours on a large database.
NULL stays NULL under every transformer. `password` and `constant` ignore the value.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from ops.anonymize.words import (
    COMPANY_KINDS,
    COMPANY_SUFFIXES,
    COMPANY_WORDS,
    FIRST_NAMES,
    LAST_NAMES,
    LATIN,
)
from ops.core.passwords import hash_password, salt_from_bytes
from ops.core.vocabulary import SAMPLE_PASSWORD

_SHA256_BLOCK = 64
KINDS = ("email", "person_name", "company_name", "phone", "url", "hash", "text", "password")
RESERVED_DOMAIN = "example.test"  # RFC 2606/6761: never a real mailbox or site
CACHE_SIZE = 4096  # repeated values (authors, owners) skip the hash; bounded memory
FILLER_CHARS = 1 << 16

# A fake for (value, attempt): attempt > 0 asks for another one after a unique collision.
Make = Callable[[str, int], str]


def _pick(words: tuple[str, ...], digest: bytes, at: int) -> str:
    return words[int.from_bytes(digest[at:at + 2], "big") % len(words)]


class Keyed:
    """The fakes of one run: everything derives from `key` (ANONYMIZE_SALT)."""

    def __init__(self, key: bytes) -> None:
        # HMAC-SHA256 (RFC 2104) with the padded key (and each kind's prefix) hashed once:
        # a value then costs two hash copies, ~1.5 us, where hmac.digest pays ~4.4 us
        # setting the key up every time.
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        # one inner state per kind, made here: the parallel streams share them read-only
        self._kinds = {kind: self._prefixed(kind) for kind in KINDS}
        self._filler, self._starts = _filler_text()

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256(key, message)."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def _prefixed(self, kind: str) -> Any:
        inner = self._inner.copy()
        inner.update(f"{kind}\0".encode())
        return inner

    def digest(self, kind: str, value: str, attempt: int = 0) -> bytes:
        """HMAC-SHA256(key, kind NUL value [NUL attempt])."""
        inner = self._kinds[kind].copy()
        inner.update(value.encode())  # text from PostgreSQL: valid UTF-8, no lone surrogates
        if attempt:
            inner.update(f"\0{attempt}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def email(self, value: str, attempt: int = 0, domain: str = RESERVED_DOMAIN) -> str:
        d = self.digest("email", value, attempt)
        number = int.from_bytes(d[4:8], "big") % 100_000
        return (f"{_pick(FIRST_NAMES, d, 0)}.{_pick(LAST_NAMES, d, 2)}.{number}@{domain}"
                .lower())

    def person_name(self, value: str, attempt: int = 0) -> str:
        d = self.digest("person_name", value, attempt)
        return f"{_pick(FIRST_NAMES, d, 0)} {_pick(LAST_NAMES, d, 2)}"

    def company_name(self, value: str, attempt: int = 0) -> str:
        d = self.digest("company_name", value, attempt)
        return (f"{_pick(COMPANY_WORDS, d, 0)} {_pick(COMPANY_KINDS, d, 2)} "
                f"{_pick(COMPANY_SUFFIXES, d, 4)}")

    def phone(self, value: str, attempt: int = 0) -> str:
        # Ofcom's range for drama: +44 20 7946 0000-0999 rings nobody.
        d = self.digest("phone", value, attempt)
        return f"+44 20 7946 {int.from_bytes(d[:4], 'big') % 1000:04d}"

    def url(self, value: str, attempt: int = 0, domain: str = RESERVED_DOMAIN) -> str:
        d = self.digest("url", value, attempt)
        return (f"https://{_pick(COMPANY_WORDS, d, 0).lower()}-"
                f"{int.from_bytes(d[2:6], 'big') % 100_000}.{domain}/")

    def hash(self, value: str, attempt: int = 0) -> str:
        return self.digest("hash", value, attempt)[:16].hex()

    def identifier(self, value: str, attempt: int = 0) -> str:
        """`hash`, under its own name: the same original gives the same fake in an
        external_id column and in the JSON that refers to it."""
        return self.hash(value, attempt)

    def text(self, value: str, attempt: int = 0) -> str:
        """Latin filler exactly as long as the value, starting at a word the hash picks."""
        return self.text_json(value, attempt)[1:-1].decode()

    def text_json(self, value: str, attempt: int = 0) -> bytes:
        """`text` as a JSON string: the hot path of free-text columns, built from bytes."""
        length = len(value)
        d = self.digest("text", value, attempt)
        start = self._starts[int.from_bytes(d[:4], "big") % len(self._starts)]
        filler = self._filler
        if start + length > len(filler):  # longer than the filler: repeat it
            filler = filler * (1 + (start + length) // len(filler))
        out = filler[start:start + length]
        if out[-1:] == b" ":
            out = out[:-1] + b"."
        return b'"' + out + b'"'

    def password(self) -> str:
        """One bcrypt hash of the sample password for the whole run (bcrypt per row would
        take hours); its salt comes from the key, so two runs write the same hash."""
        return hash_password(SAMPLE_PASSWORD,
                             salt=salt_from_bytes(self.digest("password", "salt")))

    def row_days(self, row_key: bytes, days: int) -> int:
        """The shift, in days within ±days, of every date_shift column of one row."""
        d = self.mac(b"date_shift\0" + row_key)
        return int.from_bytes(d[:8], "big") % (2 * days + 1) - days


def _filler_text() -> tuple[bytes, list[int]]:
    """A fixed stream of Latin words (ASCII: JSON as it is), and where each word starts."""
    dice = random.Random("anonymize filler")
    words: list[str] = []
    size = 0
    while size < FILLER_CHARS:
        word = LATIN[int(dice.random() * len(LATIN))]
        words.append(word)
        size += len(word) + 1
    text = " ".join(words) + " "
    starts, at = [], 0
    for word in words:
        starts.append(at)
        at += len(word) + 1
    return text.encode(), starts


def shift_date(value: Any, days: int) -> Any:
    """A date or timestamp (as the backup writes them) moved by `days`; infinity, BC dates
    and anything else unparseable stay as they are (they identify nobody)."""
    if not days:
        return value
    try:
        if len(value) == 10:
            return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
        return (datetime.fromisoformat(value) + timedelta(days=days)).isoformat()
    except ValueError:
        return value


class UniqueFakes:
    """Fakes for a column under a unique index: a fake already given to another original
    is asked for again (attempt 1, 2, ...), so the output keeps the constraint. Which original
    keeps the first fake follows the file's order (primary key), so reruns agree. Memory: one
    entry per distinct value of the column - such columns are names and emails of users,
    clients and tenants, never the work-item tables."""

    def __init__(self, make: Make) -> None:
        self.make = make
        self.owners: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        attempt = 0
        while True:
            fake = self.make(value, attempt)
            if self.owners.setdefault(fake, value) == value:
                return fake
            attempt += 1
