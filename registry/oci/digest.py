"""Content digests: parsing, validation and hashing (``algorithm:encoded``).

Only ``sha256`` and ``sha512`` are accepted for content we store; every digest we hand out is
computed from the bytes (never trusted from a client).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["Digest", "DigestError", "Hasher", "sha256_of"]

_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_ENCODED_RE = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}


class DigestError(ValueError):
    """A string is not a digest we accept."""


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        m = _DIGEST_RE.match(value)
        if not m:
            raise DigestError(f"{value!r} is not a digest (expected algorithm:hex)")
        algorithm, encoded = m.groups()
        pattern = _ENCODED_RE.get(algorithm)
        if pattern is None:
            raise DigestError(f"unsupported digest algorithm {algorithm!r} (use sha256 or sha512)")
        if not pattern.match(encoded):
            raise DigestError(f"{value!r} has a malformed {algorithm} value")
        return cls(algorithm, encoded)

    @classmethod
    def is_valid(cls, value: str) -> bool:
        try:
            cls.parse(value)
        except DigestError:
            return False
        return True

    def hasher(self) -> Hasher:
        return Hasher(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


class Hasher:
    """Incremental hash producing a :class:`Digest`."""

    __slots__ = ("_h", "algorithm")

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
