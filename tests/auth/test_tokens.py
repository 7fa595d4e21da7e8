from __future__ import annotations

import base64
import json
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from registry.auth import tokens as tokens_module
from registry.auth.scopes import Access
from registry.auth.tokens import InvalidToken, TokenClaims, TokenIssuer, load_or_create_key

KEY = b"k" * 64  # 64: long enough for the HS512 token crafted below
OTHER_KEY = b"o" * 32


def repo(name: str, *actions: str) -> Access:
    return Access("repository", name, frozenset(actions))


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(KEY, ttl_seconds=300)


def raw_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def craft(key: bytes = KEY, algorithm: str = "HS256", **overrides: Any) -> str:
    """A token like ours, with some claims replaced (None removes one)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "seawall",
        "aud": "seawall",
        "sub": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "x",
        "access": [{"type": "repository", "name": "a", "actions": ["pull"]}],
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


def reason_of(issuer: TokenIssuer, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        issuer.verify(token)
    assert "get a new token" in str(info.value)
    return info.value.reason


def test_issue_then_verify_round_trips(issuer: TokenIssuer) -> None:
    wanted = [repo("team/app", "pull", "push"), Access("registry", "catalog", frozenset({"*"}))]
    issued = issuer.issue("alice", wanted)
    claims = issuer.verify(issued.token)
    assert claims.subject == "alice"
    assert claims.access == tuple(wanted)
    assert claims.expires_at == issued.issued_at + timedelta(seconds=300)


def test_issued_token_claims_follow_the_docker_shape(issuer: TokenIssuer) -> None:
    issued = issuer.issue("robot$ci", [repo("team/app", "push", "pull")])
    claims = raw_claims(issued.token)
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"
    assert claims["iss"] == "seawall"
    assert claims["aud"] == "seawall"
    assert claims["sub"] == "robot$ci"
    assert claims["iat"] == claims["nbf"] == int(issued.issued_at.timestamp())
    assert claims["exp"] - claims["iat"] == 300
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert claims["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]}
    ]


def test_every_token_has_its_own_id(issuer: TokenIssuer) -> None:
    ids = {raw_claims(issuer.issue("a", []).token)["jti"] for _ in range(20)}
    assert len(ids) == 20


def test_issued_token_metadata(issuer: TokenIssuer) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    issued = issuer.issue("alice", [])
    assert issued.expires_in_seconds == 300
    assert issued.issued_at.tzinfo is UTC and issued.issued_at.microsecond == 0
    assert before <= issued.issued_at <= datetime.now(UTC)
    assert issued.token not in repr(issued)
    body = issued.as_response()
    assert body["token"] == body["access_token"] == issued.token
    assert body["expires_in"] == 300
    assert isinstance(body["issued_at"], str) and body["issued_at"].endswith("Z")
    assert datetime.fromisoformat(body["issued_at"]) == issued.issued_at


def test_anonymous_token_has_no_subject(issuer: TokenIssuer) -> None:
    issued = issuer.issue(None, [repo("pub/app", "pull")])
    assert "sub" not in raw_claims(issued.token)
    assert issuer.verify(issued.token).subject is None


def test_refused_scopes_stay_in_the_token_and_grant_nothing(issuer: TokenIssuer) -> None:
    claims = issuer.verify(issuer.issue("a", [repo("x"), repo("y", "pull")]).token)
    assert claims.access == (repo("x"), repo("y", "pull"))
    assert claims.mentions("repository", "x") and not claims.allows("repository", "x", "pull")
    assert not claims.mentions("repository", "z")
    assert claims.allows("repository", "y", "pull")


def test_ttl_is_configurable() -> None:
    issued = TokenIssuer(KEY, ttl_seconds=30).issue("a", [])
    assert issued.expires_in_seconds == 30
    assert raw_claims(issued.token)["exp"] - raw_claims(issued.token)["iat"] == 30


# --- refusals --------------------------------------------------------------------------------


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_tampered_payload_is_a_bad_signature(issuer: TokenIssuer) -> None:
    header, payload, signature = _segments(issuer.issue("bob", [repo("a", "pull")]).token)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push", "delete"]
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert reason_of(issuer, forged) == "bad signature"


def test_tampered_signature_is_a_bad_signature(issuer: TokenIssuer) -> None:
    header, payload, signature = _segments(issuer.issue("bob", []).token)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert reason_of(issuer, f"{header}.{payload}.{flipped}") == "bad signature"


def test_token_from_another_key_is_refused(issuer: TokenIssuer) -> None:
    foreign = TokenIssuer(OTHER_KEY).issue("alice", [repo("a", "pull")]).token
    assert reason_of(issuer, foreign) == "bad signature"


def test_other_algorithms_are_refused(issuer: TokenIssuer) -> None:
    assert reason_of(issuer, craft(algorithm="HS512")) == "bad signature"
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _segments(craft())[1]
    assert reason_of(issuer, f"{header}.{payload}.") == "bad signature"


def test_wrong_audience_is_refused(issuer: TokenIssuer) -> None:
    other_service = TokenIssuer(KEY, service="elsewhere").issue("alice", []).token
    assert reason_of(issuer, other_service) == "wrong audience"
    assert reason_of(issuer, craft(aud=["seawall", "elsewhere"])) == "wrong audience"


def test_wrong_issuer_is_refused(issuer: TokenIssuer) -> None:
    assert reason_of(issuer, craft(iss="someone-else")) == "wrong issuer"


def test_expired_token_is_refused(issuer: TokenIssuer) -> None:
    now = int(time.time())
    assert reason_of(issuer, craft(iat=now - 400, nbf=now - 400, exp=now - 60)) == "expired"


def test_small_clock_skew_is_tolerated(issuer: TokenIssuer) -> None:
    now = int(time.time())
    assert issuer.verify(craft(iat=now - 300, nbf=now - 300, exp=now - 2)).subject == "alice"
    assert issuer.verify(craft(iat=now + 2, nbf=now + 2)).subject == "alice"


def test_token_not_yet_valid_is_refused(issuer: TokenIssuer) -> None:
    now = int(time.time())
    assert reason_of(issuer, craft(nbf=now + 120, iat=now)) == "not yet valid"


def issued_seconds_ago(monkeypatch: pytest.MonkeyPatch, issuer: TokenIssuer, seconds: int) -> str:
    """A token really issued by ``issuer``, but with its clock set ``seconds`` in the past."""

    class Past(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) - timedelta(seconds=seconds)

    with monkeypatch.context() as m:
        m.setattr(tokens_module, "datetime", Past)
        return issuer.issue("alice", [repo("a", "pull")]).token


def test_issued_token_expires_after_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    short = TokenIssuer(KEY, ttl_seconds=30)
    assert short.verify(issued_seconds_ago(monkeypatch, short, 20)).subject == "alice"
    assert short.verify(issued_seconds_ago(monkeypatch, short, 33)).subject == "alice"  # leeway
    assert reason_of(short, issued_seconds_ago(monkeypatch, short, 40)) == "expired"


def test_minimum_key_length_is_accepted() -> None:
    issuer = TokenIssuer(b"m" * 32)
    assert issuer.verify(issuer.issue("a", []).token).subject == "a"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        {"exp": None},
        {"iss": None},
        {"aud": None},
        {"iat": None},
        {"exp": "tomorrow"},
        {"sub": 42},
        {"access": "repository:a:pull"},
        {"access": [{"type": "repository", "name": "a"}]},
        {"access": [{"type": "repository", "name": "a", "actions": "pull"}]},
        {"access": [{"type": "repository", "name": 1, "actions": ["pull"]}]},
        {"access": ["repository:a:pull"]},
    ],
)
def test_malformed_tokens_are_refused(issuer: TokenIssuer, token: str | dict[str, Any]) -> None:
    # crafted when the test runs, not when it is collected: a token made at collection has
    # expired by the time a long suite reaches it, and "expired" would hide "malformed"
    raw = craft(**token) if isinstance(token, dict) else token
    assert reason_of(issuer, raw) == "malformed"


def test_missing_access_claim_means_no_access(issuer: TokenIssuer) -> None:
    assert issuer.verify(craft(access=None)).access == ()


# --- TokenClaims.allows ----------------------------------------------------------------------


def test_allows_checks_type_name_and_action() -> None:
    claims = TokenClaims(
        "alice",
        (
            repo("team/app", "pull"),
            repo("team/app", "push"),
            repo("everything", "*"),
            Access("registry", "catalog", frozenset({"*"})),
        ),
        datetime.now(UTC),
    )
    assert claims.allows("repository", "team/app", "pull")
    assert claims.allows("repository", "team/app", "push")  # from a second entry
    assert not claims.allows("repository", "team/app", "delete")
    assert not claims.allows("repository", "team/app2", "pull")
    assert not claims.allows("repository", "team", "pull")
    assert not claims.allows("registry", "team/app", "pull")
    assert claims.allows("repository", "everything", "delete")
    assert claims.allows("registry", "catalog", "*")
    assert not claims.allows("repository", "catalog", "*")


def test_empty_claims_allow_nothing() -> None:
    assert not TokenClaims(None, (), datetime.now(UTC)).allows("repository", "a", "pull")


# --- construction ----------------------------------------------------------------------------


def test_short_keys_are_refused_with_advice() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenIssuer(b"short")


def test_non_positive_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        TokenIssuer(KEY, ttl_seconds=0)


def test_repr_does_not_show_the_key(issuer: TokenIssuer) -> None:
    assert "kkkk" not in repr(issuer)
    assert "seawall" in repr(issuer)


# --- load_or_create_key ----------------------------------------------------------------------


def test_key_is_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "token.key"
    key = load_or_create_key(path)
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["token.key"]  # no temp files left
    TokenIssuer(key)


def test_created_keys_differ(tmp_path: Path) -> None:
    assert load_or_create_key(tmp_path / "a") != load_or_create_key(tmp_path / "b")


def test_existing_key_file_is_read_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    path.write_bytes(b"  " + b"x" * 40 + b"\n")
    assert load_or_create_key(path) == b"x" * 40
    assert path.read_bytes() == b"  " + b"x" * 40 + b"\n"  # not rewritten


@pytest.mark.parametrize("content", [b"", b"\n", b"too short\n"])
def test_short_key_file_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "token.key"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="Delete the file"):
        load_or_create_key(path)
    assert path.read_bytes() == content


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        keys.append(load_or_create_key(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["token.key"]
