"""The registry's auth core: passwords, scopes, permissions and bearer tokens. No I/O beyond the
token key file; HTTP and the account database live in ``registry.http`` and ``registry.meta``.

How the pieces fit (the Docker token flow)::

    scope query values --parse_scope--> [Access]
    account row (kind, grants) + Access --allowed_actions--> granted actions
    granted [Access] --TokenIssuer.issue--> IssuedToken (JWT, HS256)
    Authorization: Bearer <jwt> --TokenIssuer.verify--> TokenClaims --.allows(type, name, action)
    Authorization: Basic --VerifiedCache.check / verify_password--> account, then allowed_actions
"""

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
from registry.auth.scopes import Access, ScopeError, format_scope, parse_scope
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
    "Grant",
    "GrantError",
    "InvalidToken",
    "IssuedToken",
    "ScopeError",
    "TokenClaims",
    "TokenIssuer",
    "VerifiedCache",
    "allowed_actions",
    "format_scope",
    "generate_secret",
    "hash_password",
    "is_valid_pattern",
    "load_or_create_key",
    "parse_grant",
    "parse_scope",
    "pattern_matches",
    "verify_password",
]
