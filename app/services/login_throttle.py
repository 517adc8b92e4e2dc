"""Back-off for failed sign-ins, per account and per client address, so passwords cannot be guessed at speed.

A key (an account name, or a client address) may fail a few times freely (`ACCOUNT_FREE_FAILURES`,
`ADDRESS_FREE_FAILURES`); each failure after those locks it for twice as long as the one before: 1 s, 2 s, 4 s, ...
up to `MAX_LOCK_S`. While either key of an attempt is locked the attempt is refused without its password being
checked, and it does not count as a failure. A sign-in that succeeds clears its account's failures. Every failure
and refusal is logged (logger `rise.auth`), with the account name quoted and the address.

The counts live in the server's memory: a restart forgets them, and each server process keeps its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("rise.auth")

ACCOUNT_FREE_FAILURES = 5
# Higher than an account's: colleagues behind one office address share it.
ADDRESS_FREE_FAILURES = 20
FIRST_LOCK_S = 1.0
MAX_LOCK_S = 15 * 60.0
# Keys remembered at most; the least recently failed are forgotten first, so a flood of names cannot fill memory.
MAX_KEYS = 10_000


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Call `wait_seconds` before checking a password, then `failed` or `succeeded`."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> list[tuple[tuple[str, str], int]]:
        return [(("account", username), ACCOUNT_FREE_FAILURES), (("address", address), ADDRESS_FREE_FAILURES)]

    def wait_seconds(self, username: str, address: str) -> float:
        """How long this account or address must wait before its next attempt is checked; 0 when it may try now."""
        now = self._clock()
        with self._lock:
            waits = [self._failures[key].locked_until - now for key, _ in self._keys(username, address)
                     if key in self._failures]  # fmt: skip
        wait = max([0.0, *waits])
        if wait > 0:
            log.warning("Sign-in refused for %r from %s: locked for %.0f s more", username, address, wait)
        return wait

    def failed(self, username: str, address: str) -> None:
        """Count a wrong password (or unknown account) against both keys, locking those past their free failures."""
        now = self._clock()
        counts = []
        with self._lock:
            for key, free in self._keys(username, address):
                record = self._failures.pop(key, None) or _Failures()
                record.count += 1
                if record.count > free:
                    lock = min(FIRST_LOCK_S * 2 ** (record.count - free - 1), MAX_LOCK_S)
                    record.locked_until = now + lock
                self._failures[key] = record  # now the most recent
                counts.append(record.count)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)
        log.warning(
            "Failed sign-in for %r from %s (%d in a row for the account, %d for the address)",
            username,
            address,
            *counts,
        )

    def succeeded(self, username: str, address: str) -> None:
        """The account signed in: its failures are forgotten (the address's stay, other accounts may share it)."""
        with self._lock:
            self._failures.pop(("account", username), None)
