"""The registry's auth core: passwords, scopes, permissions and bearer tokens. No I/O beyond the
token key file; HTTP and the account database live in ``registry.http`` and ``registry.meta``.

How the pieces fit (the Docker token flow)::

    scope query values --parse_scopes (bounded, merged)--> [Access]
    account row (kind, grants) + Access --allowed_actions--> granted actions
    granted [Access] + account stamp --TokenIssuer.issue--> IssuedToken (JWT, HS256, small)
    Authorization: Bearer <jwt> --TokenIssuer.verify (VerifiedTokens: bounded in bytes)-->
        TokenClaims --.allows(type, name, action); .stamp checked against the account row
    Authorization: Basic --VerifiedCache.check, else LoginThrottle.reserve and verify_password
        on CheckPool (off the event loop)--> account, then allowed_actions
"""

from registry.auth.logins import CheckPool, LoginThrottle, LoginThrottled
from registry.auth.passwords import VerifiedCache, generate_secret, hash_password, verify_password
from registry.auth.permissions import (
    ACCOUNT_KINDS,
    REPOSITORY_ACTIONS,
    Grant,
    GrantError,
    allowed_actions,
    is_valid_pattern,
    parse_grant,
    pattern_matches,
)
from registry.auth.scopes import Access, ScopeError, format_scope, parse_scope, parse_scopes
from registry.auth.token_cache import VerifiedTokens
from registry.auth.tokens import (
    InvalidToken,
    IssuedToken,
    TokenClaims,
    TokenIssuer,
    load_or_create_key,
)

__all__ = [
    "ACCOUNT_KINDS",
    "REPOSITORY_ACTIONS",
    "Access",
    "CheckPool",
    "Grant",
    "GrantError",
    "InvalidToken",
    "IssuedToken",
    "LoginThrottle",
    "LoginThrottled",
    "ScopeError",
    "TokenClaims",
    "TokenIssuer",
    "VerifiedCache",
    "VerifiedTokens",
    "allowed_actions",
    "format_scope",
    "generate_secret",
    "hash_password",
    "is_valid_pattern",
    "load_or_create_key",
    "parse_grant",
    "parse_scope",
    "parse_scopes",
    "pattern_matches",
    "verify_password",
]
