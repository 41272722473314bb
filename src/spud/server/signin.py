"""Sign-in throttling: attempts per account and per client address, lockout before hashing."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 50_000  # tracked accounts and addresses; old entries are pruned past this


@dataclass
class _Track:
    attempts: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class SignInLimiter:
    """Counts sign-in attempts, not only failures: an attempt counts from the moment it is
    allowed, so a burst of parallel requests cannot all get past the check before the first
    password hash finishes. A success clears the account's count and takes its own attempt
    off the address's count (many people signing in from one office address are fine).

    An account with `account_limit` attempts in `window_s` seconds, or a client address with
    `address_limit`, is locked for `lockout_s` seconds: its requests are refused before any
    password is hashed.
    """

    def __init__(
        self,
        account_limit: int = 5,
        address_limit: int = 20,
        window_s: float = 900.0,
        lockout_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_limit, self.address_limit = account_limit, address_limit
        self.window_s, self.lockout_s = window_s, lockout_s
        self.clock = clock
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._lock = threading.Lock()

    def attempt(self, username: str, address: str) -> int:
        """Count one attempt; 0 if it may go on, else the seconds until it may be tried again."""
        now = self.clock()
        keys = ((("account", username.strip().lower()), self.account_limit),)
        keys += ((("address", address), self.address_limit),)
        with self._lock:
            tracks = [(self._track(key, now), limit) for key, limit in keys]
            wait = max(t.locked_until - now for t, _ in tracks)
            if wait > 0:
                return math.ceil(wait)
            for track, limit in tracks:
                track.attempts.append(now)
                if len(track.attempts) >= limit:
                    track.locked_until = now + self.lockout_s
                    track.attempts.clear()
            return 0

    def succeeded(self, username: str, address: str) -> None:
        """The password was right: the account's count starts again."""
        with self._lock:
            account = self._tracks.get(("account", username.strip().lower()))
            if account is not None:
                account.attempts.clear()
                account.locked_until = 0.0
            place = self._tracks.get(("address", address))
            if place is not None and place.attempts:
                place.attempts.pop()

    def _track(self, key: tuple[str, str], now: float) -> _Track:
        track = self._tracks.get(key)
        if track is None:
            if len(self._tracks) >= MAX_KEYS:
                self._prune(now)
            track = self._tracks[key] = _Track()
        while track.attempts and track.attempts[0] <= now - self.window_s:
            track.attempts.popleft()
        return track

    def _prune(self, now: float) -> None:
        stale = [
            key
            for key, t in self._tracks.items()
            if t.locked_until <= now and (not t.attempts or t.attempts[-1] <= now - self.window_s)
        ]
        for key in stale:
            del self._tracks[key]
