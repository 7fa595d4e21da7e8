"""Secrets at rest: the passwords and tokens of registry endpoints, sealed with AES-256-GCM.

A sealed value is text, safe for a database column::

    v1:<urlsafe base64 of 12-byte nonce ‖ ciphertext ‖ 16-byte tag>

The AES key is derived (HKDF-SHA256) from the key file's bytes, so the file can hold any printable
key of 32 bytes or more — the same format as the token signing key. Lose the key file and every
stored secret is unreadable: back it up with the database (``secrets.key`` in the data directory).
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from registry.auth.tokens import MIN_KEY_BYTES, load_or_create_key

__all__ = ["SecretBox", "SecretError", "load_or_create_secret_key"]

_VERSION = "v1:"
_NONCE_BYTES = 12
_INFO = b"seawall secretbox v1"


class SecretError(Exception):
    """A sealed value could not be opened: it is damaged, or it was sealed with another key."""


class SecretBox:
    """Seals and opens short secrets. The empty string stays empty (no secret is no secret)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a secret key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key)
        self._aead = AESGCM(derived)

    def encrypt(self, plaintext: str) -> str:
        if not plaintext:
            return ""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _VERSION.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, sealed: str) -> str:
        """:raises SecretError: when the value is damaged or was sealed with another key."""
        if not sealed:
            return ""
        if not sealed.startswith(_VERSION):
            raise SecretError("not a sealed secret (expected the 'v1:' prefix)")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :].encode("ascii"))
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, _VERSION.encode()).decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag, UnicodeError):
            raise SecretError(
                "a stored secret cannot be decrypted: it was sealed with another secret key "
                "(was secrets.key replaced?); enter the registry credentials again"
            ) from None


def load_or_create_secret_key(path: Path) -> bytes:
    """The key stored at ``path``, created (mode 0600, atomically) when missing.

    Same file format and creation rules as the token key
    (:func:`registry.auth.tokens.load_or_create_key`), but a separate file: rotating the token
    key must not make stored registry passwords unreadable.

    :raises ValueError: when the file holds fewer than 32 bytes.
    :raises OSError: when the file cannot be read or created.
    """
    return load_or_create_key(path)
