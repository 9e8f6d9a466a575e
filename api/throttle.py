"""Login throttling: failed logins counted per account (email) and per client IP, with
exponential backoff.

After a key's free failures, each further failure blocks it for 1 s, then 2, 4, ... up to
15 minutes; a login while blocked is a 429 with Retry-After and costs no bcrypt check. A
successful login clears its account's count. A client IP's count only fades (after an hour
without failures): a valid account of one's own must not reset an IP that is spraying
guesses at others.

The state lives in this process's memory: each API process (uvicorn worker) counts on its
own and a restart forgets, so N workers allow N times the guesses. The tables are bounded
(the oldest entries go first), so a flood of made-up emails cannot exhaust memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FORGET_SECONDS = 3600.0  # a key with no failure for this long starts afresh
MAX_BLOCK_SECONDS = 900.0
MAX_TRACKED = 100_000  # keys per table


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class _Ledger:
    """Failures per key for one kind of key (account or IP)."""

    def __init__(self, free_failures: int) -> None:
        self.free_failures = free_failures
        self.entries: dict[str, _Failures] = {}

    def wait(self, key: str, now: float) -> float:
        entry = self.entries.get(key)
        return max(0.0, entry.blocked_until - now) if entry else 0.0

    def fail(self, key: str, now: float) -> None:
        entry = self.entries.pop(key, None)  # re-inserted last: the dict stays oldest-first
        if entry is None or now - entry.last > FORGET_SECONDS:
            entry = _Failures()
        entry.count += 1
        entry.last = now
        excess = entry.count - self.free_failures
        if excess > 0:
            entry.blocked_until = now + min(MAX_BLOCK_SECONDS, 2.0 ** min(excess - 1, 30))
        self.entries[key] = entry
        while len(self.entries) > MAX_TRACKED:
            del self.entries[next(iter(self.entries))]

    def clear(self, key: str) -> None:
        self.entries.pop(key, None)


class LoginThrottle:
    """Per-account and per-IP login failure counts for one API process (thread-safe: the
    login handler runs in a thread pool)."""

    ACCOUNT_FREE_FAILURES = 5
    IP_FREE_FAILURES = 20

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts = _Ledger(self.ACCOUNT_FREE_FAILURES)
        self._ips = _Ledger(self.IP_FREE_FAILURES)

    def retry_after(self, email: str, ip: str) -> int:
        """Whole seconds until this email may be tried from this IP again; 0 for now."""
        now = self._clock()
        with self._lock:
            wait = max(self._accounts.wait(_account(email), now), self._ips.wait(ip, now))
        return math.ceil(wait)

    def failed(self, email: str, ip: str) -> None:
        now = self._clock()
        with self._lock:
            self._accounts.fail(_account(email), now)
            self._ips.fail(ip, now)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._accounts.clear(_account(email))


def _account(email: str) -> str:
    # Every account with this email shares one count, whatever tenant a login names.
    return email.strip().lower()
