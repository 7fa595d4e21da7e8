"""What a ``quay`` endpoint is and what Quay's names may be. Pure functions, no I/O beyond a
file option's ``stat`` (the base class's check); every refusal is an :class:`InvalidEndpoint`
or an :class:`InvalidRepositoryName` that says what to give instead.

Logins (the endpoint's credential)::

    ORG+ROBOT / robot token     a robot account: the registry through Quay's token endpoint
                                (/v2/auth); the REST API needs --api-token-file
    $oauthtoken / OAuth token   an OAuth application token: Basic at /v2/auth (Quay takes the
                                literal username "$oauthtoken") and Bearer for /api/v1
    a bearer token alone        the same OAuth token (Harbor's "oauth" credential)
    USER / password             a Quay user (or its encrypted password)

Names are ``NAMESPACE/REPOSITORY``: exactly two components. Quay instances with
``FEATURE_EXTENDED_REPOSITORY_NAMES`` accept nested repository paths; others do not, so the
conservative rule is kept for every instance (see ``docs/adapters/quay.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName

__all__ = [
    "NAMESPACES_PATTERN",
    "NAMESPACE_PATTERN",
    "OAUTH_USERNAME",
    "VISIBILITIES",
    "QuaySettings",
    "check_quay_name",
    "parse_settings",
    "split_name",
]

OAUTH_USERNAME = "$oauthtoken"  # Quay's username for an OAuth token used as a registry login
VISIBILITIES = ("private", "public")
_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
#: a Quay namespace (user or organization): 2 to 255 characters of the OCI component grammar
NAMESPACE_PATTERN = rf"(?=.{{2,255}}$){_COMPONENT}"
NAMESPACES_PATTERN = rf"{_COMPONENT}(?:,{_COMPONENT})*"  # --namespaces: a comma list
_NAMESPACE_RE = re.compile(NAMESPACE_PATTERN)
# a repository: starts with [a-z0-9], then [.a-z0-9_-], at most 255 characters
_REPOSITORY_RE = re.compile(r"[a-z0-9][.a-z0-9_-]{0,254}")
# a robot login: NAMESPACE+SHORTNAME, the short name a letter then [a-z0-9_]
_ROBOT_RE = re.compile(rf"({_COMPONENT})\+([a-z][a-z0-9_]{{1,254}})")


@dataclass(frozen=True, slots=True)
class QuaySettings:
    """An endpoint's settings, checked. ``api_token`` is the OAuth token the REST API gets
    when the credential is one (``$oauthtoken`` or a bearer token); a robot or user login
    gets it from ``api_token_file`` when the adapter first calls the API."""

    host: str  # host[:port]: the service of token requests
    login: str  # "robot", "oauth", "user" or "anonymous"
    namespaces: tuple[str, ...]  # --namespaces: what discovery lists (empty: the token's own)
    api_token_file: str  # where the API token is ("" : the credential, or none)
    api_token: str | None = field(default=None, repr=False)
    create_repositories: bool = False
    visibility: str = "private"

    @property
    def has_api(self) -> bool:
        """Whether the REST API can be called (an OAuth token is configured)."""
        return bool(self.api_token or self.api_token_file)


def parse_settings(config: EndpointConfig) -> QuaySettings:
    """The endpoint's settings, or :class:`InvalidEndpoint` saying what to change."""
    parts = urlsplit(config.url)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"quay endpoint URL {config.url[:200]!r}: give the host only "
            "(https://quay.io or https://quay.example.com): the registry is under /v2 and "
            "the API under /api/v1 of that host"
        )
    if not parts.hostname:
        raise InvalidEndpoint(f"quay endpoint URL {config.url[:200]!r} has no host")
    login, api_token = _login(config)
    token_file = config.option("api_token_file")
    raw = config.option("namespaces")
    namespaces = tuple(n for n in raw.split(",") if n) if raw else ()
    for name in namespaces:
        if not _NAMESPACE_RE.fullmatch(name):
            raise InvalidEndpoint(f"quay --namespaces: {name[:100]!r} is not a Quay namespace")
    create = config.option("create_repositories", "false") == "true"
    settings = QuaySettings(
        host=parts.netloc.rpartition("@")[2],
        login=login,
        namespaces=namespaces,
        api_token_file=token_file,
        api_token=api_token,
        create_repositories=create,
        visibility=config.option("visibility", "private"),
    )
    if create and not settings.has_api:
        raise InvalidEndpoint(
            "quay --create-repositories true needs Quay's API: give --api-token-file (an "
            "OAuth application token with repo:create) or log in with the OAuth token itself "
            f"(username {OAUTH_USERNAME!r})"
        )
    if config.option("visibility") and not create:
        raise InvalidEndpoint(
            "quay --visibility applies to created repositories only: "
            "add --create-repositories true or leave --visibility out"
        )
    return settings


def _login(config: EndpointConfig) -> tuple[str, str | None]:
    """What kind of login the credential is, and the API token it carries (if it is one)."""
    user, password, token = config.username, config.password, config.token
    if token is not None and user is not None and user != OAUTH_USERNAME:
        raise InvalidEndpoint(
            "quay endpoints take a login (robot, user) or an OAuth token, not both: give the "
            f"OAuth token as the password of {OAUTH_USERNAME!r}, or drop the bearer token"
        )
    if user is None:
        if password is not None:
            raise InvalidEndpoint(
                "quay: a password without a username: give the robot's "
                "name (ORG+ROBOT) or $oauthtoken"
            )
        return ("oauth", token) if token is not None else ("anonymous", None)
    if not password and token is None:
        raise InvalidEndpoint(f"quay login {user[:100]!r} has no password or token")
    if user == OAUTH_USERNAME:
        return "oauth", password or token
    if "+" in user:
        if not _ROBOT_RE.fullmatch(user):
            raise InvalidEndpoint(
                f"quay robot login {user[:100]!r} is not NAMESPACE+NAME (lowercase; the "
                "name a letter then letters, digits or '_'), e.g. myorg+replicator"
            )
        return "robot", None
    return "user", None


def split_name(name: str) -> tuple[str, str]:
    """``NAMESPACE/REPOSITORY`` → ``(namespace, repository)`` (checked by check_quay_name)."""
    namespace, _, repository = name.partition("/")
    return namespace, repository


def check_quay_name(name: str) -> None:
    """Quay's rules on top of the OCI grammar (which the base class checks first): a
    namespace of 2 to 255 characters, a repository of at most 255 starting with [a-z0-9].

    :raises InvalidRepositoryName: says which part breaks which rule.
    """
    namespace, repository = split_name(name)
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r}: {namespace[:100]!r} is not a Quay namespace "
            "(2 to 255 lowercase letters, digits and single '.', '_' or '-' between them): "
            "change the policy's destination namespace"
        )
    if "/" in repository or not _REPOSITORY_RE.fullmatch(repository):
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r}: quay repositories are NAMESPACE/NAME with a "
            "name of at most 255 characters and no further '/' (nested repository paths need "
            "FEATURE_EXTENDED_REPOSITORY_NAMES, which this adapter does not assume): change "
            "dest_namespace_replace_count or the destination namespace"
        )
