"""The settings of a ``github-ghcr`` endpoint and GHCR's name rules, checked before anything is
sent.

An endpoint is the registry (``https://ghcr.io``; another ``http(s)://host[:port]`` for a test
stand-in or GitHub Enterprise Server's ``containers.HOST``), the GitHub REST API beside it
(option ``api_url``, default ``https://api.github.com``; required for any registry other than
ghcr.io) and a login: a GitHub username and a personal access token (classic), or the token
alone. Without a token the endpoint pulls public packages anonymously and discovers nothing.

A repository is ``OWNER/PACKAGE``: the first path component is the GitHub user or organization
that owns the package (a GitHub login, written lowercase), the rest is the package's name
(``ghcr.io/acme/team/app`` is package ``team/app`` of ``acme``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName

__all__ = [
    "GHCR_HOST",
    "GHCR_URL",
    "GITHUB_API_URL",
    "OWNERS_PATTERN",
    "OWNER_TYPES",
    "GhcrSettings",
    "check_owner",
    "parse_settings",
    "split_repository",
]

GHCR_HOST = "ghcr.io"
GHCR_URL = "https://ghcr.io"
GITHUB_API_URL = "https://api.github.com"
OWNER_TYPES = ("auto", "org", "user")
#: the username sent with a token given alone (GHCR takes any non-empty name with a PAT)
TOKEN_USERNAME = "seawall"
#: a GitHub login as an image reference writes it: lowercase letters and digits, single
#: hyphens inside, at most 39 characters
_LOGIN = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}$")
OWNERS_PATTERN = r"[A-Za-z0-9-]{1,39}(?:,[A-Za-z0-9-]{1,39})*"


@dataclass(frozen=True, slots=True)
class GhcrSettings:
    """One endpoint's settings, resolved.

    ``pat`` is the personal access token (the credential's secret, or a bearer token given
    alone; "" for anonymous pulls); ``username`` what the registry's token service is sent
    with it. ``owners`` are the owners discovered when a policy's name filter names none.
    """

    api_url: str
    owner_type: str  # auto | org | user
    owners: tuple[str, ...]
    username: str = ""
    pat: str = field(default="", repr=False)

    @property
    def anonymous(self) -> bool:
        return not self.pat


def parse_settings(config: EndpointConfig) -> GhcrSettings:
    """The endpoint's settings, or :class:`InvalidEndpoint` saying what to fix. No I/O."""
    host = _registry_host(config.url)
    api_url = config.option("api_url")
    if not api_url:
        if host != GHCR_HOST:
            raise InvalidEndpoint(
                f"github-ghcr endpoint {config.url[:200]!r} is not ghcr.io: give --api-url, the "
                "GitHub REST API that manages its packages (GitHub Enterprise Server: "
                "https://HOST/api/v3)"
            )
        api_url = GITHUB_API_URL
    parts = urlsplit(api_url)
    if parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"github-ghcr --api-url {api_url[:200]!r}: give the API's base URL without a query "
            "(https://api.github.com)"
        )
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidEndpoint(
            f"github-ghcr --api-url {api_url[:200]!r}: the token is sent there, use https"
        )
    if config.password and config.token:
        raise InvalidEndpoint("github-ghcr: give the personal access token once, as the secret")
    pat = config.password or config.token or ""
    if config.username and not pat:
        raise InvalidEndpoint(
            f"github-ghcr: the username {config.username[:100]!r} needs a personal access token "
            "(classic) as the secret; GHCR takes no GitHub password"
        )
    owners = tuple(o.lower() for o in config.option("owners").split(",") if o)
    for owner in owners:
        try:
            check_owner(owner, "--owners")
        except InvalidRepositoryName as e:
            raise InvalidEndpoint(str(e)) from None
    return GhcrSettings(
        api_url=api_url.rstrip("/"),
        owner_type=config.option("owner_type", "auto"),
        owners=owners,
        username=(config.username or TOKEN_USERNAME) if pat else "",
        pat=pat,
    )


def _registry_host(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise InvalidEndpoint(f"github-ghcr endpoint URL {url[:200]!r} is not valid: {e}") from None
    host = (parts.hostname or "").lower()
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"github-ghcr endpoint URL {url[:200]!r}: give the registry only, {GHCR_URL} "
            "(owners are the repositories' first path component, not part of the URL)"
        )
    if host == GHCR_HOST and (parts.scheme != "https" or parts.port not in (None, 443)):
        raise InvalidEndpoint(f"github-ghcr: ghcr.io serves https on port 443 only: use {GHCR_URL}")
    return host


def check_owner(owner: str, what: str = "owner") -> None:
    """:raises InvalidRepositoryName: ``owner`` is not a GitHub login as GHCR writes it."""
    if not _LOGIN.match(owner):
        raise InvalidRepositoryName(
            f"github-ghcr {what} {owner[:100]!r} is not a GitHub user or organization name: "
            "lowercase letters, digits and single hyphens inside, at most 39 characters"
        )


def split_repository(name: str) -> tuple[str, str]:
    """``acme/team/app`` → ``("acme", "team/app")``: the owner and the package name.

    :raises InvalidRepositoryName: the name has no package part.
    """
    owner, _, package = name.partition("/")
    if not owner or not package:
        raise InvalidRepositoryName(
            f"github-ghcr repository {name[:200]!r}: give OWNER/PACKAGE (the GitHub user or "
            "organization first)"
        )
    return owner, package
