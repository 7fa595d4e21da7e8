"""Tokens are bounded: the largest the endpoint can issue is far below what verify accepts, a
longer one is refused unread, and an account's stamp travels in the token."""

from __future__ import annotations

from registry.auth.permissions import allowed_actions
from registry.auth.scopes import MAX_SCOPE_CHARS, MAX_SCOPES, parse_scopes
from registry.auth.tokens import MAX_TOKEN_BYTES, InvalidToken, TokenIssuer

KEY = b"k" * 48


def _largest_request() -> list[str]:
    """As many distinct scopes as allowed, sharing the scope text budget, each asking for every
    action an admin could get (the biggest token the endpoint can be made to issue)."""
    per_scope = MAX_SCOPE_CHARS // MAX_SCOPES - 1
    values = []
    for i in range(MAX_SCOPES):
        head = f"repository:{i:02d}"
        values.append(head + "a" * (per_scope - len(head) - len(":*,pull,push,delete")))
        values[-1] += ":*,pull,push,delete"
    return values


def test_largest_issuable_token_is_well_below_the_verify_limit() -> None:
    issuer = TokenIssuer(KEY)
    scopes = parse_scopes(_largest_request())
    assert len(scopes) == MAX_SCOPES
    granted = [
        a.__class__(a.type, a.name, allowed_actions("admin", [], a, anonymous_pull=False))
        for a in scopes
    ]
    token = issuer.issue("x" * 255, granted, stamp="s" * 24).token
    assert len(token) < MAX_TOKEN_BYTES * 3 // 4, len(token)
    assert issuer.verify(token).subject == "x" * 255


def test_longer_token_is_refused_without_being_read() -> None:
    issuer = TokenIssuer(KEY)
    try:
        issuer.verify("a" * (MAX_TOKEN_BYTES + 1))
    except InvalidToken as e:
        assert e.reason == "malformed" and str(MAX_TOKEN_BYTES) in str(e)
    else:
        raise AssertionError("an oversized token was accepted")


def test_stamp_round_trips_and_is_absent_for_anonymous() -> None:
    issuer = TokenIssuer(KEY)
    assert issuer.verify(issuer.issue("alice", [], stamp="abc").token).stamp == "abc"
    assert issuer.verify(issuer.issue(None, []).token).stamp is None
