from __future__ import annotations

import base64
import hashlib
import string

import pytest

from registry.auth.passwords import (
    VerifiedCache,
    generate_secret,
    hash_password,
    verify_password,
)


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("correct horse")


def test_hash_is_self_describing_scrypt(stored: str) -> None:
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(key, validate=True)) == 32


def test_right_password_verifies(stored: str) -> None:
    assert verify_password("correct horse", stored)


@pytest.mark.parametrize("attempt", ["", "correct hors", "correct horse ", "Correct horse"])
def test_wrong_password_fails(stored: str, attempt: str) -> None:
    assert not verify_password(attempt, stored)


def test_same_password_gets_a_new_salt_each_time() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second
    assert verify_password("pw", first) and verify_password("pw", second)


@pytest.mark.parametrize("password", ["", "pässwörd ✓", "a" * 10_000, "x\udcffy"])
def test_unusual_passwords_round_trip(password: str) -> None:
    assert verify_password(password, hash_password(password))


def test_parameters_are_read_from_the_stored_string() -> None:
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(b"pw", salt=salt, n=16, r=1, p=1, dklen=32)
    encoded = "$".join(
        ["scrypt", "16", "1", "1", base64.b64encode(salt).decode(), base64.b64encode(key).decode()]
    )
    assert verify_password("pw", encoded)
    assert not verify_password("pw", encoded.replace("$16$", "$32$", 1))


def _with_part(stored: str, index: int, value: str) -> str:
    parts = stored.split("$")
    parts[index] = value
    return "$".join(parts)


def _flip_last_key_byte(stored: str) -> str:
    key = bytearray(base64.b64decode(stored.split("$")[5]))
    key[-1] ^= 1
    return _with_part(stored, 5, base64.b64encode(bytes(key)).decode())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: "",
        lambda s: "not a hash",
        lambda s: s.replace("scrypt", "bcrypt", 1),
        lambda s: s + "$extra",
        lambda s: s.rsplit("$", 1)[0],
        lambda s: _with_part(s, 1, "lots"),
        lambda s: _with_part(s, 1, "1000"),  # n not a power of two
        lambda s: _with_part(s, 1, "1"),
        lambda s: _with_part(s, 1, str(2**30)),  # would need gigabytes: refused, not attempted
        lambda s: _with_part(s, 2, "0"),
        lambda s: _with_part(s, 3, "-1"),
        lambda s: _with_part(s, 4, "!!not base64!!"),
        lambda s: _with_part(s, 4, ""),
        lambda s: _with_part(s, 5, "c2hvcnQ="),  # 5-byte key
        lambda s: s[:-4],
        _flip_last_key_byte,
    ],
)
def test_malformed_or_tampered_hashes_never_match_and_never_raise(stored: str, mangle) -> None:
    assert not verify_password("correct horse", mangle(stored))


def test_non_string_hash_is_not_a_match() -> None:
    assert not verify_password("pw", None)  # type: ignore[arg-type]


def test_generate_secret_is_url_safe_random_and_long_enough() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    allowed = set(string.ascii_letters + string.digits + "-_")
    for secret in secrets:
        assert len(secret) == 32
        assert set(secret) <= allowed
    assert len(generate_secret(48)) == 64


def test_generate_secret_refuses_short_secrets() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        generate_secret(8)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> VerifiedCache:
    return VerifiedCache(max_entries=3, ttl_seconds=60, clock=clock)


def test_cache_misses_until_remembered(cache: VerifiedCache) -> None:
    assert not cache.check("alice", "pw", "H1")
    cache.remember("alice", "pw", "H1")
    assert cache.check("alice", "pw", "H1")


@pytest.mark.parametrize(
    ("user", "password", "password_hash"),
    [("alice", "PW", "H1"), ("alice", "pw", "H2"), ("bob", "pw", "H1"), ("alice", "", "H1")],
)
def test_cache_hits_only_the_exact_triple(
    cache: VerifiedCache, user: str, password: str, password_hash: str
) -> None:
    cache.remember("alice", "pw", "H1")
    assert not cache.check(user, password, password_hash)


def test_changed_password_hash_misses(cache: VerifiedCache) -> None:
    cache.remember("alice", "old", "H1")
    assert not cache.check("alice", "old", "H2")  # the password was changed since


def test_wrong_password_does_not_evict_the_right_one(cache: VerifiedCache) -> None:
    cache.remember("alice", "pw", "H1")
    assert not cache.check("alice", "guess", "H1")
    assert cache.check("alice", "pw", "H1")


def test_entries_expire_after_ttl_even_when_used(cache: VerifiedCache, clock: FakeClock) -> None:
    cache.remember("alice", "pw", "H1")
    clock.now += 59
    assert cache.check("alice", "pw", "H1")
    clock.now += 1
    assert not cache.check("alice", "pw", "H1")
    assert len(cache) == 0


def test_cache_is_bounded_and_evicts_least_recently_used(cache: VerifiedCache) -> None:
    for name in ("a", "b", "c"):
        cache.remember(name, "pw", "H")
    assert cache.check("a", "pw", "H")  # a is now the most recently used
    cache.remember("d", "pw", "H")
    assert len(cache) == 3
    assert not cache.check("b", "pw", "H")
    assert all(cache.check(name, "pw", "H") for name in ("a", "c", "d"))


def test_forget_and_clear(cache: VerifiedCache) -> None:
    cache.remember("alice", "pw", "H")
    cache.remember("bob", "pw", "H")
    cache.forget("alice")
    cache.forget("nobody")
    assert not cache.check("alice", "pw", "H")
    assert cache.check("bob", "pw", "H")
    cache.clear()
    assert len(cache) == 0


def test_cache_does_not_keep_the_password_or_its_plain_sha256(cache: VerifiedCache) -> None:
    cache.remember("alice", "s3cret-password", "H")
    [entry] = cache._entries.values()
    assert entry.fingerprint != hashlib.sha256(b"s3cret-password").digest()
    assert b"s3cret-password" not in entry.fingerprint
    assert "s3cret-password" not in repr(entry)


def test_two_caches_do_not_share_fingerprints() -> None:
    one, two = VerifiedCache(), VerifiedCache()
    one.remember("alice", "pw", "H")
    assert not two.check("alice", "pw", "H")


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"ttl_seconds": 0}, {"ttl_seconds": -1}])
def test_cache_rejects_nonsense_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VerifiedCache(**kwargs)  # type: ignore[arg-type]
