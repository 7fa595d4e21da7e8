"""The Quay fake's records: repositories as Quay's API shows them, OAuth application tokens
and the registry access they give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_acr_auth import Principal

__all__ = ["OAUTH_USERNAME", "WRITE", "OAuthGrant", "QuayRepository"]

OAUTH_USERNAME = "$oauthtoken"  # Quay's registry username for an OAuth token
WRITE = frozenset({"pull", "push", "delete"})


@dataclass(frozen=True, order=True)
class QuayRepository:
    namespace: str
    name: str
    public: bool = False
    description: str = ""

    def describe(self) -> dict[str, Any]:
        """As Quay's API shows a repository."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "description": self.description,
            "is_public": self.public,
            "kind": "image",
            "state": "NORMAL",
        }


@dataclass(frozen=True)
class OAuthGrant:
    """An OAuth application token: whose, in which namespaces, with which scopes."""

    user: str
    namespaces: frozenset[str]
    scopes: frozenset[str] = field(
        default=frozenset({"repo:read", "repo:write", "repo:create", "user:read"})
    )

    def principal(self) -> Principal:
        actions = frozenset({"pull"} | (WRITE if "repo:write" in self.scopes else set()))
        return Principal(self.user, "oauth", {f"{ns}/*": actions for ns in self.namespaces})
