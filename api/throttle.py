"""Login throttling: failed logins counted per login (tenant, email and client address), per
account across addresses, and per client address, with exponential backoff.

After a key's free failures, each further failure blocks it for 1 s, then 2, 4, ... up to its
cap; a login while blocked is a 429 with Retry-After and costs no bcrypt check.
- A login (tenant, email, address) gets 5 free failures, then up to 15 minutes: a guesser
  locks out only itself, never the real user at another address or in another tenant.
- An account (tenant, email) from every address together gets 50, then at most a minute: a
  guesser spread over many addresses is slowed down, and the most it can hold the real user
  up is that bounded minute.
- A client address gets 20 over every account it tries (spraying), up to 15 minutes.
A successful login clears its login's and its account's counts. A client address's count
only fades (after an hour without failures): a valid account of one's own must not reset an
address that is spraying guesses at others.

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
MAX_ACCOUNT_BLOCK_SECONDS = 60.0  # what guesses from elsewhere can cost the real user
MAX_TRACKED = 100_000  # keys per table


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class _Ledger:
    """Failures per key for one kind of key (login, account or address)."""

    def __init__(self, free_failures: int, max_block: float = MAX_BLOCK_SECONDS) -> None:
        self.free_failures = free_failures
        self.max_block = max_block
        self.entries: dict[tuple[str, ...], _Failures] = {}

    def wait(self, key: tuple[str, ...], now: float) -> float:
        entry = self.entries.get(key)
        return max(0.0, entry.blocked_until - now) if entry else 0.0

    def fail(self, key: tuple[str, ...], now: float) -> None:
        entry = self.entries.pop(key, None)  # re-inserted last: the dict stays oldest-first
        if entry is None or now - entry.last > FORGET_SECONDS:
            entry = _Failures()
        entry.count += 1
        entry.last = now
        excess = entry.count - self.free_failures
        if excess > 0:
            entry.blocked_until = now + min(self.max_block, 2.0 ** min(excess - 1, 30))
        self.entries[key] = entry
        while len(self.entries) > MAX_TRACKED:
            del self.entries[next(iter(self.entries))]

    def clear(self, key: tuple[str, ...]) -> None:
        self.entries.pop(key, None)


class LoginThrottle:
    """Per-login, per-account and per-address login failure counts for one API process
    (thread-safe: the login handler runs in a thread pool)."""

    LOGIN_FREE_FAILURES = 5
    ACCOUNT_FREE_FAILURES = 50
    IP_FREE_FAILURES = 20

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._logins = _Ledger(self.LOGIN_FREE_FAILURES)
        self._accounts = _Ledger(self.ACCOUNT_FREE_FAILURES, MAX_ACCOUNT_BLOCK_SECONDS)
        self._ips = _Ledger(self.IP_FREE_FAILURES)

    def retry_after(self, email: str, ip: str, tenant: int | None = None) -> int:
        """Whole seconds until this login may be tried again; 0 for now."""
        now = self._clock()
        account = _account(tenant, email)
        with self._lock:
            wait = max(self._logins.wait((*account, ip), now),
                       self._accounts.wait(account, now), self._ips.wait((ip,), now))
        return math.ceil(wait)

    def failed(self, email: str, ip: str, tenant: int | None = None) -> None:
        now = self._clock()
        account = _account(tenant, email)
        with self._lock:
            self._logins.fail((*account, ip), now)
            self._accounts.fail(account, now)
            self._ips.fail((ip,), now)

    def succeeded(self, email: str, ip: str, tenant: int | None = None) -> None:
        account = _account(tenant, email)
        with self._lock:
            self._logins.clear((*account, ip))
            self._accounts.clear(account)


def _account(tenant: int | None, email: str) -> tuple[str, str]:
    # A login without a tenant (the email's oldest account) counts as its own tenant ("").
    return ("" if tenant is None else str(tenant), email.strip().lower())
