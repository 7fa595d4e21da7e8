"""Password hashing (scrypt), a cache of recent successful checks, and random secrets.

Stored hashes describe themselves, so parameters can change later without breaking old rows::

    scrypt$<n>$<r>$<p>$<salt, base64>$<derived key, base64>
    scrypt$16384$8$1$q1v3...==$Vx0...=

A scrypt check costs tens of milliseconds on purpose. Clients using HTTP Basic send the password
on every request, so :class:`VerifiedCache` remembers recent successes for a short while; it also
holds the process's throttle of failures and the bounded thread pool checks run on
(:mod:`registry.auth.logins`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from registry.auth.logins import CheckPool, LoginThrottle

__all__ = ["VerifiedCache", "generate_secret", "hash_password", "verify_password"]

SCHEME = "scrypt"
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_SECRET_BYTES = 16
# Refuse stored parameters that would need more memory than this (a hostile or corrupt row must
# not be able to make a login allocate gigabytes).
MAX_SCRYPT_MEMORY_BYTES = 64 * 1024 * 1024


def _utf8(password: str) -> bytes:
    # surrogatepass: a str from undecodable input still hashes, the same way every time.
    return password.encode("utf-8", "surrogatepass")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt_memory_bytes(n: int, r: int, p: int) -> int:
    # OpenSSL's own accounting: the V array (128*r*(n+2)) plus the B array (128*r*p).
    return 128 * r * (n + 2 + p)


def hash_password(password: str) -> str:
    """Hash ``password`` with scrypt (n=2**14, r=8, p=1) and a fresh 16-byte random salt.

    :returns: the self-describing string ``scrypt$16384$8$1$<salt b64>$<key b64>``, ready to store.
    """
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(
        _utf8(password),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_scrypt_memory_bytes(SCRYPT_N, SCRYPT_R, SCRYPT_P) + 1024,
        dklen=KEY_BYTES,
    )
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the stored hash ``encoded`` (as made by :func:`hash_password`).

    Never raises: a malformed, truncated or unknown-scheme hash (or one whose parameters exceed
    :data:`MAX_SCRYPT_MEMORY_BYTES`) is simply not a match. The derived key must be exactly 32
    bytes: scrypt output is prefix-stable, so a truncated key would otherwise still match.
    The final comparison is constant-time.
    """
    try:
        scheme, n_text, r_text, p_text, salt_b64, key_b64 = encoded.split("$")
        if scheme != SCHEME:
            return False
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(key_b64, validate=True)
    except (ValueError, AttributeError, binascii.Error):
        return False
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(expected) != KEY_BYTES:
        return False
    needed = _scrypt_memory_bytes(n, r, p)
    if needed > MAX_SCRYPT_MEMORY_BYTES:
        return False
    try:
        actual = hashlib.scrypt(
            _utf8(password), salt=salt, n=n, r=r, p=p, maxmem=needed + 1024, dklen=KEY_BYTES
        )
    except (ValueError, MemoryError, OverflowError):
        return False
    return hmac.compare_digest(actual, expected)


def generate_secret(nbytes: int = 24) -> str:
    """A random URL-safe secret of ``nbytes`` random bytes (32 characters for the default 24).

    For robot account secrets and the first-start admin password.

    :raises ValueError: when ``nbytes`` is below 16 (such a secret could be guessed).
    """
    if nbytes < MIN_SECRET_BYTES:
        raise ValueError(
            f"a secret of {nbytes} random bytes is too short to be safe; "
            f"ask for at least {MIN_SECRET_BYTES}"
        )
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True, slots=True)
class _Entry:
    fingerprint: bytes
    expires_at_monotonic: float


class VerifiedCache:
    """Remembers recent successful password checks: HTTP Basic need not cost a scrypt per request.

    Contract for callers::

        if cache.check(name, password, account.password_hash):      # fast path, no scrypt
            ok = True
        elif verify_password(password, account.password_hash):     # slow path
            cache.remember(name, password, account.password_hash)
            ok = True

    - Only ever :meth:`remember` a triple that :func:`verify_password` just accepted.
    - A hit needs the same username, the same password and the same stored ``password_hash``:
      changing an account's password changes its hash, so old entries miss at once.
    - Entries live ``ttl_seconds`` from when they were remembered (not extended by hits), and at
      most ``max_entries`` accounts are kept (least recently used evicted first).
    - The cache says nothing about whether the account is still active: check that on every
      request from the account row, as before.
    - Passwords are not kept: each entry is an HMAC-SHA256 of (username, password, hash) under a
      random key private to this process, so a memory dump does not give fast offline guesses.

    Safe to share between threads and tasks of one process; each process has its own cache.

    ``throttle`` and ``pool`` are the rest of the process's password-check state: failed logins
    per account and source, and the threads scrypt runs on (see :mod:`registry.auth.logins`).
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        throttle: LoginThrottle | None = None,
        pool: CheckPool | None = None,
    ) -> None:
        """:param clock: seconds from a monotonic clock; tests pass a fake one."""
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.throttle = throttle or LoginThrottle(clock=clock)
        self.pool = pool or CheckPool()

    def _fingerprint(self, username: str, password: str, password_hash: str) -> bytes:
        message = b"\0".join((_utf8(username), _utf8(password), _utf8(password_hash)))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def check(self, username: str, password: str, password_hash: str) -> bool:
        """Whether this exact triple was remembered less than ``ttl_seconds`` ago."""
        fingerprint = self._fingerprint(username, password, password_hash)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(username)
            if entry is None:
                return False
            if entry.expires_at_monotonic <= now:
                del self._entries[username]
                return False
            if not hmac.compare_digest(entry.fingerprint, fingerprint):
                return False  # a wrong password does not evict the right one
            self._entries.move_to_end(username)
            return True

    def knows(self, username: str) -> bool:
        """Whether a success of ``username`` is remembered (so :meth:`check` may hit): callers
        skip looking the account up when it is not."""
        with self._lock:
            entry = self._entries.get(username)
            return entry is not None and entry.expires_at_monotonic > self._clock()

    def remember(self, username: str, password: str, password_hash: str) -> None:
        """Record that ``password`` was just verified against ``password_hash`` for ``username``."""
        entry = _Entry(
            self._fingerprint(username, password, password_hash), self._clock() + self.ttl_seconds
        )
        with self._lock:
            self._entries[username] = entry
            self._entries.move_to_end(username)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, username: str) -> None:
        """Drop what is remembered for ``username`` (e.g. after disabling or deleting it)."""
        with self._lock:
            self._entries.pop(username, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
