"""SecretBox: sealed endpoint secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.state.secrets import SecretBox, SecretError, load_or_create_secret_key


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    box = SecretBox(b"k" * 32)
    a, b = box.encrypt("hunter2"), box.encrypt("hunter2")
    assert a != b and a.startswith("v1:") and "hunter2" not in a
    assert box.decrypt(a) == box.decrypt(b) == "hunter2"
    assert box.encrypt("") == "" and box.decrypt("") == ""
    assert box.decrypt(box.encrypt("päss wörd ✓")) == "päss wörd ✓"


def test_wrong_key_or_damage_is_refused() -> None:
    sealed = SecretBox(b"k" * 32).encrypt("hunter2")
    with pytest.raises(SecretError, match="another secret key"):
        SecretBox(b"j" * 32).decrypt(sealed)
    damaged = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretError):
        SecretBox(b"k" * 32).decrypt(damaged)
    with pytest.raises(SecretError, match="v1:"):
        SecretBox(b"k" * 32).decrypt("hunter2")
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(b"short")


def test_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secrets.key"
    key = load_or_create_secret_key(path)
    assert len(key) >= 32 and load_or_create_secret_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    box = SecretBox(key)
    assert SecretBox(load_or_create_secret_key(path)).decrypt(box.encrypt("x")) == "x"
